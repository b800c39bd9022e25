"""The pretraining probe: linear-SVM accuracy on a VALIDATION split of ModelNet40 train (never test).

Labelled train rows outside the validation split (a seeded sample of `train_size`) fit the SVM; the
validation rows score it. Both variants of the eval protocol run (raw features and StandardScaler), each
with its best C from a small grid; the probe's score, which picks `best.safetensors`, is the better one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from crosspoint.eval.features import embed
from crosspoint.eval.svm import make_svm

PROBE_CS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)


@dataclass
class ProbeData:
    fit_points: np.ndarray
    fit_labels: np.ndarray
    val_points: np.ndarray
    val_labels: np.ndarray


def load_probe_data(
    data: str | None,
    fit_idx: np.ndarray,
    val_idx: np.ndarray,
    num_points: int,
    train_size: int,
    val_size: int,
    seed: int,
    cache_dir: str | None = None,
) -> ProbeData:
    from crosspoint.data import load_modelnet40_npz

    full = load_modelnet40_npz(data, split="train", num_points=num_points, cache_dir=cache_dir)
    rows = np.random.default_rng(seed + 1).permutation(fit_idx)
    rows = np.sort(rows[:train_size] if train_size else rows)
    val = np.random.default_rng(seed + 2).permutation(val_idx)
    val = np.sort(val[:val_size] if val_size else val)
    return ProbeData(full.points[rows], full.labels[rows], full.points[val], full.labels[val])


def run_probe(
    model: nn.Module, data: ProbeData, device: torch.device | str = "cpu", Cs: Sequence[float] = PROBE_CS
) -> dict[str, Any]:
    start = time.time()
    fit_x = embed(model, data.fit_points, device=device)
    val_x = embed(model, data.val_points, device=device)
    result: dict[str, Any] = {}
    for variant in ("unscaled", "scaled"):
        scores = {
            C: make_svm(C, variant == "scaled").fit(fit_x, data.fit_labels).score(val_x, data.val_labels)
            for C in Cs
        }
        best = max(Cs, key=lambda c: (scores[c], -c))
        result[f"val_accuracy_{variant}"] = float(scores[best])
        result[f"C_{variant}"] = float(best)
    result["val_accuracy"] = max(result["val_accuracy_unscaled"], result["val_accuracy_scaled"])
    result["feature_abs_mean"] = float(np.abs(fit_x).mean())
    result["seconds"] = time.time() - start
    return result
