"""`crosspoint train ...` commands: pretrain, head, classify, partseg (recipes in docs/training.md).

Every option is a field of the command's config dataclass (crosspoint/train/configs.py: its default and
help live there, once), plus `--resume`. torch and the training modules are imported inside the
commands, so `crosspoint --help` stays fast.
Under torchrun: `torchrun --nproc_per_node N -m crosspoint.train.cli pretrain ...`
(or `-m crosspoint.cli train pretrain ...`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from crosspoint.train.configs import (
    HEAD_CS,
    ClassifyTrainConfig,
    HeadConfig,
    PartSegTrainConfig,
    PretrainConfig,
)

app = typer.Typer(no_args_is_help=True)

_RESUME = inspect.Parameter(
    "resume",
    inspect.Parameter.KEYWORD_ONLY,
    default=False,
    annotation=Annotated[bool, typer.Option(help="Continue from OUT/state.safetensors (its stored config).")],
)


def config_options(config: type, skip: tuple[str, ...] = ()) -> list[inspect.Parameter]:
    """One keyword option per dataclass field: the field's type, default and help (`configs.option`)."""
    hints = typing.get_type_hints(config)
    params = []
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = inspect.Parameter.empty  # a required option
        option = typer.Option(help=f.metadata.get("help"))
        annotation = typing.cast(Any, Annotated)[hints[f.name], option]  # built at run time
        params.append(
            inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        )
    return params


def config_command(
    name: str,
    config: type,
    run: Callable[..., None],
    skip: tuple[str, ...] = (),
    extra: tuple[inspect.Parameter, ...] = (_RESUME,),
) -> None:
    """Register `run(**options)` as `crosspoint train NAME`, its options generated from `config`.

    `run`'s docstring is the command's help; typer reads the generated signature.
    """

    def command(**options: Any) -> None:
        run(**options)

    command.__signature__ = inspect.Signature([*config_options(config, skip), *extra])  # type: ignore[attr-defined]
    command.__doc__ = run.__doc__
    command.__name__ = name
    app.command(name)(command)


def _echo(summary: dict[str, Any], keys: tuple[str, ...]) -> None:
    typer.echo(json.dumps({k: summary.get(k) for k in keys}))


def pretrain(resume: bool, **options: Any) -> None:
    """CrossPoint self-supervised pretraining (intra- + cross-modal NT-Xent) on ModelNet40 train."""
    from crosspoint.train.pretrain import train

    summary = train(PretrainConfig(**options), resume=resume)
    _echo(summary, ("step", "epoch", "best_probe", "best_step", "random_probe", "out"))


def head(cs: str, feature_cache: bool, **options: Any) -> None:
    """Fit the ModelNet40 linear class head on frozen embeddings; store it as a `dgcnn` classifier."""
    from crosspoint.data import default_cache_dir
    from crosspoint.train.head import fit_head

    features = Path(options["cache_dir"] or default_cache_dir()) / "features"
    cfg = HeadConfig(
        **options,
        Cs=tuple(float(c) for c in cs.split(",")),
        feature_cache=str(features) if feature_cache else None,
    )
    result = fit_head(cfg)
    keys = ("classifier", "C", "val_accuracy", "train_accuracy", "sklearn_agreement_val")
    typer.echo(json.dumps({"out": cfg.out, **{k: result[k] for k in keys}}))


def classify(resume: bool, **options: Any) -> None:
    """Fine-tune the DGCNN classifier end to end on ModelNet40 (best checkpoint chosen on validation)."""
    from crosspoint.train.classify import train

    summary = train(ClassifyTrainConfig(**options), resume=resume)
    _echo(summary, ("step", "epoch", "init_val", "best_val", "best_step", "test_accuracy_of_best", "out"))


def partseg(resume: bool, **options: Any) -> None:
    """Fine-tune DGCNN part segmentation (reference recipe) on ShapeNetPart (+ procedural shapes)."""
    from crosspoint.train.partseg import train

    summary = train(PartSegTrainConfig(**options), resume=resume)
    last = summary["history"][-1] if summary["history"] else None
    typer.echo(
        json.dumps({"out": summary["out"], "epoch": summary["epoch"], "data": summary["data"], "last": last})
    )


# `train head` takes the C grid as one comma-separated string and the embedding cache as a switch
# (kept under CACHE_DIR/features); the config holds the grid and the cache path.
_HEAD_OPTIONS = (
    inspect.Parameter(
        "cs",
        inspect.Parameter.KEYWORD_ONLY,
        default=",".join(f"{c:g}" for c in HEAD_CS),
        annotation=Annotated[
            str, typer.Option("--cs", help="Comma-separated C grid (chosen on validation).")
        ],
    ),
    inspect.Parameter(
        "feature_cache",
        inspect.Parameter.KEYWORD_ONLY,
        default=True,
        annotation=Annotated[bool, typer.Option(help="Cache embeddings under CACHE_DIR/features.")],
    ),
)

config_command("pretrain", PretrainConfig, pretrain)
config_command("head", HeadConfig, head, skip=("Cs", "feature_cache"), extra=_HEAD_OPTIONS)
config_command("classify", ClassifyTrainConfig, classify)
config_command("partseg", PartSegTrainConfig, partseg)


if __name__ == "__main__":  # torchrun --nproc_per_node N -m crosspoint.train.cli pretrain ...
    app()
