"""`crosspoint batch embed|classify DIR|GLOB... --triton HOST:PORT --out results.parquet|.npz`."""

from __future__ import annotations

from pathlib import Path

import typer

batch_app = typer.Typer(
    help="Embed or classify many files straight through Triton (gRPC), resumably.", no_args_is_help=True
)

INPUTS = typer.Argument(..., help="Files, directories (searched recursively for shape files) or globs.")
TRITON = typer.Option(
    "127.0.0.1:8001", "--triton", envvar="CROSSPOINT_TRITON_URL", help="Triton gRPC host:port."
)
OUT = typer.Option(..., "--out", help="results.parquet or results.npz (re-running resumes it).")
REPOSITORY = typer.Option(
    Path("model_repository"),
    "--model-repository",
    help="Local copy of the served repository: preprocessing settings come from it.",
)
MODEL = typer.Option(None, "--model", help="Triton model name (default: the task's, embed/classify).")
VERSION = typer.Option(None, "--model-version", help="Model version (default: the newest in the repository).")
WORKERS = typer.Option(None, "--workers", help="Preprocessing processes (default: cores - 1).")
BATCH = typer.Option(32, "--batch-size", min=1, help="Shapes per Triton request (capped at max_batch_size).")
IN_FLIGHT = typer.Option(4, "--max-in-flight", min=1, help="Requests at Triton at once.")
POINTS = typer.Option(None, "--num-points", help="Override the model's num_points.")
AXIS = typer.Option(None, "--up-axis", help="Up axis of the input files (default: the model's, y).")
SEED = typer.Option(0, "--seed", help="Sampling seed (the gateway's default is 0).")
KEY = typer.Option("stat", "--key", help="What makes a file 'already done': stat (size+mtime) or sha256.")
RETRY = typer.Option(False, "--retry-errors", help="Re-run files whose earlier row is an error.")
FLUSH = typer.Option(512, "--flush-every", min=1, help="Rows per part file (progress kept if interrupted).")
MEMORY = typer.Option(None, "--max-memory-mb", help="Address-space cap per worker (hostile files).")
QUIET = typer.Option(False, "--quiet", help="No progress bar.")


def register_batch_commands(app: typer.Typer) -> None:
    app.add_typer(batch_app, name="batch")


@batch_app.command("embed")
def batch_embed(
    inputs: list[str] = INPUTS,
    triton: str = TRITON,
    out: Path = OUT,
    model_repository: Path = REPOSITORY,
    model: str | None = MODEL,
    model_version: str | None = VERSION,
    workers: int | None = WORKERS,
    batch_size: int = BATCH,
    max_in_flight: int = IN_FLIGHT,
    num_points: int | None = POINTS,
    up_axis: str | None = AXIS,
    seed: int = SEED,
    key: str = KEY,
    retry_errors: bool = RETRY,
    flush_every: int = FLUSH,
    max_memory_mb: int | None = MEMORY,
    quiet: bool = QUIET,
) -> None:
    """2048-d embedding (+ 256-d projection) of every file."""
    _run("embed", **locals())


@batch_app.command("classify")
def batch_classify(
    inputs: list[str] = INPUTS,
    triton: str = TRITON,
    out: Path = OUT,
    model_repository: Path = REPOSITORY,
    model: str | None = MODEL,
    model_version: str | None = VERSION,
    workers: int | None = WORKERS,
    batch_size: int = BATCH,
    max_in_flight: int = IN_FLIGHT,
    num_points: int | None = POINTS,
    up_axis: str | None = AXIS,
    seed: int = SEED,
    key: str = KEY,
    retry_errors: bool = RETRY,
    flush_every: int = FLUSH,
    max_memory_mb: int | None = MEMORY,
    quiet: bool = QUIET,
) -> None:
    """Class logits, top-1 label and probability (+ embedding) of every file."""
    _run("classify", **locals())


def _run(
    task: str,
    *,
    inputs: list[str],
    triton: str,
    out: Path,
    model_repository: Path,
    model: str | None,
    model_version: str | None,
    workers: int | None,
    batch_size: int,
    max_in_flight: int,
    num_points: int | None,
    up_axis: str | None,
    seed: int,
    key: str,
    retry_errors: bool,
    flush_every: int,
    max_memory_mb: int | None,
    quiet: bool,
) -> None:
    from clients.batch.inputs import default_workers
    from clients.batch.pipeline import BatchJob, WorkerStartError, run_batch
    from clients.batch.settings import SettingsError
    from clients.batch.store import StoreLayoutError, output_format
    from clients.batch.triton import InferenceFailed

    if key not in ("stat", "sha256"):
        raise typer.BadParameter("--key must be stat or sha256")
    try:
        output_format(out)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    job = BatchJob(
        task=task,
        inputs=inputs,
        out=out,
        triton_url=triton,
        repository=model_repository,
        model=model,
        model_version=model_version,
        num_points=num_points,
        up_axis=up_axis,
        seed=seed,
        workers=workers or default_workers(),
        batch_size=batch_size,
        max_in_flight=max_in_flight,
        hash_keys=key == "sha256",
        retry_errors=retry_errors,
        flush_rows=flush_every,
        max_memory_mb=max_memory_mb,
        progress=not quiet,
    )
    try:
        summary = run_batch(job)
    except (InferenceFailed, SettingsError, StoreLayoutError, WorkerStartError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"{summary.out}: {summary.rows} rows; this run {summary.succeeded} ok, {summary.failed} errors, "
        f"{summary.skipped} already done; {summary.files_per_second:.1f} files/s over {summary.seconds:.1f} s"
    )
    if summary.failed:
        # Not a failed run: the rows carry error_code/error_message; say so where a person looks.
        typer.echo(f"{summary.failed} files failed; see the error_code column", err=True)
