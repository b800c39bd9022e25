"""The training configs, one dataclass per `crosspoint train` command: each field's default and help once.

`crosspoint/train/cli.py` makes every field a `--kebab-case` option (this help, this default); the
checkpoints and resume states store the whole config (`asdict`). Torch-free, so `crosspoint --help`
stays fast.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

HEAD_CS: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)

_DATA = "Dataset npz (default: the shared one under ../shared/data)."
_DEVICE = "cpu, cuda, cuda:1 ... (default: cuda if available, else cpu)."
_PRECISION = (
    "bf16 | fp32 (default: bf16 autocast where the device has bf16 arithmetic: CUDA, "
    "AVX512-BF16/AMX CPUs; else fp32). A resumed run takes the one given now."
)
_CACHE = "Prepared data cache (default: <repo>/.cache/data)."


def option(default: Any = None, help: str | None = None, *, required: bool = False) -> Any:
    """A config field with its CLI help (`field` metadata, read by crosspoint/train/cli.py)."""
    metadata = {"help": help} if help else {}
    if required:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class PretrainConfig:
    data: str | None = option(None, "ModelNet40 npz (default: the shared one; its train split only).")
    out: str = option("runs/pretrain", "Run directory (checkpoints, metrics.jsonl, tb/).")
    backbone: str = option("dgcnn", "dgcnn | pointnet")
    image_encoder: str = option("resnet50_image", "resnet50_image (paper) | resnet18_image (CPU recipe)")
    epochs: int = 100
    # global: split evenly over DDP ranks, as the reference's dist script
    batch_size: int = option(20, "Global batch, split over DDP ranks.")
    lr: float = 1e-3
    weight_decay: float = 1e-6
    temperature: float = option(0.1, "NT-Xent temperature.")
    num_points: int = option(1024, "Points per augmented view.")
    k: int = option(15, "DGCNN neighbours (reference scripts/script.sh).")
    image_size: int = 224
    views: int = option(4, "Rendered views cached per object; one is drawn per step.")
    subset: int = option(0, "Pretrain on this many train shapes (0 = all outside the validation split).")
    val_fraction: float = option(0.1, "Share of train held out of pretraining: the probe scores on it.")
    probe_every: int = option(1, "Epochs between validation probes (linear SVM; 0 = never).")
    probe_points: int = 1024
    probe_train_size: int = option(2000, "Labelled rows the probe SVM fits on (0 = all).")
    probe_val_size: int = option(0, "Validation rows the probe scores (0 = all).")
    seed: int = 0
    num_workers: int = 0
    device: str | None = option(None, _DEVICE)
    # How the run executes, like `device`: a resumed run takes the one given now.
    precision: str | None = option(None, _PRECISION)
    channels_last: bool = option(True, "channels_last image encoder (GPU only).")
    gather_negatives: bool = option(False, "DDP: negatives from all ranks (reference: per-rank).")
    sync_bn: bool = option(False, "DDP on GPU: SyncBatchNorm (reference: per-rank BN statistics).")
    save_every_steps: int = option(0, "Extra resumable saves inside an epoch (0 = at epoch ends only).")
    max_steps: int = option(0, "Stop after this many steps in total (0 = all epochs); schedule unchanged.")
    log_every: int = 10
    cache_dir: str | None = option(
        None, "Prepared data + rendered views cache (default: <repo>/.cache/data)."
    )


@dataclass
class HeadConfig:
    checkpoint: str = option(help="Pretrained backbone (e.g. runs/pretrain/best.safetensors).", required=True)
    out: str = option("runs/cls.safetensors", "Where to write the classifier checkpoint.")
    data: str | None = option(None, _DATA)
    num_points: int = 1024
    classifier: str = option("logreg", "logreg | linear_svc")
    Cs: Sequence[float] = field(default_factory=lambda: HEAD_CS)  # CLI: --cs, comma-separated
    val_fraction: float = 0.1
    train_limit: int = option(0, "Fit on a seeded subset of train (0 = all).")
    seed: int = 0
    batch_size: int = 32
    device: str | None = option(None, _DEVICE)
    cache_dir: str | None = option(None, _CACHE)
    feature_cache: str | None = None  # directory for cached embeddings (None: no cache); CLI: a switch


@dataclass
class ClassifyTrainConfig:
    init: str = option(help="dgcnn checkpoint: a classifier (backbone + head) or a backbone.", required=True)
    out: str = option("runs/classify", "Run directory (best/last checkpoints, resume state).")
    data: str | None = option(None, _DATA)
    epochs: int = 3
    batch_size: int = 32
    lr: float = option(2e-4, "Backbone learning rate (cosine per step).")
    head_lr: float = 1e-3
    lr_min_ratio: float = option(0.02, "The cosine ends at lr * this.")
    weight_decay: float = 1e-4
    # the init head is a logistic regression: smoothing would fight its logit scale
    label_smoothing: float = 0.0
    head_warmup_steps: int = option(
        100, "First steps train the head only, on the backbone's train-mode features (no backbone grads)."
    )
    keep_head: bool = option(
        True, "Start from the init checkpoint's head when it has one that fits (--no-keep-head: a zero head)."
    )
    turns: bool = option(True, "Turn each training cloud to one of its 8 axis-aligned headings.")
    num_points: int = 1024
    val_fraction: float = option(0.1, "Held-out share of train; picks the best checkpoint.")
    seed: int = 0
    num_workers: int = 0
    device: str | None = option(None, _DEVICE)
    precision: str | None = option(None, _PRECISION)
    save_every_steps: int = 50
    eval_batch_size: int = 64
    max_steps: int = option(0, "Stop after this many steps (0 = all epochs); the schedule is unchanged.")
    train_limit: int = option(0, "Train on a seeded subset (0 = all).")
    test_limit: int = option(0, "Report test top-1 on the first rows only (0 = all).")
    cache_dir: str | None = option(None, _CACHE)


@dataclass
class PartSegTrainConfig:
    data: str | None = option(None, "ShapeNetPart npz (default: the shared one).")
    out: str = "runs/partseg"
    pretrained: str | None = option(None, "dgcnn_partseg checkpoint (strict=False).")
    train_split: str = "trainval"
    eval_split: str = "test"
    procedural: int = option(0, "Add this many procedural part-labelled shapes.")
    procedural_seed: int = 0
    epochs: int = 300  # scripts/script.sh
    batch_size: int = 8  # scripts/script.sh
    lr: float = 0.1
    lr_min: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 1e-4
    label_smoothing: float = 0.2
    k: int = 40
    num_points: int = 2048
    dropout: float = 0.5
    scale_translate: bool = option(False, "Extra scale/shift augmentation (not in the reference).")
    eval_every: int = option(1, "Epochs between evaluations (0 = only at the end).")
    seed: int = 0
    num_workers: int = 0
    device: str | None = option(None, _DEVICE)
    precision: str | None = option(None, _PRECISION)
    max_steps: int = option(0, "Stop after this many steps (0 = all epochs); the schedule is unchanged.")
    cache_dir: str | None = option(None, _CACHE)
