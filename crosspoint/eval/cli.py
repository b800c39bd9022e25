"""`crosspoint eval ...` commands: svm, fewshot, partseg, classify, table, trust. Each prints a table (or JSON with `--json`)
and writes the JSON document to `--out`. torch is imported inside the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(no_args_is_help=True)

_CKPT = typer.Option(help="Checkpoint (.safetensors, crosspoint format).")
_DATA = typer.Option(help="Dataset npz (default: the shared one under ../shared/data).")
_JSON = typer.Option("--json", help="Print the JSON document instead of a table.")
_OUT = typer.Option(help="Also write the JSON document here.")
_RANDOM = typer.Option(
    help="Also evaluate the same network with random weights, same protocol (the baseline)."
)
_DEVICE = typer.Option(help="cpu, cuda ... (default: cuda if available, else cpu).")
_FCACHE = typer.Option(help="Cache embeddings on disk (keyed by weights + points).")


def _emit(doc: dict[str, Any], as_json: bool, out: str | None, table: Any) -> None:
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    if as_json:
        typer.echo(json.dumps(doc, indent=1, sort_keys=True))
    else:
        from rich.console import Console

        Console().print(table)


def _device(device: str | None) -> str:
    from crosspoint.train.runtime import pick_device

    return str(pick_device(device))


def _feature_dir(enabled: bool, cache_dir: str | None) -> Path | None:
    from crosspoint.data import default_cache_dir

    return Path(cache_dir or default_cache_dir()) / "features" if enabled else None


@app.command()
def svm(
    checkpoint: Annotated[str, _CKPT],
    data: Annotated[str | None, _DATA] = None,
    num_points: int = 1024,
    cs: Annotated[str, typer.Option("--cs", help="C grid, chosen on validation.")] = "0.001,0.01,0.1,1,10",
    val_fraction: float = 0.1,
    seed: int = 0,
    compare_random: Annotated[bool, _RANDOM] = True,
    train_limit: Annotated[int, typer.Option(help="Use a seeded subset of train (0 = all).")] = 0,
    test_limit: Annotated[int, typer.Option(help="Use a seeded subset of test (0 = all).")] = 0,
    batch_size: int = 32,
    device: Annotated[str | None, _DEVICE] = None,
    cache_dir: str | None = None,
    feature_cache: Annotated[bool, _FCACHE] = True,
    as_json: Annotated[bool, _JSON] = False,
    out: Annotated[str | None, _OUT] = None,
) -> None:
    """Linear-SVM accuracy on frozen features (ModelNet40 train -> test), unscaled and scaled."""
    from rich.table import Table

    from crosspoint.eval.run import svm_eval

    doc = svm_eval(
        checkpoint,
        data,
        num_points,
        tuple(float(c) for c in cs.split(",")),
        val_fraction,
        seed,
        compare_random,
        train_limit,
        test_limit,
        batch_size,
        _device(device),
        cache_dir,
        _feature_dir(feature_cache, cache_dir),
    )
    table = Table(
        title=f"Linear SVM, ModelNet40 ({doc['data']['train']} train / {doc['data']['test']} test, "
        f"{num_points} points, C chosen on validation)"
    )
    for col in ("weights", "variant", "C", "val acc", "test acc"):
        table.add_column(col)
    for label, res in doc["results"].items():
        for variant in ("unscaled", "scaled"):
            r = res[variant]
            best = " *" if res["best"]["variant"] == variant else ""
            table.add_row(
                label,
                variant + best,
                f"{r['C']:g}",
                f"{100 * r['val_accuracy']:.2f}",
                f"{100 * r['test_accuracy']:.2f}",
            )
    _emit(doc, as_json, out, table)


@app.command()
def fewshot(
    checkpoint: Annotated[str, _CKPT],
    data: Annotated[str | None, _DATA] = None,
    split: Annotated[str, typer.Option(help="Pool the episodes come from (reference: train).")] = "train",
    ways: str = "5,10",
    shots: str = "10,20",
    queries: int = 20,
    runs: int = 10,
    num_points: int = 1024,
    seed: int = 0,
    compare_random: Annotated[bool, _RANDOM] = True,
    batch_size: int = 32,
    device: Annotated[str | None, _DEVICE] = None,
    cache_dir: str | None = None,
    feature_cache: Annotated[bool, _FCACHE] = True,
    as_json: Annotated[bool, _JSON] = False,
    out: Annotated[str | None, _OUT] = None,
) -> None:
    """Few-shot N-way K-shot accuracy (mean +- std over runs) with a linear SVM on scaled features."""
    from rich.table import Table

    from crosspoint.eval.run import fewshot_eval

    doc = fewshot_eval(
        checkpoint,
        data,
        split,
        [int(w) for w in ways.split(",")],
        [int(s) for s in shots.split(",")],
        queries,
        runs,
        num_points,
        seed,
        compare_random,
        batch_size,
        _device(device),
        cache_dir,
        _feature_dir(feature_cache, cache_dir),
    )
    table = Table(title=f"Few-shot ModelNet40 ({split} pool, {queries} queries/class, {runs} runs)")
    table.add_column("weights")
    settings = [k for k in next(iter(doc["results"].values())) if k != "network"]
    for key in settings:
        table.add_column(key)
    for label, res in doc["results"].items():
        table.add_row(label, *(f"{res[k]['mean']:.1f} ± {res[k]['std']:.1f}" for k in settings))
    _emit(doc, as_json, out, table)


@app.command()
def partseg(
    checkpoint: Annotated[str, _CKPT],
    data: Annotated[str | None, _DATA] = None,
    split: str = "test",
    procedural: Annotated[int, typer.Option(help="Also score this many held-out procedural shapes.")] = 0,
    procedural_seed: int = 1_000_003,
    batch_size: int = 8,
    device: Annotated[str | None, _DEVICE] = None,
    cache_dir: str | None = None,
    compare_random: Annotated[bool, _RANDOM] = True,
    seed: Annotated[int, typer.Option(help="Seed of the random-weights twin.")] = 0,
    as_json: Annotated[bool, _JSON] = False,
    out: Annotated[str | None, _OUT] = None,
) -> None:
    """Part segmentation: instance mIoU and class mIoU (ShapeNetPart, optionally procedural shapes)."""
    from rich.table import Table

    from crosspoint.eval.run import partseg_eval

    doc = partseg_eval(
        checkpoint, data, split, procedural, procedural_seed, batch_size, _device(device), cache_dir,
        compare_random, seed,
    )  # fmt: skip
    table = Table(title="Part segmentation (parts restricted to the category)")
    for col in ("network", "data", "shapes", "instance mIoU", "class mIoU", "point acc"):
        table.add_column(col)
    rows = [("checkpoint", k, v) for k, v in doc["results"].items()]
    rows += [("random", k, v) for k, v in doc.get("random", {}).items()]
    for network, label, res in rows:
        table.add_row(
            network,
            label,
            str(res["shapes"]),
            f"{100 * res['instance_miou']:.2f}",
            f"{100 * res['class_miou']:.2f}",
            f"{100 * res['point_accuracy']:.2f}",
        )
    _emit(doc, as_json, out, table)


@app.command("classify")
def classify_command(
    repository: Annotated[str, typer.Option(help="Model repository.")] = "model_repository",
    version: Annotated[int | None, typer.Option(help="classify version (default: latest).")] = None,
    picture: Annotated[str | None, typer.Option(help="Write the confusion matrix (PNG) here.")] = None,
    curves: Annotated[
        str | None, typer.Option(help="Write the fine-tuning run's learning curves (PNG) here.")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="Checkpoint whose training history --curves draws.")
    ] = None,
    as_json: Annotated[bool, _JSON] = False,
    out: Annotated[str | None, _OUT] = None,
    cache_dir: Annotated[str, typer.Option(help="Cache of graph outputs.")] = ".cache/calibrate",
) -> None:
    """Top-1, per-class accuracy and confusions of the served classify graph (ONNX) on prepared test rows."""
    from rich.table import Table

    from crosspoint.eval.classify import confusion_picture, evaluate_classify, learning_curves

    if curves and checkpoint is None:  # before the minutes of graph runs, not after
        raise typer.BadParameter("--curves needs --checkpoint (the fine-tuned checkpoint)")
    doc = evaluate_classify(Path(repository), version, cache_dir=Path(cache_dir))
    title = f"classify v{doc['version']}: ModelNet40 test ({doc['protocol']['test_rows']} shapes), "
    if picture:
        confusion_picture(doc, Path(picture), title + f"top-1 {100 * doc['top1']:.1f}%")
    if curves and checkpoint is not None:
        from crosspoint.checkpoint import read_config

        history = read_config(checkpoint)["training"]["history"]
        learning_curves(history, Path(curves), f"fine-tuning {Path(checkpoint).name}")
    table = Table(
        title=title + f"top-1 {100 * doc['top1']:.1f}%, mean class {100 * doc['mean_class_accuracy']:.1f}%"
    )
    for column in ("true", "answered", "count"):
        table.add_column(column)
    for row in doc["largest_confusions"]:
        table.add_row(row["true"], row["predicted"], f"{row['count']} of {row['of']}")
    _emit(doc, as_json, out, table)


@app.command("table")
def table_command(
    svm: Annotated[str, typer.Option(help="JSON from `crosspoint eval svm --out`.")],
    fewshot: Annotated[str, typer.Option(help="JSON from `crosspoint eval fewshot --out`.")],
    partseg: Annotated[str | None, typer.Option(help="JSON from `crosspoint eval partseg --out`.")] = None,
    classify: Annotated[str | None, typer.Option(help="JSON from `crosspoint eval classify --out`.")] = None,
    readme: Annotated[
        str | None, typer.Option(help="Rewrite this file's accuracy-table section instead of printing.")
    ] = None,
) -> None:
    """The markdown accuracy table (shipped vs random weights vs the paper) from saved eval JSON."""
    from crosspoint.eval.table import render_files, replace_section

    table = render_files(svm, fewshot, partseg, classify)
    if readme is None:
        typer.echo(table)
        return
    path = Path(readme)
    path.write_text(replace_section(path.read_text(), table))


@app.command("trust")
def trust_command(
    repository: Annotated[
        str, typer.Option(help="Model repository (classify must be calibrated).")
    ] = "model_repository",
    version: Annotated[int | None, typer.Option(help="classify version (default: latest).")] = None,
    per_family: Annotated[int, typer.Option(help="Procedural OOD shapes per family.")] = 40,
    test_rows: Annotated[int, typer.Option(help="Test shapes turned for the up_axis=auto check.")] = 500,
    seed: int = 0,
    diagram: Annotated[str | None, typer.Option(help="Write the reliability diagram (PNG) here.")] = None,
    out: Annotated[str | None, _OUT] = None,
    cache_dir: Annotated[str, typer.Option(help="Cache of graph outputs.")] = ".cache/calibrate",
) -> None:
    """Calibration (ECE), OOD detection (AUROC, FPR@95) and up_axis=auto of the served classify graph."""
    from crosspoint.eval.trust import evaluate_trust, markdown

    doc = evaluate_trust(
        Path(repository),
        version,
        per_family=per_family,
        test_rows=test_rows,
        seed=seed,
        cache_dir=Path(cache_dir),
        diagram=Path(diagram) if diagram else None,
    )
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    typer.echo(markdown(doc))
