"""What every training loop needs around the model: device, torchrun/DDP setup, seeds, the LR curve,
and the numeric precision of the step (bf16 autocast where the hardware has bf16 arithmetic)."""

from __future__ import annotations

import contextlib
import math
import os
import random
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def pick_device(requested: str | None, local_rank: int = 0) -> torch.device:
    """`requested` if given ("cpu", "cuda", "cuda:1"), else this rank's GPU when there is one, else CPU."""
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", local_rank)
        return device
    return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")


def setup(requested_device: str | None = None) -> Runtime:
    """Join the torchrun process group when launched by torchrun (WORLD_SIZE > 1); gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device, local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        # The linear-SVM probe runs on rank 0 only while the others wait: give the barrier hours, not 30 min.
        torch.distributed.init_process_group(
            "nccl" if device.type == "cuda" else "gloo", timeout=timedelta(hours=3)
        )
    return Runtime(device=device, rank=rank, world_size=world, local_rank=local_rank)


def teardown(runtime: Runtime) -> None:
    if runtime.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def seed_everything(seed: int) -> None:
    """Same seed -> same initial weights on every rank (DDP also broadcasts rank 0's at wrap time)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cosine_lr(step: int, total_steps: int, lr_max: float, lr_min: float = 0.0) -> float:
    """Cosine from lr_max at step 0 to lr_min at total_steps, per optimizer step (not per epoch)."""
    progress = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + math.cos(math.pi * progress))


def mean_over_ranks(values: list[float], runtime: Runtime) -> list[float]:
    """Average scalars across ranks (for logging: each rank's loss sees only its own batch)."""
    if not runtime.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=runtime.device)
    torch.distributed.all_reduce(t)
    return (t / runtime.world_size).tolist()


PRECISIONS = ("bf16", "fp32")


def bf16_supported(device: torch.device) -> bool:
    """bf16 arithmetic in hardware: a CUDA device that has it, or a CPU with AVX512-BF16 or AMX.

    Without it, CPU autocast emulates bf16 and is slower than fp32.
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    if "AMX" in torch.backends.cpu.get_cpu_capability():
        return True
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(requested: str | None, device: torch.device) -> str:
    """`requested` ("bf16" | "fp32"), or None: bf16 where the device supports it, else fp32."""
    if requested is None:
        return "bf16" if bf16_supported(device) else "fp32"
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS} (or None for auto), not {requested!r}")
    return requested


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[object]:
    """bf16 autocast for "bf16" (GEMMs and convs in bf16, reductions and losses stay fp32); no-op for "fp32"."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
