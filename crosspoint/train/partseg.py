"""Part-segmentation fine-tuning with the reference recipe (MohamedAfham/CrossPoint `train_partseg.py`).

    crosspoint train partseg --procedural 2000 --epochs 50 --out runs/partseg

DGCNN_partseg (k=40, 2048 points, category one-hot input), SGD lr 0.1 (the reference's `lr * 100`)
momentum 0.9 weight decay 1e-4, cosine per epoch down to 1e-3, cross-entropy with the reference's label
smoothing 0.2, batch 8 (`scripts/script.sh`). Data: ShapeNetPart train+val ("trainval", as the reference),
optionally mixed with procedural part-labelled shapes prepared exactly like the real ones. The only
augmentation of the reference loader is a point shuffle (`translate_pointcloud` is defined there but
never called); `--scale-translate` is offered on top, off by default.
Pretrained weights load with strict=False, as the reference: only names and shapes that match.
The reference keeps the checkpoint with the best TEST mIoU; we keep the last one and only report test.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from crosspoint import checkpoint
from crosspoint.data.shapenetpart_meta import CATEGORY_NAMES, NUM_CATEGORIES, PART_NAMES, part_range
from crosspoint.losses import smoothed_cross_entropy
from crosspoint.models import create_model
from crosspoint.train import runtime as rt
from crosspoint.train.configs import PartSegTrainConfig
from crosspoint.train.state import load_state, save_state, start_run


class ProceduralParts(Dataset):
    """Procedural shapes through the same `prepare` as the real ones (unit sphere, FPS), as tensors."""

    def __init__(self, num_shapes: int, num_points: int, seed: int) -> None:
        from crosspoint.data.procedural import ProceduralPartDataset

        # Twice the points, then FPS down: the real clouds are FPS samples too.
        self.source = ProceduralPartDataset(num_shapes, num_points=2 * num_points, seed=seed)
        self.num_points, self.seed = num_points, seed

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from crosspoint.data.prepared import prepare_labelled_cloud

        item = self.source[index]
        points, labels = prepare_labelled_cloud(
            item["points"],
            item["part_labels"],
            f"procedural/{self.seed}/{index}",
            self.num_points,
        )
        return {
            "points": torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
            "part_labels": torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64)),
            "category": torch.tensor(int(item["category"]), dtype=torch.int64),
        }


def build_datasets(cfg: PartSegTrainConfig) -> tuple[Dataset, Any, dict[str, int]]:
    from typing import cast

    from torch.utils.data import ConcatDataset

    from crosspoint.data import PartDataset, load_shapenetpart_npz

    real = load_shapenetpart_npz(
        cfg.data, split=cast(Any, cfg.train_split), num_points=cfg.num_points, cache_dir=cfg.cache_dir
    )
    parts: list[Dataset] = [PartDataset(real, augment=True, seed=cfg.seed)] if len(real) else []
    if cfg.procedural:
        parts.append(ProceduralParts(cfg.procedural, cfg.num_points, cfg.procedural_seed))
    if not parts:
        raise ValueError("no training shapes: the real split is empty and --procedural is 0")
    evaluation = load_shapenetpart_npz(
        cfg.data, split=cast(Any, cfg.eval_split), num_points=cfg.num_points, cache_dir=cfg.cache_dir
    )
    return ConcatDataset(parts), evaluation, {"real": len(real), "procedural": cfg.procedural}


def load_pretrained(model: nn.Module, path: str) -> dict[str, Any]:
    """strict=False like the reference, but only tensors whose name AND shape match are taken."""
    source = checkpoint.load(path).state_dict
    own = model.state_dict()
    taken = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(taken, strict=False)
    # BatchNorm step counters are scalars and always "match": leave them out of the count.
    counted = [k for k in taken if not k.endswith("num_batches_tracked")]
    return {
        "path": path,
        "loaded": len(counted),
        "of": sum(not k.endswith("num_batches_tracked") for k in own),
    }


def checkpoint_metadata(cfg: PartSegTrainConfig, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "category_names": list(CATEGORY_NAMES),
        "part_names": list(PART_NAMES),
        "category_parts": {name: list(part_range(name)) for name in CATEGORY_NAMES},
        "preprocess": {**checkpoint.DEFAULT_PREPROCESS, "num_points": cfg.num_points},
        "training": {"task": "partseg", "partseg_config": asdict(cfg), "torch": torch.__version__, **extra},
    }


@dataclass
class PartSegTraining:
    """A part-segmentation run's moving parts; `meta` is what the resume state stores besides the tensors."""

    cfg: PartSegTrainConfig  # as resolved: a resumed run's stored config, the precision decided
    device: torch.device
    precision: str  # bf16 | fp32 autocast, resolved for the device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    pretrained: dict[str, Any] | None  # what `load_pretrained` took
    dataset: Any  # real (+ procedural) training shapes
    evaluation: Any  # the `eval_split` shapes
    sizes: dict[str, int]
    drop_last: bool
    meta: dict[str, Any]

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)


def train(cfg: PartSegTrainConfig, resume: bool = False) -> dict[str, Any]:
    s = setup(cfg, resume)
    stop = False
    while s.meta["epoch"] < s.cfg.epochs and not stop:
        row, complete, stop = train_epoch(s)
        end_epoch(s, row, complete, stop)
    return {**s.meta, "out": str(s.out), "data": s.sizes}


def setup(cfg: PartSegTrainConfig, resume: bool = False) -> PartSegTraining:
    """Config (a resumed run's stored one), seeds, model, optimizer, loop position and data."""
    cfg, device, resuming = start_run(cfg, resume)  # the stored config wins, as in pretraining
    state_path, precision = Path(cfg.out) / "state.safetensors", str(cfg.precision)
    model = create_model("dgcnn_partseg", k=cfg.k, dropout=cfg.dropout).to(device)
    pretrained = load_pretrained(model, cfg.pretrained) if cfg.pretrained else None
    optimizer = torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )
    meta: dict[str, Any] = {"step": 0, "epoch": 0, "history": []}
    if resuming:
        meta.update(load_state(state_path, {"model": model}, optimizer, device))
    dataset, evaluation, sizes = build_datasets(cfg)
    # The reference drops the last batch only for >= 100 shapes; a batch of 1 would also break BatchNorm.
    n_train = len(dataset)  # type: ignore[arg-type]
    drop_last = n_train >= 100 or n_train % cfg.batch_size == 1
    print(
        f"part segmentation on {sizes} training shapes, {len(evaluation)} {cfg.eval_split} shapes, {device}"
    )
    return PartSegTraining(
        cfg, device, precision, model, optimizer, pretrained, dataset, evaluation, sizes, drop_last, meta
    )


def train_epoch(s: PartSegTraining) -> tuple[dict[str, Any], bool, bool]:
    """One epoch (SGD at this epoch's cosine lr) -> (its history row so far, completed?, stopped?)."""
    from torch.utils.data import DataLoader

    cfg, meta = s.cfg, s.meta
    epoch, start = meta["epoch"], time.time()
    for part in getattr(s.dataset, "datasets", []):
        if hasattr(part, "set_epoch"):
            part.set_epoch(epoch)
    lr = rt.cosine_lr(epoch, cfg.epochs, cfg.lr, cfg.lr_min)  # CosineAnnealingLR stepped per epoch
    for group in s.optimizer.param_groups:
        group["lr"] = lr
    # Seeded order and loader generator: the global RNG is left to dropout alone.
    order = torch.randperm(len(s.dataset), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
    loader = DataLoader(
        s.dataset,
        batch_size=cfg.batch_size,
        sampler=order.tolist(),
        drop_last=s.drop_last,
        num_workers=cfg.num_workers,
        generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch),
    )
    s.model.train()
    losses = []
    stop = False
    for batch in loader:
        losses.append(train_step(s, batch, epoch))
        if cfg.max_steps and meta["step"] >= cfg.max_steps:
            stop = True
            break
    complete = len(losses) == len(loader)  # max_steps may land exactly on the epoch's end
    row = {
        "epoch": epoch,
        "lr": lr,
        "loss": float(np.mean(losses)) if losses else None,
        "seconds": time.time() - start,
    }
    return row, complete, stop


def train_step(s: PartSegTraining, batch: dict[str, torch.Tensor], epoch: int) -> float:
    """One SGD step on smoothed per-point cross-entropy -> the loss."""
    from crosspoint.augment import scale_translate

    cfg = s.cfg
    points, labels, cats = batch["points"], batch["part_labels"], batch["category"]
    if cfg.scale_translate:
        rng = np.random.default_rng([cfg.seed, epoch, s.meta["step"]])
        points = torch.stack([torch.from_numpy(scale_translate(p.numpy(), rng)) for p in points])
    onehot = nn.functional.one_hot(cats, NUM_CATEGORIES).float().to(s.device)
    with rt.autocast(s.device, s.precision):
        logits = s.model(points.to(s.device), onehot).float()
    loss = smoothed_cross_entropy(
        logits.reshape(-1, logits.shape[-1]), labels.to(s.device).reshape(-1), cfg.label_smoothing
    )
    s.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    s.optimizer.step()
    s.meta["step"] += 1
    return loss.item()


def end_epoch(s: PartSegTraining, row: dict[str, Any], complete: bool, stop: bool) -> None:
    """Count the epoch if complete; evaluate when due; resume state (complete epochs only) and last."""
    from crosspoint.eval.partseg import evaluate_partseg

    cfg, meta, evaluation = s.cfg, s.meta, s.evaluation
    meta["epoch"] += 1 if complete else 0
    last = meta["epoch"] >= cfg.epochs or stop
    if len(evaluation) and ((cfg.eval_every and (row["epoch"] + 1) % cfg.eval_every == 0) or last):
        metrics = evaluate_partseg(
            s.model, evaluation.points, evaluation.part_labels, evaluation.categories, device=s.device
        )
        row.update(instance_miou=metrics["instance_miou"], class_miou=metrics["class_miou"])
    meta["history"].append(row)
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    if complete:  # resumable state only at epoch ends: a resumed run redoes a cut-short epoch
        save_state(
            s.out / "state.safetensors", {"model": s.model}, s.optimizer, {**meta, "config": asdict(cfg)}
        )
    extra = {
        "epoch": meta["epoch"],
        "step": meta["step"],
        "data": s.sizes,
        "pretrained": s.pretrained,
        "history": meta["history"],
    }
    checkpoint.save(s.out / "last.safetensors", s.model, checkpoint_metadata(cfg, extra))
