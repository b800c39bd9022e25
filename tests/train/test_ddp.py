"""DDP on CPU: `torchrun --nproc_per_node 2` (gloo) against one process on the same global batches.

With a global batch of 8, DistributedSampler gives each rank 4 of the same 8 shapes one process sees,
so the runs differ only where the batch is split: BatchNorm statistics are per rank (8 clouds there,
16 here) and, without `--gather-negatives`, each rank's NT-Xent has 2*4-2 negatives instead of 2*8-2.
With gathered negatives the loss is the same function of the same embeddings, so the curves differ
only through BatchNorm: we allow 25% per step (measured: at most ~15%). With the reference's per-rank
negatives the loss is lower (fewer negatives) and only the shape of the curve is compared.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from crosspoint import checkpoint
from crosspoint.train.pretrain import train
from tests.train.conftest import read_metrics

ARGS = {"epochs": 1, "batch_size": 8, "num_points": 64, "k": 8, "subset": 48, "image_size": 32, "views": 2}


def _torchrun(out: Path, *extra: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    options = [f"--{k.replace('_', '-')}={v}" for k, v in ARGS.items()]
    cmd = [torchrun, "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
           "-m", "crosspoint.train.cli", "pretrain", *options, "--image-encoder", "resnet18_image",
           "--probe-every", "0", "--log-every", "1", "--device", "cpu", "--out", str(out), *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _losses(out: Path) -> list[float]:
    rows = read_metrics(out)
    assert [r["step"] for r in rows] == list(range(1, len(rows) + 1))  # rank 0 alone logs, once per step
    return [r["loss/total"] for r in rows]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> list[float]:
    from tests.train.conftest import tiny_config

    out = tmp_path_factory.mktemp("ddp") / "one"
    train(tiny_config(out, **ARGS))
    return _losses(out)


def _falls(losses: list[float]) -> bool:
    return sum(losses[-3:]) / 3 < 0.85 * losses[0]


def test_two_processes_with_gathered_negatives_track_one_process(single: list[float], tmp_path: Path) -> None:
    _torchrun(tmp_path / "two", "--gather-negatives")
    two = _losses(tmp_path / "two")
    assert len(two) == len(single) == 6
    for a, b in zip(single, two, strict=True):
        assert abs(b - a) / a < 0.25, (single, two)
    assert _falls(single) and _falls(two)
    assert checkpoint.load(tmp_path / "two" / "last.safetensors").config["training"]["step"] == 6
    assert not any(p.name.startswith("rank") for p in (tmp_path / "two").iterdir())


@pytest.mark.slow
def test_two_processes_reference_mode_same_shape(single: list[float], tmp_path: Path) -> Any:
    _torchrun(tmp_path / "ref")
    ref = _losses(tmp_path / "ref")
    assert len(ref) == len(single)
    assert ref[0] < single[0]  # 6 negatives per sample instead of 14
    assert _falls(ref)
