"""`crosspoint embed|classify|segment FILE...`: ask a running gateway, print a table or JSON.

Imports of httpx/numpy/rich happen inside the commands: this module is imported on every
`crosspoint` start.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

URL_OPTION = typer.Option("http://127.0.0.1:8000", "--url", envvar="CROSSPOINT_URL", help="Gateway base URL.")
KEY_OPTION = typer.Option(
    None, "--api-key", envvar="CROSSPOINT_API_KEY", help="API key, if the gateway wants one."
)
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document (a list, one entry per file).")
POINTS_OPTION = typer.Option(None, "--num-points", help="Points to sample (default: the model's).")
AXIS_OPTION = typer.Option(
    None,
    "--up-axis",
    help="Up axis of the input: x, y, z, -x, -y, -z (default y), or auto (the gateway tries all 6, 6x the work).",
)
SEED_OPTION = typer.Option(None, "--seed", help="Sampling seed (default: the gateway's, 0).")
TIMEOUT_OPTION = typer.Option(120.0, "--timeout", help="Seconds to wait for each answer.")
FILES_ARGUMENT = typer.Argument(..., exists=True, dir_okay=False, help="Mesh or point-cloud files.")


def register_query_commands(app: typer.Typer) -> None:
    app.command("embed")(embed_command)
    app.command("classify")(classify_command)
    app.command("segment")(segment_command)


def embed_command(
    files: list[Path] = FILES_ARGUMENT,
    url: str = URL_OPTION,
    api_key: str | None = KEY_OPTION,
    as_json: bool = JSON_OPTION,
    num_points: int | None = POINTS_OPTION,
    up_axis: str | None = AXIS_OPTION,
    seed: int | None = SEED_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """2048-d embedding of each file, from the gateway."""
    options = {"num_points": num_points, "up_axis": up_axis, "seed": seed}
    _query("embed", files, url, api_key, timeout, options, as_json)


def classify_command(
    files: list[Path] = FILES_ARGUMENT,
    url: str = URL_OPTION,
    api_key: str | None = KEY_OPTION,
    as_json: bool = JSON_OPTION,
    top_k: int | None = typer.Option(None, "--top-k", help="How many labels."),
    num_points: int | None = POINTS_OPTION,
    up_axis: str | None = AXIS_OPTION,
    seed: int | None = SEED_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Top-k ModelNet40 labels of each file, from the gateway."""
    options = {"num_points": num_points, "up_axis": up_axis, "seed": seed, "top_k": top_k}
    _query("classify", files, url, api_key, timeout, options, as_json)


def segment_command(
    files: list[Path] = FILES_ARGUMENT,
    url: str = URL_OPTION,
    api_key: str | None = KEY_OPTION,
    as_json: bool = JSON_OPTION,
    category: str | None = typer.Option(None, "--category", help="ShapeNetPart category (else predicted)."),
    num_points: int | None = POINTS_OPTION,
    up_axis: str | None = AXIS_OPTION,
    seed: int | None = SEED_OPTION,
    timeout: float = TIMEOUT_OPTION,
) -> None:
    """Part label of each point of each file, from the gateway."""
    options = {"num_points": num_points, "up_axis": up_axis, "seed": seed, "category": category}
    _query("segment", files, url, api_key, timeout, options, as_json)


def _query(
    task: str,
    files: list[Path],
    url: str,
    api_key: str | None,
    timeout: float,
    options: dict[str, Any],
    as_json: bool,
) -> None:
    """Ask for every file (a failed one does not stop the others); exit 1 if any failed."""
    from clients.errors import CrossPointAPIError, CrossPointConnectionError, CrossPointError
    from clients.sdk import CrossPointClient

    results: list[tuple[Path, Any]] = []
    failed = False
    with CrossPointClient(url, api_key=api_key, timeout=timeout) as client:
        method = getattr(client, task)
        for path in files:
            try:
                results.append((path, method(path, **options)))
            except CrossPointConnectionError as exc:
                # The gateway is gone: every other file would fail the same way.
                typer.echo(f"error: {exc}", err=True)
                raise typer.Exit(2) from None
            except CrossPointAPIError as exc:
                failed = True
                results.append((path, exc))
                typer.echo(f"{path}: {exc.message} ({exc.status} {exc.code})", err=True)
            except (CrossPointError, OSError, ValueError) as exc:
                failed = True
                results.append((path, exc))
                typer.echo(f"{path}: {exc}", err=True)
    if as_json:
        _print_json(results)
    else:
        _print_table(task, [(p, r) for p, r in results if not isinstance(r, Exception)])
    if failed:
        raise typer.Exit(1)


def _print_json(results: list[tuple[Path, Any]]) -> None:
    import json

    from clients.errors import CrossPointAPIError

    documents = []
    for path, result in results:
        if isinstance(result, CrossPointAPIError):
            error = {"status": result.status, "code": result.code, "message": result.message}
            documents.append({"file": str(path), "error": error})
        elif isinstance(result, Exception):
            documents.append({"file": str(path), "error": {"code": "client_error", "message": str(result)}})
        else:
            documents.append({"file": str(path), **result.raw})
    sys.stdout.write(json.dumps(documents) + "\n")


def _print_table(task: str, results: list[tuple[Path, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    if not results:
        return
    if task == "embed":
        table = Table("file", "model", "dims", "norm", "first values", "points", "up")
        for path, r in results:
            head = " ".join(f"{v:+.4f}" for v in r.embedding[:4])
            table.add_row(
                path.name,
                f"{r.model} v{r.version}",
                str(r.embedding.size),
                f"{float((r.embedding**2).sum() ** 0.5):.4f}",
                head,
                str(r.receipt.get("num_points", "")),
                str(r.receipt.get("up_axis", "")),
            )
    elif task == "classify":
        table = Table("file", "rank", "label", "probability", "up")
        for path, r in results:
            for rank, p in enumerate(r.predictions, 1):
                first = rank == 1
                table.add_row(
                    path.name if first else "",
                    str(rank),
                    p.label,
                    f"{p.probability:.4f}",
                    str(r.receipt.get("up_axis", "")) if first else "",
                )
    else:
        table = Table("file", "category", "points", "parts (points each)")
        for path, r in results:
            table.add_row(path.name, r.category, str(r.point_labels.size), _part_counts(r))
    Console().print(table)
    if task in ("embed", "classify"):
        for path, r in results:  # one plain line per file: never wrapped inside a table cell
            typer.echo(f"{path.name}: {_verdict(r)}")


def _verdict(result: Any) -> str:
    """The OOD verdict: the probabilities of a shape unlike the training data mean little."""
    if result.in_distribution is None:
        return "no OOD statistics"
    word = "in distribution" if result.in_distribution else "OUT OF DISTRIBUTION"
    return f"{word} (ood_score {result.ood_score:.2f})"


def _part_counts(result: Any) -> str:
    import numpy as np

    labels, counts = np.unique(result.point_labels, return_counts=True)
    names = result.part_names
    # part_names may be indexed by the global 0..49 label or be the category's own list; show both safely.
    return ", ".join(
        f"{names[i] if 0 <= i < len(names) else i}: {c}" for i, c in zip(labels, counts, strict=True)
    )
