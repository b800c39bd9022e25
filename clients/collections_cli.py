"""`crosspoint collections create|add|ls|search|classify|rm|reembed`: a gateway's collections.

crosspoint collections create parts
crosspoint collections add parts 'shapes/**/*.obj' --label-from-dir
crosspoint collections search parts query.stl -k 5
crosspoint collections classify parts unknown.ply
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path
from typing import Any

import typer

from clients.commands import (
    AXIS_OPTION,
    JSON_OPTION,
    KEY_OPTION,
    POINTS_OPTION,
    SEED_OPTION,
    TIMEOUT_OPTION,
    URL_OPTION,
)

app = typer.Typer(
    help="Collections of your own shapes: similarity search and few-shot classes.", no_args_is_help=True
)
NAME = typer.Argument(..., help="Collection name.")


def _client(url: str, api_key: str | None, timeout: float) -> Any:
    from clients.sdk import CrossPointClient

    return CrossPointClient(url, api_key=api_key, timeout=timeout)


def _fail(exc: Exception) -> typer.Exit:
    from clients.errors import CrossPointAPIError

    if isinstance(exc, CrossPointAPIError):
        typer.echo(f"error: {exc.message} ({exc.status} {exc.code})", err=True)
    else:
        typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


def _print(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")


@app.command("create")
def create(
    name: str = NAME,
    description: str = typer.Option("", "--description", help="What the collection holds."),
    url: str = URL_OPTION,
    api_key: str | None = KEY_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Create an empty collection (pinned to the embed version the gateway serves now)."""
    from clients.errors import CrossPointError

    with _client(url, api_key, timeout) as client:
        try:
            info = client.create_collection(name, description)
        except CrossPointError as exc:
            raise _fail(exc) from None
    typer.echo(f"created {info['name']} ({info['model']} v{info['version']})")


@app.command("add")
def add(
    name: str = NAME,
    patterns: list[str] = typer.Argument(..., help="Files or glob patterns (quote them: 'shapes/**/*.obj')."),
    label: str | None = typer.Option(None, "--label", help="One label for every file."),
    label_from_dir: bool = typer.Option(
        False, "--label-from-dir", help="Label each file with its folder's name."
    ),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Files per request."),
    url: str = URL_OPTION,
    api_key: str | None = KEY_OPTION,
    num_points: int | None = POINTS_OPTION,
    up_axis: str | None = AXIS_OPTION,
    seed: int | None = SEED_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Add files (id: the file name's stem; the same id again replaces the item), with a progress bar."""
    from rich.progress import Progress

    from clients.collections import label_from_dir as dir_label
    from clients.errors import CrossPointAPIError, CrossPointError

    files = sorted(
        {Path(p) for pattern in patterns for p in glob.glob(pattern, recursive=True) if Path(p).is_file()}
    )
    if not files:
        typer.echo("error: no files match", err=True)
        raise typer.Exit(1)
    if label and label_from_dir:
        raise typer.BadParameter("give --label or --label-from-dir, not both")
    failed = 0
    with _client(url, api_key, timeout) as client, Progress(transient=False) as progress:
        task = progress.add_task(f"adding to {name}", total=len(files))
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            labels = [dir_label(f) if label_from_dir else label for f in chunk]
            try:
                results = client.add_items(
                    name,
                    chunk,
                    labels=labels if any(labels) else None,
                    num_points=num_points,
                    up_axis=up_axis,
                    seed=seed,
                )
            except CrossPointError as exc:
                raise _fail(exc) from None
            for path, result in zip(chunk, results, strict=True):
                if isinstance(result, CrossPointAPIError):
                    failed += 1
                    progress.console.print(f"{path}: {result.message} ({result.status} {result.code})")
            progress.advance(task, len(chunk))
    typer.echo(f"added {len(files) - failed} of {len(files)} files to {name}")
    if failed:
        raise typer.Exit(1)


@app.command("ls")
def ls(
    name: str | None = typer.Argument(None, help="Show one collection (labels with counts)."),
    url: str = URL_OPTION,
    api_key: str | None = KEY_OPTION,
    as_json: bool = JSON_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """List the collections, or show one."""
    from rich.console import Console
    from rich.table import Table

    from clients.errors import CrossPointError

    with _client(url, api_key, timeout) as client:
        try:
            infos = [client.collection(name)] if name else client.collections()
        except CrossPointError as exc:
            raise _fail(exc) from None
    if as_json:
        _print(infos)
        return
    table = Table("name", "items", "labels", "model", "served", "description")
    for info in infos:
        stale = "" if info["served_version"] == info["version"] else " (reembed)"
        table.add_row(
            info["name"],
            str(info["count"]),
            ", ".join(f"{k}: {v}" for k, v in info["labels"].items()) if name else str(len(info["labels"])),
            f"{info['model']} v{info['version']}",
            f"v{info['served_version']}{stale}",
            info["description"],
        )
    Console().print(table)


@app.command("search")
def search(
    name: str = NAME,
    query: str = typer.Argument(..., help="A shape file, or id:ITEM for a stored item."),
    k: int = typer.Option(10, "-k", "--k", help="How many matches."),
    label: str | None = typer.Option(None, "--label", help="Only items with this label."),
    url: str = URL_OPTION,
    api_key: str | None = KEY_OPTION,
    as_json: bool = JSON_OPTION,
    num_points: int | None = POINTS_OPTION,
    up_axis: str | None = AXIS_OPTION,
    seed: int | None = SEED_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """The items most similar to a shape (or to a stored item)."""
    from rich.console import Console
    from rich.table import Table

    from clients.errors import CrossPointError

    source, item_id = _query(query)
    with _client(url, api_key, timeout) as client:
        try:
            result = client.search(
                name, source, id=item_id, k=k, label=label, num_points=num_points, up_axis=up_axis, seed=seed
            )
        except CrossPointError as exc:
            raise _fail(exc) from None
    if as_json:
        _print(result.raw)
        return
    table = Table(
        "rank", "id", "score", "label", "metadata", title=f"{name} ({result.model} v{result.version})"
    )
    for rank, m in enumerate(result.matches, 1):
        table.add_row(
            str(rank), m.id, f"{m.score:.4f}", m.label or "", json.dumps(m.metadata) if m.metadata else ""
        )
    Console().print(table)


@app.command("classify")
def classify(
    name: str = NAME,
    query: str = typer.Argument(..., help="A shape file, or id:ITEM for a stored item."),
    top_k: int = typer.Option(5, "--top-k", help="How many labels."),
    method: str | None = typer.Option(None, "--method", help="logistic (default), mean or knn."),
    url: str = URL_OPTION,
    api_key: str | None = KEY_OPTION,
    as_json: bool = JSON_OPTION,
    num_points: int | None = POINTS_OPTION,
    up_axis: str | None = AXIS_OPTION,
    seed: int | None = SEED_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Few-shot classification over the collection's labels."""
    from clients.errors import CrossPointError

    source, item_id = _query(query)
    with _client(url, api_key, timeout) as client:
        try:
            result = client.classify_in(
                name,
                source,
                id=item_id,
                top_k=top_k,
                method=method,
                num_points=num_points,
                up_axis=up_axis,
                seed=seed,
            )
        except CrossPointError as exc:
            raise _fail(exc) from None
    if as_json:
        _print(result.raw)
        return
    for rank, p in enumerate(result.predictions, 1):
        typer.echo(f"{rank}. {p.label:<24} {p.probability:.4f}")


@app.command("rm")
def rm(
    name: str = NAME,
    item: str | None = typer.Argument(None, help="Remove only this item."),
    yes: bool = typer.Option(False, "--yes", help="Delete a whole collection without asking."),
    url: str = URL_OPTION,
    api_key: str | None = KEY_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Remove an item, or a whole collection."""
    from clients.errors import CrossPointError

    if item is None and not yes:
        typer.confirm(f"delete collection {name} and all its items?", abort=True)
    with _client(url, api_key, timeout) as client:
        try:
            if item is None:
                client.delete_collection(name)
            else:
                client.delete_item(name, item)
        except CrossPointError as exc:
            raise _fail(exc) from None
    typer.echo(f"removed {name}/{item}" if item else f"removed {name}")


@app.command("reembed")
def reembed(
    name: str = NAME,
    url: str = URL_OPTION,
    api_key: str | None = KEY_OPTION,
    timeout: float = typer.Option(
        3600.0, "--timeout", help="Seconds to wait (every item is embedded again)."
    ),
) -> None:
    """Move a collection to the embed version the gateway serves now (re-embeds its stored points)."""
    from clients.errors import CrossPointError

    with _client(url, api_key, timeout) as client:
        try:
            info = client.reembed(name)
        except CrossPointError as exc:
            raise _fail(exc) from None
    typer.echo(f"{info['name']}: {info['count']} items on {info['model']} v{info['version']}")


def _query(query: str) -> tuple[str | None, str | None]:
    if query.startswith("id:"):
        return None, query[3:]
    if not Path(query).is_file():
        raise typer.BadParameter(f"{query} is not a file (use id:ITEM for a stored item)")
    return query, None
