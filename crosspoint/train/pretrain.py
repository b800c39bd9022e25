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
from crosspoint.train.probe import ProbeData, load_probe_data, run_probe
from crosspoint.train.state import load_state, read_meta, save_state


@dataclass
class PretrainConfig:
    data: str | None = None  # ModelNet40 npz; None = ../shared/data/modelnet40_partial (train split only)
    out: str = "runs/pretrain"
    backbone: str = "dgcnn"  # dgcnn | pointnet
    image_encoder: str = "resnet50_image"  # resnet50_image (paper) | resnet18_image (CPU recipe)
    epochs: int = 100
    batch_size: int = 20  # global: split evenly over DDP ranks, as the reference's dist script
    lr: float = 1e-3
    weight_decay: float = 1e-6
    temperature: float = 0.1
    num_points: int = 1024  # points per augmented view
    k: int = 15  # DGCNN neighbours (reference scripts/script.sh)
    image_size: int = 224
    views: int = 4  # rendered views per object in the cache; one is drawn per step
    subset: int = 0  # pretrain on this many train shapes (0 = all outside the validation split)
    val_fraction: float = 0.1  # of train, held out of pretraining: the probe scores on it
    probe_every: int = 1  # epochs between linear-SVM probes (0 = never)
    probe_points: int = 1024
    probe_train_size: int = 2000  # labelled train rows the probe's SVM fits on (0 = all)
    probe_val_size: int = 0  # validation rows the probe scores on (0 = the whole validation split)
    seed: int = 0
    num_workers: int = 0
    device: str | None = None  # None: cuda if available, else cpu
    # bf16 | fp32 autocast; None = bf16 where the device has bf16 arithmetic (CUDA, AVX512-BF16/AMX
    # CPUs). How the run executes, like `device`: a resumed run takes the one given now.
    precision: str | None = None
    channels_last: bool = True  # image encoder memory format, GPU only
    gather_negatives: bool = False  # DDP: negatives from all ranks (reference: per-rank)
    sync_bn: bool = False  # DDP on GPU: SyncBatchNorm (reference: per-rank BN statistics)
    save_every_steps: int = 0  # extra resumable saves inside an epoch (0 = at epoch ends only)
    max_steps: int = 0  # stop after this many steps in total (0 = run all epochs); schedule unchanged
    log_every: int = 10
    cache_dir: str | None = None  # prepared points + rendered views; None = <repo>/.cache/data


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


def train(cfg: PretrainConfig, resume: bool = False) -> dict[str, Any]:
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
    cuda = run.device.type == "cuda"
    point_model.to(run.device)
    image_model.to(run.device)
    if cuda and cfg.channels_last:
        image_model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    params = [*point_model.parameters(), *image_model.parameters()]
    optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)

    # The loop position lives in `meta`; a resume restores weights, Adam moments, RNGs and that position.
    meta: dict[str, Any] = {
        "step": 0, "epoch": 0, "step_in_epoch": 0, "best_probe": -1.0, "best_step": -1, "random_probe": None,
    }  # fmt: skip
    if resuming:
        meta.update(
            load_state(state_path, {"point": point_model, "image": image_model}, optimizer, run.device)
        )

    point_branch, image_branch = wrap_branches(point_model, image_model, cfg, run)
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
    total_steps = cfg.epochs * steps_per_epoch
    writer = _writer(out) if run.is_main else None
    if run.is_main:
        out.mkdir(parents=True, exist_ok=True)
        _trim_metrics(out / "metrics.jsonl", meta["step"] if resuming else -1)
        print(
            f"pretraining on {len(dataset)} shapes, {run.world_size} rank(s) on {run.device}: "
            f"{steps_per_epoch} steps/epoch x {cfg.epochs} epochs, batch {cfg.batch_size}"
        )

    def checkpoint_all(probe: dict[str, Any] | None = None) -> None:
        if not run.is_main:
            return
        save_state(
            state_path,
            {"point": point_model, "image": image_model},
            optimizer,
            {**meta, "config": asdict(cfg)},
        )
        save_backbone(out / "last.safetensors", point_model, cfg, meta, probe)

    def probe_now() -> None:
        if run.is_main:
            result = run_probe(point_model, probe_data, run.device)
            _log(
                out,
                writer,
                meta["step"],
                {f"probe/{k}": v for k, v in result.items() if isinstance(v, float)},
                kind="probe",
            )
            if meta["step"] == 0:
                meta["random_probe"] = result["val_accuracy"]  # kept for comparison, never "best"
            elif result["val_accuracy"] > meta["best_probe"]:
                meta.update(best_probe=result["val_accuracy"], best_step=meta["step"])
                save_backbone(out / "best.safetensors", point_model, cfg, meta, result)
            checkpoint_all(result)
        if run.distributed:
            torch.distributed.barrier()

    if meta["step"] == 0 and cfg.probe_every > 0:
        probe_now()  # step 0 = random weights: the baseline every later probe is compared with
    t_last, step_last = time.time(), meta["step"]
    stop = False
    while meta["epoch"] < cfg.epochs and not stop:
        epoch = meta["epoch"]
        sampler.set_epoch(epoch)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)  # augmentations are seeded per (seed, epoch, item)
        order = list(sampler)[meta["step_in_epoch"] * per_rank :]  # skip what a resumed run already saw
        loader = epoch_loader(dataset, order, per_rank, cfg, epoch, pin_memory=cuda)
        point_branch.train()
        image_branch.train()
        bar = _bar(run, steps_per_epoch, meta["step_in_epoch"], epoch, cfg.epochs)
        for batch in loader:
            lr = rt.cosine_lr(meta["step"], total_steps, cfg.lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = forward_loss(batch, point_branch, image_branch, cfg, run.device)
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            optimizer.step()
            meta["step"] += 1
            meta["step_in_epoch"] += 1
            values = rt.mean_over_ranks([loss.total.item(), loss.intra.item(), loss.cross.item()], run)
            if run.is_main and bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{values[0]:.3f}", lr=f"{lr:.2e}")
            if meta["step"] % cfg.log_every == 0 or meta["step_in_epoch"] == steps_per_epoch:
                dt = (time.time() - t_last) / (meta["step"] - step_last)
                t_last, step_last = time.time(), meta["step"]
                scalars = {
                    "loss/total": values[0],
                    "loss/intra": values[1],
                    "loss/cross": values[2],
                    "lr": lr,
                    "time/step_s": dt,
                    "time/clouds_per_s": cfg.batch_size / dt,
                }
                if run.is_main:
                    _log(out, writer, meta["step"], scalars, epoch=epoch)
            if cfg.save_every_steps and meta["step"] % cfg.save_every_steps == 0:
                checkpoint_all()
            if cfg.max_steps and meta["step"] >= cfg.max_steps:
                stop = True
                break
        if bar is not None:
            bar.close()
        if not stop:
            meta["epoch"] += 1
            meta["step_in_epoch"] = 0
            done = meta["epoch"]
            if cfg.probe_every > 0 and (done % cfg.probe_every == 0 or done == cfg.epochs):
                probe_now()
            else:
                checkpoint_all()
    if stop:
        checkpoint_all()
    if run.distributed:
        torch.distributed.barrier()
    if writer is not None:
        writer.close()
    rt.teardown(run)
    return {**meta, "out": str(out), "steps_per_epoch": steps_per_epoch, "total_steps": total_steps}


def resume_config(state_path: Path, given: PretrainConfig) -> PretrainConfig:
    """The stored config, except how the run executes (device, precision, workers, stopping).

    `data` and `cache_dir` stay as stored unless given again (e.g. the run moved to another machine).
    """
    stored_fields = dict(read_meta(state_path)["config"])
    stored_fields.pop("amp", None)  # runs from before `precision` (their bf16 autocast was GPU only)
    stored = PretrainConfig(**stored_fields)
    keep = {"max_steps", "device", "num_workers", "save_every_steps", "log_every", "out", "precision"}
    moved = {k: getattr(given, k) for k in ("data", "cache_dir") if getattr(given, k) is not None}
    return dataclasses.replace(stored, **{k: getattr(given, k) for k in keep}, **moved)


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
