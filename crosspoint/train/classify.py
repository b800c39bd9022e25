"""End-to-end fine-tuning of the DGCNN classifier on ModelNet40 (backbone and class head together).

    crosspoint train classify --init weights/crosspoint_dgcnn_cls.safetensors --out runs/classify

Starts from a classifier checkpoint (a CrossPoint backbone + the linear head `train head` fitted on its
frozen embeddings) or from a bare backbone (a fresh linear head). The linear probe is capped by what the
frozen features separate (cup/vase, flower_pot/plant, night_stand/dresser, table/desk: docs/training.md);
fine-tuning moves the features. Recipe: AdamW, a smaller learning rate for the backbone than for the head,
cosine per step, smoothed cross-entropy (`label_smoothing`; 0 keeps the init head's logit scale), the DGCNN classification augmentation
(anisotropic scale + shift, point shuffle) plus the 8 axis-aligned headings (`up_axis=auto` picks the
up axis, not the heading) on the prepared points the gateway also feeds the model. The first
`head_warmup_steps` train the head alone (the init head never saw augmented clouds).
10% of train (stratified, seeded) is held out: it picks the best checkpoint; the test split is only
reported. Resumable mid-epoch (state every `save_every_steps` and at each epoch end).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crosspoint import checkpoint
from crosspoint.losses import smoothed_cross_entropy
from crosspoint.models import create_model
from crosspoint.train import runtime as rt
from crosspoint.train.configs import ClassifyTrainConfig
from crosspoint.train.partseg import load_pretrained
from crosspoint.train.state import load_state, save_state, start_run


def build_model(cfg: ClassifyTrainConfig, num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """The init checkpoint's network with a `num_classes` linear head: zeros, or the init's head when
    `keep_head` and it fits."""
    source = checkpoint.load(cfg.init)
    args = {**asdict(source.model.config), "num_classes": num_classes, "head": "linear"}
    model = create_model(source.model_name, **args)
    loaded = load_pretrained(model, cfg.init)
    if not cfg.keep_head:
        for p in model.head.parameters():  # type: ignore[union-attr]
            nn.init.zeros_(p)
        loaded["head"] = "zeros"
    init = {**loaded, "weights_sha256": source.config.get("weights_sha256"), "preprocess": source.preprocess}
    return model, init


def accuracy(
    model: nn.Module, points: np.ndarray, labels: np.ndarray, batch_size: int, device: torch.device
) -> float:
    """Top-1 in eval mode and fp32: the form the exported graph serves."""
    from crosspoint.eval.features import embed

    features = torch.from_numpy(embed(model, points, batch_size, device)).to(device)
    with torch.no_grad():
        pred = model.forward_head(features).argmax(dim=1).cpu().numpy()  # type: ignore[operator]
    return float((pred == labels).mean()) if len(pred) else 0.0


def checkpoint_metadata(
    cfg: ClassifyTrainConfig, class_names: list[str], extra: dict[str, Any]
) -> dict[str, Any]:
    preprocess = {
        **checkpoint.DEFAULT_PREPROCESS,
        **extra["init"].get("preprocess", {}),
        "num_points": cfg.num_points,
    }
    return {
        "class_names": class_names,
        "preprocess": preprocess,
        "training": {
            "task": "classify_finetune",
            "classify_config": asdict(cfg),
            "torch": torch.__version__,
            **extra,
        },
    }


@dataclass
class FineTuning:
    """A fine-tuning run's moving parts; `meta` is what the resume state stores besides the tensors."""

    cfg: ClassifyTrainConfig  # as resolved: a resumed run's stored config, the precision decided
    device: torch.device
    precision: str  # bf16 | fp32 autocast, resolved for the device
    model: nn.Module
    optimizer: torch.optim.Optimizer
    init: dict[str, Any]  # what the init checkpoint was (recorded in every saved checkpoint)
    class_names: list[str]
    fit: Any  # the training rows (train minus validation), validation and test sets
    val: Any
    test: Any
    dataset: Any  # `fit` with the classification augmentation
    meta: dict[str, Any]

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def steps_per_epoch(self) -> int:
        return len(self.fit) // self.cfg.batch_size  # drop_last: BatchNorm and a steady step size

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.cfg.epochs

    def val_accuracy(self) -> float:
        return accuracy(self.model, self.val.points, self.val.labels, self.cfg.eval_batch_size, self.device)

    def save_state(self) -> None:
        meta = {**self.meta, "config": asdict(self.cfg)}
        save_state(self.out / "state.safetensors", {"model": self.model}, self.optimizer, meta)

    def save(self, tag: str, row: dict[str, Any] | None = None) -> None:
        meta = self.meta
        extra = {
            "init": self.init,
            "step": meta["step"],
            "epoch": meta["epoch"],
            "history": meta["history"],
            **(row or {}),
        }
        metadata = checkpoint_metadata(self.cfg, self.class_names, extra)
        checkpoint.save(self.out / f"{tag}.safetensors", self.model, metadata)


def train(cfg: ClassifyTrainConfig, resume: bool = False) -> dict[str, Any]:
    t = setup(cfg, resume)
    stop = False
    while t.meta["epoch"] < t.cfg.epochs and not stop:
        epoch, start = t.meta["epoch"], time.time()
        losses, stop = train_epoch(t)
        end_epoch(t, epoch, start, losses)
    best = checkpoint.load(t.out / "best.safetensors").model.to(t.device)
    meta = t.meta
    meta["test_accuracy_of_best"] = accuracy(
        best, t.test.points, t.test.labels, t.cfg.eval_batch_size, t.device
    )
    print(
        f"best validation {meta['best_val']:.4f} at step {meta['best_step']}; its test top-1 {meta['test_accuracy_of_best']:.4f}"
    )
    return {**meta, "out": str(t.out)}


def setup(cfg: ClassifyTrainConfig, resume: bool = False) -> FineTuning:
    """Config (a resumed run's stored one), seeds, data, model, optimizer and loop position."""
    from crosspoint.data import PointDataset

    cfg, device, resuming = start_run(cfg, resume)  # the stored config wins, as in pretraining
    state_path, precision = Path(cfg.out) / "state.safetensors", str(cfg.precision)
    fit, val, test, class_names = load_splits(cfg)
    model, init = build_model(cfg, len(class_names))
    model.to(device)
    optimizer = build_optimizer(model, cfg)
    meta: dict[str, Any] = {"step": 0, "epoch": 0, "epoch_step": 0, "history": [], "best_val": None}
    t = FineTuning(cfg, device, precision, model, optimizer, init, class_names, fit, val, test, None, meta)
    if resuming:
        meta.update(load_state(state_path, {"model": model}, optimizer, device))
    else:
        meta["init_val"] = t.val_accuracy()
        print(f"init: validation top-1 {meta['init_val']:.4f}")
    t.dataset = PointDataset(fit, augment=True, seed=cfg.seed, turns=cfg.turns)
    print(
        f"fine-tuning on {len(fit)} train shapes ({len(val)} validation, {len(test)} test), {device}, "
        f"{precision}: {t.steps_per_epoch} steps/epoch x {cfg.epochs} epochs, batch {cfg.batch_size}"
    )
    return t


def load_splits(cfg: ClassifyTrainConfig) -> tuple[Any, Any, Any, list[str]]:
    """(fit, validation, test, class names): validation is a stratified seeded share of train."""
    from crosspoint.data import load_modelnet40_npz, train_val_split

    full = load_modelnet40_npz(cfg.data, split="train", num_points=cfg.num_points, cache_dir=cfg.cache_dir)
    if cfg.train_limit and cfg.train_limit < len(full):
        full = full.subset(np.sort(np.random.default_rng(cfg.seed).permutation(len(full))[: cfg.train_limit]))
    fit_idx, val_idx = train_val_split(full.labels, val_fraction=cfg.val_fraction, seed=cfg.seed)
    fit, val = full.subset(fit_idx), full.subset(val_idx)
    test = load_modelnet40_npz(cfg.data, split="test", num_points=cfg.num_points, cache_dir=cfg.cache_dir)
    if cfg.test_limit and cfg.test_limit < len(test):
        test = test.subset(np.arange(cfg.test_limit))
    return fit, val, test, list(full.class_names)


def build_optimizer(model: nn.Module, cfg: ClassifyTrainConfig) -> torch.optim.Optimizer:
    """AdamW with two groups: the backbone at `lr`, the class head at `head_lr` (in that order)."""
    head_params = list(model.head.parameters())  # type: ignore[union-attr]
    head_ids = {id(p) for p in head_params}
    backbone_params = [p for p in model.parameters() if id(p) not in head_ids]
    return torch.optim.AdamW(
        [{"params": backbone_params, "lr": cfg.lr}, {"params": head_params, "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )


def train_epoch(t: FineTuning) -> tuple[list[float], bool]:
    """The rest of the current epoch -> (its losses, True when `max_steps` stopped it)."""
    from torch.utils.data import DataLoader

    cfg, meta = t.cfg, t.meta
    epoch = meta["epoch"]
    t.dataset.set_epoch(epoch)
    order = torch.randperm(len(t.fit), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
    skip = meta["epoch_step"] * cfg.batch_size  # a resumed epoch continues where its state was saved
    loader = DataLoader(
        t.dataset,
        batch_size=cfg.batch_size,
        sampler=order[skip:].tolist(),
        drop_last=True,
        num_workers=cfg.num_workers,
    )
    t.model.train()
    losses: list[float] = []
    for batch in loader:
        loss, lr_scale = train_step(t, batch)
        losses.append(loss)
        if meta["step"] % 10 == 0:
            print(
                f"step {meta['step']}/{t.total_steps} loss {np.mean(losses[-10:]):.4f} lr {cfg.lr * lr_scale:.2e}",
                flush=True,
            )
        if cfg.save_every_steps and meta["step"] % cfg.save_every_steps == 0:
            t.save_state()
        if cfg.max_steps and meta["step"] >= cfg.max_steps:
            return losses, True
    return losses, False


def train_step(t: FineTuning, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    """One AdamW step, both groups at the cosine-scaled learning rates -> (loss, the lr scale)."""
    cfg = t.cfg
    lr_scale = rt.cosine_lr(t.meta["step"], t.total_steps, 1.0, cfg.lr_min_ratio)
    for group, base in zip(t.optimizer.param_groups, (cfg.lr, cfg.head_lr), strict=True):
        group["lr"] = base * lr_scale
    # The init head was fitted on unaugmented clouds: left alone it would send large wrong gradients
    # into the backbone for the first steps, so it first learns the augmented features (BN statistics
    # adapt meanwhile: train mode, no backbone gradients).
    warming = t.meta["step"] < cfg.head_warmup_steps
    with rt.autocast(t.device, t.precision):
        with torch.set_grad_enabled(not warming):
            features = t.model.forward_features(batch["points"].to(t.device))  # type: ignore[operator]
        logits = t.model.forward_head(features).float()  # type: ignore[operator]
    loss = smoothed_cross_entropy(logits, batch["label"].to(t.device), cfg.label_smoothing)
    t.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    t.optimizer.step()
    t.meta["step"] += 1
    t.meta["epoch_step"] += 1
    return loss.item(), lr_scale


def end_epoch(t: FineTuning, epoch: int, start: float, losses: list[float]) -> None:
    """Validation top-1 of this (possibly cut-short) epoch; keep the best; resume state and last."""
    meta = t.meta
    if meta["epoch_step"] >= t.steps_per_epoch:
        meta["epoch"] += 1
        meta["epoch_step"] = 0
    row: dict[str, Any] = {
        "epoch": epoch,
        "step": meta["step"],
        "loss": float(np.mean(losses)) if losses else None,
        "seconds": time.time() - start,
        "val_accuracy": t.val_accuracy(),
    }
    meta["history"].append(row)
    print(
        " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()), flush=True
    )
    if meta["best_val"] is None or row["val_accuracy"] > meta["best_val"]:
        meta["best_val"], meta["best_step"] = row["val_accuracy"], meta["step"]
        t.save("best", {"val_accuracy": row["val_accuracy"]})
    t.save_state()
    t.save("last", {"val_accuracy": row["val_accuracy"]})
