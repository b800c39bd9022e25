"""Tiny pretraining settings shared by the training tests (real data, seconds per run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from crosspoint.train.pretrain import PretrainConfig


def tiny_config(out: Path, **overrides: Any) -> PretrainConfig:
    settings: dict[str, Any] = {
        "out": str(out),
        "backbone": "dgcnn",
        "image_encoder": "resnet18_image",
        "epochs": 2,
        "batch_size": 4,
        "num_points": 64,
        "k": 8,
        "image_size": 32,
        "views": 2,
        "subset": 12,
        "probe_every": 0,
        "log_every": 1,
        "seed": 0,
        "device": "cpu",
    }
    settings.update(overrides)
    return PretrainConfig(**settings)


def read_metrics(out: Path, kind: str = "train") -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r["kind"] == kind]


@pytest.fixture
def tiny(tmp_path: Path) -> Any:
    return lambda name, **kw: tiny_config(tmp_path / name, **kw)
