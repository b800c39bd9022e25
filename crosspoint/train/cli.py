"""`crosspoint train ...` commands: pretrain, head, classify, partseg (recipes in docs/training.md).

torch and the training modules are imported inside the commands, so `crosspoint --help` stays fast.
Under torchrun: `torchrun --nproc_per_node N -m crosspoint.train.cli pretrain ...`
(or `-m crosspoint.cli train pretrain ...`).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True)

_DATA = typer.Option(help="Dataset npz (default: the shared one under ../shared/data).")
_DEVICE = typer.Option(help="cpu, cuda, cuda:1 ... (default: cuda if available, else cpu).")
_PRECISION = typer.Option(
    help="bf16 | fp32 (default: bf16 autocast where the device has bf16 arithmetic: CUDA, "
    "AVX512-BF16/AMX CPUs; else fp32). A resumed run takes the one given now."
)


@app.command()
def pretrain(
    out: Annotated[
        str, typer.Option(help="Run directory (checkpoints, metrics.jsonl, tb/).")
    ] = "runs/pretrain",
    data: Annotated[str | None, _DATA] = None,
    backbone: Annotated[str, typer.Option(help="dgcnn | pointnet")] = "dgcnn",
    image_encoder: Annotated[
        str, typer.Option(help="resnet50_image (paper) | resnet18_image")
    ] = "resnet50_image",
    epochs: int = 100,
    batch_size: Annotated[int, typer.Option(help="Global batch, split over DDP ranks.")] = 20,
    lr: float = 1e-3,
    weight_decay: float = 1e-6,
    num_points: Annotated[int, typer.Option(help="Points per augmented view.")] = 1024,
    k: Annotated[int, typer.Option(help="DGCNN neighbours.")] = 15,
    image_size: int = 224,
    views: Annotated[int, typer.Option(help="Rendered views cached per object.")] = 8,
    subset: Annotated[int, typer.Option(help="Pretrain on this many train shapes (0 = all).")] = 0,
    val_fraction: float = 0.1,
    probe_every: Annotated[int, typer.Option(help="Epochs between validation probes (0 = never).")] = 1,
    probe_points: int = 1024,
    probe_train_size: Annotated[
        int, typer.Option(help="Labelled rows the probe SVM fits on (0 = all).")
    ] = 2000,
    probe_val_size: Annotated[int, typer.Option(help="Validation rows the probe scores (0 = all).")] = 0,
    seed: int = 0,
    num_workers: int = 0,
    device: Annotated[str | None, _DEVICE] = None,
    precision: Annotated[str | None, _PRECISION] = None,
    channels_last: Annotated[bool, typer.Option(help="channels_last image encoder (GPU only).")] = True,
    gather_negatives: Annotated[bool, typer.Option(help="DDP: negatives from all ranks.")] = False,
    sync_bn: Annotated[bool, typer.Option(help="DDP on GPU: SyncBatchNorm.")] = False,
    save_every_steps: int = 0,
    max_steps: Annotated[int, typer.Option(help="Stop after this many steps in total (0 = all epochs).")] = 0,
    log_every: int = 10,
    cache_dir: Annotated[str | None, typer.Option(help="Prepared data + rendered views cache.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue from OUT/state.safetensors (its stored config).")
    ] = False,
) -> None:
    """CrossPoint self-supervised pretraining (intra- + cross-modal NT-Xent) on ModelNet40 train."""
    from crosspoint.train.pretrain import PretrainConfig, train

    cfg = PretrainConfig(
        data=data, out=out, backbone=backbone, image_encoder=image_encoder, epochs=epochs, batch_size=batch_size,
        lr=lr, weight_decay=weight_decay, num_points=num_points, k=k, image_size=image_size, views=views,
        subset=subset, val_fraction=val_fraction, probe_every=probe_every, probe_points=probe_points,
        probe_train_size=probe_train_size, probe_val_size=probe_val_size, seed=seed, num_workers=num_workers, device=device, precision=precision,
        channels_last=channels_last, gather_negatives=gather_negatives, sync_bn=sync_bn,
        save_every_steps=save_every_steps, max_steps=max_steps, log_every=log_every, cache_dir=cache_dir,
    )  # fmt: skip
    summary = train(cfg, resume=resume)
    typer.echo(
        json.dumps(
            {k: summary[k] for k in ("step", "epoch", "best_probe", "best_step", "random_probe", "out")}
        )
    )


@app.command()
def head(
    checkpoint: Annotated[
        str, typer.Option(help="Pretrained backbone (e.g. runs/pretrain/best.safetensors).")
    ],
    out: Annotated[
        str, typer.Option(help="Where to write the classifier checkpoint.")
    ] = "runs/cls.safetensors",
    data: Annotated[str | None, _DATA] = None,
    num_points: int = 1024,
    classifier: Annotated[str, typer.Option(help="logreg | linear_svc")] = "logreg",
    cs: Annotated[
        str, typer.Option("--cs", help="Comma-separated C grid (chosen on validation).")
    ] = "0.001,0.01,0.1,1,10",
    val_fraction: float = 0.1,
    train_limit: Annotated[int, typer.Option(help="Fit on a seeded subset of train (0 = all).")] = 0,
    seed: int = 0,
    batch_size: int = 32,
    device: Annotated[str | None, _DEVICE] = None,
    cache_dir: str | None = None,
    feature_cache: Annotated[bool, typer.Option(help="Cache embeddings under CACHE_DIR/features.")] = True,
) -> None:
    """Fit the ModelNet40 linear class head on frozen embeddings; store it as a `dgcnn` classifier."""
    from pathlib import Path

    from crosspoint.data import default_cache_dir
    from crosspoint.train.head import HeadConfig, fit_head

    cfg = HeadConfig(
        checkpoint=checkpoint, out=out, data=data, num_points=num_points, classifier=classifier,
        Cs=tuple(float(c) for c in cs.split(",")), val_fraction=val_fraction, train_limit=train_limit, seed=seed, batch_size=batch_size,
        device=device, cache_dir=cache_dir,
        feature_cache=str(Path(cache_dir or default_cache_dir()) / "features") if feature_cache else None,
    )  # fmt: skip
    result = fit_head(cfg)
    keys = ("classifier", "C", "val_accuracy", "train_accuracy", "sklearn_agreement_val")
    typer.echo(json.dumps({"out": out, **{k: result[k] for k in keys}}))


@app.command()
def classify(
    init: Annotated[
        str, typer.Option(help="dgcnn checkpoint: a classifier (backbone + head) or a backbone.")
    ],
    out: Annotated[
        str, typer.Option(help="Run directory (best/last checkpoints, resume state).")
    ] = "runs/classify",
    data: Annotated[str | None, _DATA] = None,
    epochs: int = 3,
    batch_size: int = 32,
    lr: Annotated[float, typer.Option(help="Backbone learning rate (cosine per step).")] = 2e-4,
    head_lr: float = 1e-3,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.0,
    num_points: int = 1024,
    val_fraction: Annotated[
        float, typer.Option(help="Held-out share of train; picks the best checkpoint.")
    ] = 0.1,
    seed: int = 0,
    num_workers: int = 0,
    device: Annotated[str | None, _DEVICE] = None,
    precision: Annotated[str | None, _PRECISION] = None,
    save_every_steps: int = 50,
    max_steps: int = 0,
    train_limit: Annotated[int, typer.Option(help="Train on a seeded subset (0 = all).")] = 0,
    cache_dir: str | None = None,
    resume: bool = False,
) -> None:
    """Fine-tune the DGCNN classifier end to end on ModelNet40 (best checkpoint chosen on validation)."""
    from crosspoint.train.classify import ClassifyTrainConfig, train

    cfg = ClassifyTrainConfig(
        init=init, out=out, data=data, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr,
        weight_decay=weight_decay, label_smoothing=label_smoothing, num_points=num_points,
        val_fraction=val_fraction, seed=seed, num_workers=num_workers, device=device, precision=precision,
        save_every_steps=save_every_steps, max_steps=max_steps, train_limit=train_limit, cache_dir=cache_dir,
    )  # fmt: skip
    summary = train(cfg, resume=resume)
    keys = ("step", "epoch", "init_val", "best_val", "best_step", "test_accuracy_of_best", "out")
    typer.echo(json.dumps({k: summary.get(k) for k in keys}))


@app.command()
def partseg(
    out: str = "runs/partseg",
    data: Annotated[str | None, _DATA] = None,
    pretrained: Annotated[str | None, typer.Option(help="dgcnn_partseg checkpoint (strict=False).")] = None,
    procedural: Annotated[int, typer.Option(help="Add this many procedural part-labelled shapes.")] = 0,
    procedural_seed: int = 0,
    epochs: int = 300,
    batch_size: int = 8,
    lr: float = 0.1,
    lr_min: float = 1e-3,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.2,
    k: int = 40,
    num_points: int = 2048,
    scale_translate: Annotated[
        bool, typer.Option(help="Extra scale/shift augmentation (not in the reference).")
    ] = False,
    eval_every: int = 1,
    seed: int = 0,
    num_workers: int = 0,
    device: Annotated[str | None, _DEVICE] = None,
    precision: Annotated[str | None, _PRECISION] = None,
    max_steps: int = 0,
    cache_dir: str | None = None,
    resume: bool = False,
) -> None:
    """Fine-tune DGCNN part segmentation (reference recipe) on ShapeNetPart (+ procedural shapes)."""
    from crosspoint.train.partseg import PartSegTrainConfig, train

    cfg = PartSegTrainConfig(
        data=data, out=out, pretrained=pretrained, procedural=procedural, procedural_seed=procedural_seed,
        epochs=epochs, batch_size=batch_size, lr=lr, lr_min=lr_min, momentum=momentum,
        weight_decay=weight_decay, label_smoothing=label_smoothing, k=k, num_points=num_points,
        scale_translate=scale_translate, eval_every=eval_every, seed=seed, num_workers=num_workers,
        device=device, precision=precision, max_steps=max_steps, cache_dir=cache_dir,
    )  # fmt: skip
    summary = train(cfg, resume=resume)
    typer.echo(
        json.dumps(
            {
                "out": summary["out"],
                "epoch": summary["epoch"],
                "data": summary["data"],
                "last": summary["history"][-1] if summary["history"] else None,
            }
        )
    )


if __name__ == "__main__":  # torchrun --nproc_per_node N -m crosspoint.train.cli pretrain ...
    app()
