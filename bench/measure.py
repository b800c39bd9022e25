"""Timing helpers shared by the benchmarks: interleaved runs, percentiles, the machine and its load.

The machine is shared (other tests, a training job), so alternatives are never timed one after the
other: `interleave` runs them in turns (A, B, C, B, C, A, ...: the order rotates every round) and the
reports give medians and ratios of medians, with the load average at the start and the end.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (runnable + waiting tasks; this machine has 2 cores)."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    """HEAD of the checkout (read-only), '+dirty' when the tree has changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head or "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on; versions of what is already imported."""
    versions = {
        name: getattr(sys.modules[name], "__version__", "?")
        for name in ("numpy", "torch", "onnxruntime", "fastapi", "uvicorn", "httpx", "tritonclient")
        if name in sys.modules
    }
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "gpu": "none",
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "commit": git_commit(),
    }


def percentile(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q)) if samples else float("nan")


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """n, p50, p99 (= the max below 100 samples), min, mean, in milliseconds."""
    return {
        "n": len(seconds),
        "p50_ms": 1000 * percentile(seconds, 50),
        "p99_ms": 1000 * percentile(seconds, 99),
        "min_ms": 1000 * min(seconds) if seconds else float("nan"),
        "mean_ms": 1000 * float(np.mean(seconds)) if seconds else float("nan"),
    }


def interleave(
    runners: Mapping[str, Callable[[], object]],
    *,
    repeats: int,
    min_repeats: int = 3,
    budget_s: float | None = None,
    warmup: int = 1,
) -> dict[str, list[float]]:
    """Wall seconds of each runner, run in turns: up to `repeats` rounds, after `warmup` rounds.

    The order rotates every round so no runner always follows the same one. After `min_repeats`
    rounds, no new round starts once `budget_s` seconds have been spent timing.
    """
    labels = list(runners)
    for _ in range(warmup):
        for label in labels:
            runners[label]()
    times: dict[str, list[float]] = {label: [] for label in labels}
    spent = 0.0
    for round_ in range(repeats):
        if round_ >= min_repeats and budget_s is not None and spent >= budget_s:
            break
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            started = time.perf_counter()
            runners[label]()
            elapsed = time.perf_counter() - started
            times[label].append(elapsed)
            spent += elapsed
    return times


def sgemm_gflops(size: int = 2048, threads: int = 2, repeats: int = 5) -> list[float]:
    """fp32 matmul throughput of a `size`^2 square product on `threads` threads (torch/MKL), GFLOP/s
    per repeat: the practical compute limit of this CPU for dense fp32 work."""
    import torch

    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator)
    b = torch.rand(size, size, generator=generator)
    out = torch.empty(size, size)
    torch.matmul(a, b, out=out)  # warm-up
    flops = 2.0 * size**3
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b, out=out)
        rates.append(flops / (time.perf_counter() - started) / 1e9)
    return rates
