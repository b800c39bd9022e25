"""End-to-end fine-tuning of the DGCNN classifier on ModelNet40 (backbone and class head together).

    crosspoint train classify --init weights/crosspoint_dgcnn_cls.safetensors --out runs/classify

Starts from a classifier checkpoint (a CrossPoint backbone + the linear head `train head` fitted on its
frozen embeddings) or from a bare backbone (a fresh linear head). The linear probe is capped by what the
frozen features separate (cup/vase, flower_pot/plant, night_stand/dresser, table/desk: docs/training.md);
fine-tuning moves the features. Recipe: AdamW, a smaller learning rate for the backbone than for the head,
cosine per step, the reference's smoothed cross-entropy (0.2) and the DGCNN classification augmentation
(anisotropic scale + shift, point shuffle) on the prepared points the gateway also feeds the model.
10% of train (stratified, seeded) is held out: it picks the best checkpoint; the test split is only
reported. Resumable mid-epoch (state every `save_every_steps` and at each epoch end).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crosspoint import checkpoint
from crosspoint.losses import smoothed_cross_entropy
from crosspoint.models import create_model
from crosspoint.train import runtime as rt
from crosspoint.train.partseg import load_pretrained
from crosspoint.train.state import load_state, read_meta, save_state


@dataclass
class ClassifyTrainConfig:
    init: str  # a dgcnn checkpoint: a classifier (backbone + head) or a pretrained backbone
    out: str = "runs/classify"
    data: str | None = None  # ModelNet40 npz; None = the shared one
    epochs: int = 3
    batch_size: int = 32
    lr: float = 2e-4  # backbone
    head_lr: float = 1e-3
    lr_min_ratio: float = 0.02  # cosine ends at lr * this
    weight_decay: float = 1e-4
    label_smoothing: float = (
        0.0  # the init head is a logistic regression: smoothing would fight its logit scale
    )
    num_points: int = 1024
    val_fraction: float = 0.1
    seed: int = 0
    num_workers: int = 0
    device: str | None = None
    precision: str | None = None  # bf16 | fp32 autocast; None = bf16 where supported (runtime.py)
    save_every_steps: int = 50
    eval_batch_size: int = 64
    max_steps: int = 0  # stop early (tests); the schedule is unchanged
    train_limit: int = 0  # train on a seeded subset (tests, quick looks); 0 = all
    test_limit: int = 0  # report test top-1 on the first rows only (tests); 0 = all
    cache_dir: str | None = None


def build_model(cfg: ClassifyTrainConfig, num_classes: int) -> tuple[nn.Module, dict[str, Any]]:
    """The init checkpoint's network with a `num_classes` linear head; its head is kept when it fits."""
    source = checkpoint.load(cfg.init)
    args = {**asdict(source.model.config), "num_classes": num_classes, "head": "linear"}
    model = create_model(source.model_name, **args)
    loaded = load_pretrained(model, cfg.init)
    init = {**loaded, "weights_sha256": source.config.get("weights_sha256"), "preprocess": source.preprocess}
    return model, init


def accuracy(
    model: nn.Module, points: np.ndarray, labels: np.ndarray, batch_size: int, device: torch.device
) -> float:
    """Top-1 in eval mode and fp32: the form the exported graph serves."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(points), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(points[start : start + batch_size], dtype=np.float32))
            pred = model(x.to(device)).argmax(dim=1).cpu().numpy()
            correct += int((pred == labels[start : start + batch_size]).sum())
    return correct / max(len(points), 1)


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


def train(cfg: ClassifyTrainConfig, resume: bool = False) -> dict[str, Any]:
    from torch.utils.data import DataLoader

    from crosspoint.data import PointDataset, load_modelnet40_npz, train_val_split

    out = Path(cfg.out)
    state_path = out / "state.safetensors"
    resuming = resume and state_path.exists()
    if resuming:  # the stored config wins, except how and where it runs (as in pretraining)
        stored = read_meta(state_path)["config"]
        given = {k: getattr(cfg, k) for k in ("max_steps", "device", "precision", "num_workers", "out")}
        moved = {k: getattr(cfg, k) for k in ("data", "cache_dir") if getattr(cfg, k) is not None}
        cfg = ClassifyTrainConfig(**{**stored, **given, **moved})
    device = rt.pick_device(cfg.device)
    precision = rt.resolve_precision(cfg.precision, device)
    cfg = replace(cfg, precision=precision)
    rt.seed_everything(cfg.seed)

    full = load_modelnet40_npz(cfg.data, split="train", num_points=cfg.num_points, cache_dir=cfg.cache_dir)
    if cfg.train_limit and cfg.train_limit < len(full):
        full = full.subset(np.sort(np.random.default_rng(cfg.seed).permutation(len(full))[: cfg.train_limit]))
    fit_idx, val_idx = train_val_split(full.labels, val_fraction=cfg.val_fraction, seed=cfg.seed)
    fit, val = full.subset(fit_idx), full.subset(val_idx)
    test = load_modelnet40_npz(cfg.data, split="test", num_points=cfg.num_points, cache_dir=cfg.cache_dir)
    if cfg.test_limit and cfg.test_limit < len(test):
        test = test.subset(np.arange(cfg.test_limit))
    class_names = list(full.class_names)

    model, init = build_model(cfg, len(class_names))
    model.to(device)
    head_params = list(model.head.parameters())  # type: ignore[union-attr]
    head_ids = {id(p) for p in head_params}
    backbone_params = [p for p in model.parameters() if id(p) not in head_ids]
    optimizer = torch.optim.AdamW(
        [{"params": backbone_params, "lr": cfg.lr}, {"params": head_params, "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    meta: dict[str, Any] = {"step": 0, "epoch": 0, "epoch_step": 0, "history": [], "best_val": None}
    if resuming:
        meta.update(load_state(state_path, {"model": model}, optimizer, device))
    else:
        meta["init_val"] = accuracy(model, val.points, val.labels, cfg.eval_batch_size, device)
        print(f"init: validation top-1 {meta['init_val']:.4f}")
    dataset = PointDataset(fit, augment=True, seed=cfg.seed)
    steps_per_epoch = len(fit) // cfg.batch_size  # drop_last: BatchNorm and a steady step size
    total_steps = steps_per_epoch * cfg.epochs
    print(
        f"fine-tuning on {len(fit)} train shapes ({len(val)} validation, {len(test)} test), {device}, "
        f"{precision}: {steps_per_epoch} steps/epoch x {cfg.epochs} epochs, batch {cfg.batch_size}"
    )

    def save(tag: str, row: dict[str, Any] | None = None) -> None:
        extra = {
            "init": init,
            "step": meta["step"],
            "epoch": meta["epoch"],
            "history": meta["history"],
            **(row or {}),
        }
        checkpoint.save(out / f"{tag}.safetensors", model, checkpoint_metadata(cfg, class_names, extra))

    stop = False
    while meta["epoch"] < cfg.epochs and not stop:
        epoch, start = meta["epoch"], time.time()
        dataset.set_epoch(epoch)
        order = torch.randperm(len(fit), generator=torch.Generator().manual_seed(cfg.seed * 100003 + epoch))
        skip = meta["epoch_step"] * cfg.batch_size  # a resumed epoch continues where its state was saved
        loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            sampler=order[skip:].tolist(),
            drop_last=True,
            num_workers=cfg.num_workers,
        )
        model.train()
        losses: list[float] = []
        for batch in loader:
            lr_scale = rt.cosine_lr(meta["step"], total_steps, 1.0, cfg.lr_min_ratio)
            for group, base in zip(optimizer.param_groups, (cfg.lr, cfg.head_lr), strict=True):
                group["lr"] = base * lr_scale
            with rt.autocast(device, precision):
                logits = model(batch["points"].to(device)).float()
            loss = smoothed_cross_entropy(logits, batch["label"].to(device), cfg.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            meta["step"] += 1
            meta["epoch_step"] += 1
            if meta["step"] % 10 == 0:
                print(
                    f"step {meta['step']}/{total_steps} loss {np.mean(losses[-10:]):.4f} lr {cfg.lr * lr_scale:.2e}",
                    flush=True,
                )
            if cfg.save_every_steps and meta["step"] % cfg.save_every_steps == 0:
                save_state(state_path, {"model": model}, optimizer, {**meta, "config": asdict(cfg)})
            if cfg.max_steps and meta["step"] >= cfg.max_steps:
                stop = True
                break
        complete = meta["epoch_step"] >= steps_per_epoch
        if complete:
            meta["epoch"] += 1
            meta["epoch_step"] = 0
        row: dict[str, Any] = {
            "epoch": epoch,
            "step": meta["step"],
            "loss": float(np.mean(losses)) if losses else None,
            "seconds": time.time() - start,
            "val_accuracy": accuracy(model, val.points, val.labels, cfg.eval_batch_size, device),
        }
        meta["history"].append(row)
        print(
            " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
            flush=True,
        )
        if meta["best_val"] is None or row["val_accuracy"] > meta["best_val"]:
            meta["best_val"], meta["best_step"] = row["val_accuracy"], meta["step"]
            save("best", {"val_accuracy": row["val_accuracy"]})
        save_state(state_path, {"model": model}, optimizer, {**meta, "config": asdict(cfg)})
        save("last", {"val_accuracy": row["val_accuracy"]})
    best = checkpoint.load(out / "best.safetensors").model.to(device)
    meta["test_accuracy_of_best"] = accuracy(best, test.points, test.labels, cfg.eval_batch_size, device)
    print(
        f"best validation {meta['best_val']:.4f} at step {meta['best_step']}; its test top-1 {meta['test_accuracy_of_best']:.4f}"
    )
    return {**meta, "out": str(out)}
