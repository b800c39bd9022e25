"""`crosspoint` commands owned by `export/`: `export`, `calibrate`, `precision` and `validate-repository`.

    crosspoint export cls.safetensors seg.safetensors --repository model_repository
    crosspoint validate-repository model_repository
    crosspoint calibrate --repository model_repository [-m classify] [--version N]
    crosspoint precision --repository model_repository [-m segment] [--shapes 256]

Heavy imports (torch, onnx) happen inside the commands so `crosspoint --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# The options `precision` and `calibrate` share: both act on existing versions of a repository.
_Repository = Annotated[Path, typer.Option(help="Model repository holding the versions")]
_Version = Annotated[int | None, typer.Option(min=1, help="Version (default: each model's latest)")]


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI."""

    @app.command("export")
    def export_command(
        checkpoints: Annotated[
            list[Path],
            typer.Argument(help="Checkpoint(s) (.safetensors) to export", exists=True, dir_okay=False),
        ],
        repository: Annotated[Path, typer.Option(help="Triton model repository to add versions to")] = Path(
            "model_repository"
        ),
        version: Annotated[
            int | None, typer.Option(min=1, help="Version number (default: latest + 1)")
        ] = None,
        models: Annotated[
            list[str] | None,
            typer.Option("--models", "-m", help="Only these of embed/classify/segment (repeatable)"),
        ] = None,
        opset: Annotated[int, typer.Option(min=17, help="ONNX opset")] = 17,
        parity_shapes: Annotated[
            int | None, typer.Option(min=1, help="Real shapes in the parity check (default 16; segment 8)")
        ] = None,
        max_batch_size: Annotated[int | None, typer.Option(min=1, help="config.pbtxt max_batch_size")] = None,
        max_points: Annotated[int | None, typer.Option(min=1, help="Largest N the gateway may send")] = None,
        backend: Annotated[
            str, typer.Option(help="config.pbtxt backend: onnxruntime or pytorch")
        ] = "onnxruntime",
        allow_config_change: Annotated[
            bool,
            typer.Option(
                help="Replace a config.pbtxt whose tensors differ (older versions stop matching it)"
            ),
        ] = False,
        precision_shapes: Annotated[
            int,
            typer.Option(min=0, help="Test shapes for the precision budget check (precision.json); 0 skips"),
        ] = 256,
    ) -> None:
        """Export checkpoints into REPOSITORY: ONNX + TorchScript, parity report, Triton configs."""
        from export.exporter import DEFAULT_MAX_BATCH, export_checkpoints
        from export.parity import ParityError
        from export.triton_config import ServingOptions

        serving = None
        if max_batch_size is not None or backend != "onnxruntime":
            serving = ServingOptions(
                max_batch_size=max_batch_size or max(DEFAULT_MAX_BATCH.values()), backend=backend
            )
        try:
            result = export_checkpoints(
                checkpoints,
                repository,
                version=version,
                models=models,
                opset=opset,
                parity_shapes=parity_shapes,
                serving=serving,
                max_points=max_points,
                allow_config_change=allow_config_change,
            )
        except ParityError as exc:
            typer.echo(f"export refused: {exc}", err=True)
            raise typer.Exit(1) from None
        except (ValueError, RuntimeError, OSError) as exc:
            typer.echo(f"export failed: {exc}", err=True)
            raise typer.Exit(1) from None
        for name, exported in result.models.items():
            forms = exported.parity["forms"]
            worst = max(o["max_abs_diff"] for form in forms.values() for o in form["outputs"].values())
            sizes = ", ".join(
                f"{f.name} {f.stat().st_size / 2**20:.1f} MB" for f in exported.files if f.suffix != ".json"
            )
            took = sum(exported.seconds.values())
            typer.echo(
                f"{name} v{exported.version}: {exported.directory} ({sizes}); parity max |diff| {worst:.2e}; "
                f"{took:.1f} s"
            )
        if precision_shapes:
            for name, exported in result.models.items():
                _check_precision(repository, name, exported.version, precision_shapes)

    @app.command("precision")
    def precision_command(
        repository: _Repository = Path("model_repository"),
        models: Annotated[
            list[str] | None, typer.Option("--models", "-m", help="embed/classify/segment (default: all)")
        ] = None,
        version: _Version = None,
        shapes: Annotated[int, typer.Option(min=1, help="Shapes of the shared test split")] = 256,
    ) -> None:
        """Check reduced precision (OpenVINO bf16, f32) against fp32 on test shapes; write precision.json."""
        for model in models or ["embed", "classify", "segment"]:
            _check_precision(repository, model, version, shapes)

    @app.command("calibrate")
    def calibrate_command(
        repository: _Repository = Path("model_repository"),
        models: Annotated[
            list[str] | None, typer.Option("--models", "-m", help="embed and/or classify (default: both)")
        ] = None,
        version: _Version = None,
        fit_per_class: Annotated[
            int, typer.Option(min=0, help="Fitting shapes per class for the OOD statistics (0 = all)")
        ] = 0,
        rank: Annotated[int, typer.Option(min=1, help="PPCA rank of the shared covariance")] = 256,
        up_shapes: Annotated[
            int, typer.Option(min=1, help="Fitting shapes, each under 6 up axes, for up_axis=auto's selector")
        ] = 1500,
        data: Annotated[Path | None, typer.Option(help="ModelNet40 npz (default: the shared one)")] = None,
        cache_dir: Annotated[
            Path | None, typer.Option(help="Cache graph outputs here (default .cache/calibrate)")
        ] = None,
    ) -> None:
        """Fit temperature, OOD statistics and the up_axis=auto selector of served versions on ModelNet40
        train; write them beside the graph."""
        import logging

        from export.calibrate import calibrate_version

        logging.basicConfig(level=logging.INFO, format="%(message)s")
        # classify first: embed reuses its outputs when the two graphs share the backbone.
        for model in models or ["classify", "embed"]:
            try:
                doc = calibrate_version(
                    repository,
                    model,
                    version,
                    fit_per_class=fit_per_class,
                    rank=rank,
                    data=data,
                    cache_dir=cache_dir or Path(".cache/calibrate"),
                    up_shapes=up_shapes,
                )
            except (ValueError, OSError) as exc:
                typer.echo(f"calibrate {model} failed: {exc}", err=True)
                raise typer.Exit(1) from None
            temperature = f"temperature {doc['temperature']:.3f}, " if doc["temperature"] else ""
            typer.echo(
                f"{model} v{doc['version']}: {temperature}OOD threshold {doc['ood']['threshold']:.3f} "
                f"({doc['data']['fit_rows']} fitting / {doc['data']['val_rows']} validation shapes), "
                f"up axis found for {doc['up_axis']['val_axis_found']:.1%} of turned validation shapes "
                f"({doc['seconds']:.0f} s)"
            )

    @app.command("validate-repository")
    def validate_command(
        repository: Annotated[Path, typer.Argument(help="Model repository to check")] = Path(
            "model_repository"
        ),
        run: Annotated[bool, typer.Option(help="Also run each model.onnx on a small batch")] = True,
        torchscript: Annotated[bool, typer.Option(help="Also load and run model.pt (needs torch)")] = False,
    ) -> None:
        """Check every config.pbtxt, crosspoint.json and model file in REPOSITORY; exit 1 on any problem."""
        from export.validate import validate_repository

        problems = validate_repository(repository, run_models=run, torchscript=torchscript)
        for problem in problems:
            typer.echo(str(problem), err=True)
        if problems:
            raise typer.Exit(1)
        models = sorted(p.name for p in repository.iterdir() if p.is_dir() and not p.name.startswith("."))
        typer.echo(f"{repository}: valid ({', '.join(models) or 'no models'})")


def _check_precision(repository: Path, model: str, version: int | None, shapes: int) -> None:
    from export.precision import check_version

    try:
        doc = check_version(repository, model, version, shapes=shapes)
    except (ValueError, OSError, RuntimeError) as exc:
        typer.echo(f"precision check of {model} failed: {exc}", err=True)
        raise typer.Exit(1) from None
    verdicts = "; ".join(
        f"{c['runtime']} {c['precision']}: "
        + ("within budget" if c.get("passed") else c.get("skipped", "outside budget"))
        + "".join(f", {k} {v:.4f}" for k, v in c.get("metrics", {}).items() if isinstance(v, float))
        + (f", {c['speed']['x_fp32']:.2f}x fp32 at batch {c['speed']['batch']}" if "speed" in c else "")
        for c in doc["candidates"]
    )
    chosen = doc["chosen"]
    typer.echo(
        f"{model} v{doc['version']}: serves {chosen['runtime']} {chosen['precision']} "
        f"({doc['data']['shapes']} test shapes; {verdicts})"
    )
