"""CrossPoint pretraining: intra-modal (two point views) + cross-modal (points vs a rendered image) NT-Xent.

Fast CPU recipe (minutes; see docs/training.md):
    crosspoint train pretrain --subset 1000 --epochs 3 --num-points 512 --k 10 \
        --image-encoder resnet18_image --image-size 64 --out runs/pretrain-fast
Paper recipe (GPUs):
    torchrun --nproc_per_node 8 -m crosspoint.cli train pretrain --epochs 100 --batch-size 20 \
        --num-points 1024 --k 15 --image-encoder resnet50_image --image-size 224 --out runs/pretrain

Writes to `--out`: `last.safetensors` / `best.safetensors` (the point backbone, `crosspoint.checkpoint`
format, the full PretrainConfig in its JSON), `state.safetensors` (everything `--resume` needs),
`metrics.jsonl` (losses per logged step, probe results) and `tb/` (TensorBoard).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from crosspoint import checkpoint
from crosspoint.losses import CrossPointLoss, crosspoint_loss
from crosspoint.models import create_model
from crosspoint.train import runtime as rt
from crosspoint.train.configs import PretrainConfig
from crosspoint.train.probe import ProbeData, load_probe_data, run_probe
from crosspoint.train.state import load_state, resumed_config, save_state


class Branch(nn.Module):
    """Backbone features -> 256-d projection: the module DDP wraps (a backbone's `forward` is its class head)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.project(self.model.forward_features(x))  # type: ignore[operator]


def build_models(cfg: PretrainConfig) -> tuple[nn.Module, nn.Module]:
    point_args: dict[str, Any] = {"k": cfg.k} if cfg.backbone == "dgcnn" else {}
    return create_model(cfg.backbone, **point_args), create_model(cfg.image_encoder)


def build_dataset(cfg: PretrainConfig, render: bool = True) -> tuple[Any, ProbeData]:
    """The unlabelled pretraining set (train minus validation, optionally a seeded subset) + the probe's data."""
    from crosspoint.data import PretrainDataset, load_modelnet40_npz, train_val_split
    from crosspoint.render import ViewStore

    full = load_modelnet40_npz(
        cfg.data, split="train", num_points=max(cfg.num_points, 1024), cache_dir=cfg.cache_dir
    )
    fit_idx, val_idx = train_val_split(full.labels, val_fraction=cfg.val_fraction, seed=cfg.seed)
    rows = np.random.default_rng(cfg.seed).permutation(fit_idx)
    rows = np.sort(rows[: cfg.subset] if cfg.subset else rows)
    train_set = full.subset(rows)
    views = ViewStore(
        _cache_dir(cfg) / "views", size=cfg.image_size, views_per_object=cfg.views, seed=cfg.seed
    )
    if render:  # under DDP rank 0 renders every view once; the others wait for it
        views.prefill(train_set, workers=cfg.num_workers, progress=True)
    dataset = PretrainDataset(
        train_set, views, num_points=cfg.num_points, image_size=cfg.image_size, seed=cfg.seed
    )
    probe = load_probe_data(
        cfg.data,
        fit_idx,
        val_idx,
        cfg.probe_points,
        cfg.probe_train_size,
        cfg.probe_val_size,
        cfg.seed,
        cfg.cache_dir,
    )
    return dataset, probe


def _cache_dir(cfg: PretrainConfig) -> Path:
    from crosspoint.data.prepared import default_cache_dir

    return Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()


def provenance(
    cfg: PretrainConfig,
    step: int,
    epoch: int,
    probe: dict[str, Any] | None,
    random_probe: float | None = None,
) -> dict[str, Any]:
    return {
        "task": "crosspoint_pretrain",
        "pretrain_config": asdict(cfg),
        "step": step,
        "epoch": epoch,
        "probe": probe,
        "random_weights_probe": random_probe,  # the same probe on the step-0 (random) weights
        "torch": torch.__version__,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def save_backbone(
    path: Path, model: nn.Module, cfg: PretrainConfig, meta: dict[str, Any], probe: Any
) -> None:
    preprocess = {**checkpoint.DEFAULT_PREPROCESS, "num_points": cfg.probe_points}
    training = provenance(cfg, meta["step"], meta["epoch"], probe, meta.get("random_probe"))
    checkpoint.save(path, model, {"training": training, "preprocess": preprocess})


def wrap_branches(
    point_model: nn.Module, image_model: nn.Module, cfg: PretrainConfig, run: rt.Runtime
) -> tuple[nn.Module, nn.Module]:
    """The modules the step calls: projections of both branches, under DDP when launched by torchrun."""
    branches: list[nn.Module] = [Branch(point_model), Branch(image_model)]
    if not run.distributed:
        return branches[0], branches[1]
    from torch.nn.parallel import DistributedDataParallel as DDP

    cuda = run.device.type == "cuda"
    if cfg.sync_bn and cuda:  # torch has no CPU SyncBatchNorm
        branches = [nn.SyncBatchNorm.convert_sync_batchnorm(b) for b in branches]
    ids = [run.device.index] if cuda else None
    return DDP(branches[0], device_ids=ids), DDP(branches[1], device_ids=ids)


def epoch_loader(
    dataset: Any, order: list[int], per_rank: int, cfg: PretrainConfig, epoch: int, pin_memory: bool
) -> Any:
    from torch.utils.data import DataLoader

    return DataLoader(
        dataset,
        batch_size=per_rank,
        sampler=order,
        drop_last=True,
        num_workers=cfg.num_workers,
        pin_memory=pin_memory,
        # Its own generator: a DataLoader iterator otherwise draws from the global RNG each epoch,
        # and a resumed run starts one more iterator than the straight run.
        generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch),
    )


def forward_loss(
    batch: dict[str, torch.Tensor],
    point_branch: nn.Module,
    image_branch: nn.Module,
    cfg: PretrainConfig,
    device: torch.device,
) -> CrossPointLoss:
    cuda = device.type == "cuda"
    views = torch.cat((batch["view1"], batch["view2"])).to(device, non_blocking=True)
    image = batch["image"].to(device, non_blocking=True)
    if cuda and cfg.channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    with rt.autocast(device, rt.resolve_precision(cfg.precision, device)):
        # Both views in one forward, as the reference: BatchNorm sees 2B clouds.
        z_points = point_branch(views)
        z_image = image_branch(image)
    z1, z2 = z_points.chunk(2)
    return crosspoint_loss(z1, z2, z_image, cfg.temperature, gather=cfg.gather_negatives)


@dataclass
class Pretraining:
    """A pretraining run's moving parts. `meta` is the loop position (step, epoch, step in epoch, best
    probe): what `state.safetensors` stores besides the weights, Adam moments and RNGs."""

    cfg: PretrainConfig  # as resolved: a resumed run's stored config, the precision decided
    run: rt.Runtime
    point_model: nn.Module
    image_model: nn.Module
    point_branch: nn.Module  # the modules the step calls (DDP-wrapped under torchrun)
    image_branch: nn.Module
    optimizer: torch.optim.Optimizer
    dataset: Any
    probe_data: ProbeData
    sampler: Any
    per_rank: int
    steps_per_epoch: int
    meta: dict[str, Any]
    writer: Any = None
    clock: tuple[float, int] = (0.0, 0)  # (time, step) of the last logged step

    @property
    def out(self) -> Path:
        return Path(self.cfg.out)

    @property
    def total_steps(self) -> int:
        return self.cfg.epochs * self.steps_per_epoch

    def save(self, probe: dict[str, Any] | None = None) -> None:
        """Resume state + `last.safetensors` (rank 0 only)."""
        if not self.run.is_main:
            return
        save_state(
            self.out / "state.safetensors",
            {"point": self.point_model, "image": self.image_model},
            self.optimizer,
            {**self.meta, "config": asdict(self.cfg)},
        )
        save_backbone(self.out / "last.safetensors", self.point_model, self.cfg, self.meta, probe)

    def probe(self) -> None:
        """Linear-SVM probe on the validation split; keeps `best.safetensors`, then saves."""
        meta = self.meta
        if self.run.is_main:
            result = run_probe(self.point_model, self.probe_data, self.run.device)
            scalars = {f"probe/{k}": v for k, v in result.items() if isinstance(v, float)}
            _log(self.out, self.writer, meta["step"], scalars, kind="probe")
            if meta["step"] == 0:
                meta["random_probe"] = result["val_accuracy"]  # kept for comparison, never "best"
            elif result["val_accuracy"] > meta["best_probe"]:
                meta.update(best_probe=result["val_accuracy"], best_step=meta["step"])
                save_backbone(self.out / "best.safetensors", self.point_model, self.cfg, meta, result)
            self.save(result)
        if self.run.distributed:
            torch.distributed.barrier()


def train(cfg: PretrainConfig, resume: bool = False) -> dict[str, Any]:
    p = setup(cfg, resume)
    if p.meta["step"] == 0 and p.cfg.probe_every > 0:
        p.probe()  # step 0 = random weights: the baseline every later probe is compared with
    p.clock = (time.time(), p.meta["step"])
    stop = False
    while p.meta["epoch"] < p.cfg.epochs and not stop:
        stop = train_epoch(p)
        if not stop:
            end_epoch(p)
    if stop:
        p.save()
    if p.run.distributed:
        torch.distributed.barrier()
    if p.writer is not None:
        p.writer.close()
    rt.teardown(p.run)
    return {
        **p.meta,
        "out": str(p.out),
        "steps_per_epoch": p.steps_per_epoch,
        "total_steps": p.total_steps,
    }


def setup(cfg: PretrainConfig, resume: bool = False) -> Pretraining:
    """Config (a resumed run's stored one), seeds, models, data, optimizer and loop position."""
    run = rt.setup(cfg.device)
    out = Path(cfg.out)
    state_path = out / "state.safetensors"
    resuming = resume and state_path.exists()
    if resuming:
        cfg = resume_config(state_path, cfg)
    cfg = dataclasses.replace(cfg, precision=rt.resolve_precision(cfg.precision, run.device))
    rt.seed_everything(cfg.seed)
    point_model, image_model = build_models(cfg)
    dataset, probe_data = build_dataset(cfg, render=run.is_main)
    if run.distributed:
        torch.distributed.barrier()
    point_model.to(run.device)
    image_model.to(run.device)
    if run.device.type == "cuda" and cfg.channels_last:
        image_model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = [*point_model.parameters(), *image_model.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    meta: dict[str, Any] = {
        "step": 0, "epoch": 0, "step_in_epoch": 0, "best_probe": -1.0, "best_step": -1, "random_probe": None,
    }  # fmt: skip
    if resuming:
        meta.update(
            load_state(state_path, {"point": point_model, "image": image_model}, optimizer, run.device)
        )
    point_branch, image_branch = wrap_branches(point_model, image_model, cfg, run)
    sampler, per_rank, steps_per_epoch = epoch_sampler(dataset, cfg, run)
    p = Pretraining(
        cfg, run, point_model, image_model, point_branch, image_branch, optimizer, dataset, probe_data,
        sampler, per_rank, steps_per_epoch, meta, writer=_writer(out) if run.is_main else None,
    )  # fmt: skip
    if run.is_main:
        out.mkdir(parents=True, exist_ok=True)
        _trim_metrics(out / "metrics.jsonl", meta["step"] if resuming else -1)
        print(
            f"pretraining on {len(dataset)} shapes, {run.world_size} rank(s) on {run.device}: "
            f"{steps_per_epoch} steps/epoch x {cfg.epochs} epochs, batch {cfg.batch_size}"
        )
    return p


def epoch_sampler(dataset: Any, cfg: PretrainConfig, run: rt.Runtime) -> tuple[Any, int, int]:
    """(the seeded DistributedSampler, clouds per rank, steps per epoch); the global batch must split."""
    from torch.utils.data.distributed import DistributedSampler

    per_rank = cfg.batch_size // run.world_size
    if per_rank < 2 or per_rank * run.world_size != cfg.batch_size:
        raise ValueError(
            f"batch size {cfg.batch_size} must split into >= 2 per rank over {run.world_size} ranks"
        )
    sampler: DistributedSampler[Any] = DistributedSampler(
        dataset, num_replicas=run.world_size, rank=run.rank, shuffle=True, seed=cfg.seed, drop_last=True
    )
    steps_per_epoch = len(sampler) // per_rank
    if steps_per_epoch == 0:
        raise ValueError(f"{len(dataset)} shapes give no full batch of {cfg.batch_size}")
    return sampler, per_rank, steps_per_epoch


def train_epoch(p: Pretraining) -> bool:
    """The rest of the current epoch (all of it unless resumed mid-epoch); True when `max_steps` stopped it."""
    cfg, run, meta = p.cfg, p.run, p.meta
    epoch = meta["epoch"]
    p.sampler.set_epoch(epoch)
    if hasattr(p.dataset, "set_epoch"):
        p.dataset.set_epoch(epoch)  # augmentations are seeded per (seed, epoch, item)
    order = list(p.sampler)[meta["step_in_epoch"] * p.per_rank :]  # skip what a resumed run already saw
    loader = epoch_loader(p.dataset, order, p.per_rank, cfg, epoch, pin_memory=run.device.type == "cuda")
    p.point_branch.train()
    p.image_branch.train()
    bar = _bar(run, p.steps_per_epoch, meta["step_in_epoch"], epoch, cfg.epochs)
    stop = False
    for batch in loader:
        lr, values = train_step(p, batch)
        if run.is_main and bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{values[0]:.3f}", lr=f"{lr:.2e}")
        if meta["step"] % cfg.log_every == 0 or meta["step_in_epoch"] == p.steps_per_epoch:
            log_losses(p, values, lr, epoch)
        if cfg.save_every_steps and meta["step"] % cfg.save_every_steps == 0:
            p.save()
        if cfg.max_steps and meta["step"] >= cfg.max_steps:
            stop = True
            break
    if bar is not None:
        bar.close()
    return stop


def train_step(p: Pretraining, batch: dict[str, torch.Tensor]) -> tuple[float, list[float]]:
    """One optimizer step at the cosine learning rate -> (lr, [total, intra, cross] mean over ranks)."""
    lr = rt.cosine_lr(p.meta["step"], p.total_steps, p.cfg.lr)
    for group in p.optimizer.param_groups:
        group["lr"] = lr
    loss = forward_loss(batch, p.point_branch, p.image_branch, p.cfg, p.run.device)
    p.optimizer.zero_grad(set_to_none=True)
    loss.total.backward()
    p.optimizer.step()
    p.meta["step"] += 1
    p.meta["step_in_epoch"] += 1
    return lr, rt.mean_over_ranks([loss.total.item(), loss.intra.item(), loss.cross.item()], p.run)


def log_losses(p: Pretraining, values: list[float], lr: float, epoch: int) -> None:
    """Losses, lr and the time per step since the last logged step -> metrics.jsonl and TensorBoard."""
    t_last, step_last = p.clock
    dt = (time.time() - t_last) / (p.meta["step"] - step_last)
    p.clock = (time.time(), p.meta["step"])
    scalars = {
        "loss/total": values[0],
        "loss/intra": values[1],
        "loss/cross": values[2],
        "lr": lr,
        "time/step_s": dt,
        "time/clouds_per_s": p.cfg.batch_size / dt,
    }
    if p.run.is_main:
        _log(p.out, p.writer, p.meta["step"], scalars, epoch=epoch)


def end_epoch(p: Pretraining) -> None:
    """Count the finished epoch; probe (which also saves) when due, else save."""
    p.meta["epoch"] += 1
    p.meta["step_in_epoch"] = 0
    done = p.meta["epoch"]
    if p.cfg.probe_every > 0 and (done % p.cfg.probe_every == 0 or done == p.cfg.epochs):
        p.probe()
    else:
        p.save()


def resume_config(state_path: Path, given: PretrainConfig) -> PretrainConfig:
    """The stored config, except how the run executes (device, precision, workers, stopping).

    `data` and `cache_dir` stay as stored unless given again (e.g. the run moved to another machine).
    """
    keep = ("max_steps", "device", "num_workers", "save_every_steps", "log_every", "out", "precision")
    # "amp": runs from before `precision` (their bf16 autocast was GPU only)
    config: PretrainConfig = resumed_config(state_path, given, keep, ignore=("amp",))
    return config


def _writer(out: Path) -> Any:
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out / "tb"))


def _bar(run: rt.Runtime, total: int, done: int, epoch: int, epochs: int) -> Any:
    if not run.is_main:
        return None
    from tqdm import tqdm

    return tqdm(
        total=total, initial=done, desc=f"epoch {epoch + 1}/{epochs}", unit="step", dynamic_ncols=True
    )


def _log(
    out: Path, writer: Any, step: int, scalars: dict[str, float], kind: str = "train", **extra: Any
) -> None:
    for key, value in scalars.items():
        if writer is not None and math.isfinite(value):
            writer.add_scalar(key, value, step)
    with (out / "metrics.jsonl").open("a") as fh:
        fh.write(json.dumps({"kind": kind, "step": step, **scalars, **extra}, default=float) + "\n")


def _trim_metrics(path: Path, step: int) -> None:
    """Keep rows up to `step` (-1: none): a resumed run logs the steps after its checkpoint again."""
    if not path.exists():
        return
    rows = [line for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(r + "\n" for r in rows if json.loads(r)["step"] <= step))
