"""A calibrated copy of the tiny test repository: `crosspoint calibrate`'s own code run on a small
slice of the shared ModelNet40 train split (so the gateway tests exercise real statistics files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from tests.server.helpers import MODELNET, require


def small_modelnet(path: Path, per_class: int = 4) -> Path:
    """The shared npz cut to `per_class` train rows of each class (same keys, same layout)."""
    with np.load(require(MODELNET)) as data:
        arrays = {name: data[name] for name in data.files}
    rows = np.concatenate(
        [np.flatnonzero((arrays["labels"] == c) & (arrays["split"] == 0))[:per_class] for c in range(40)]
    )
    per_row = {k for k, v in arrays.items() if v.shape[:1] == arrays["labels"].shape}
    np.savez(path, **{k: (v[rows] if k in per_row else v) for k, v in arrays.items()})
    return path


def calibrated_copy(repository: Path, target: Path) -> Path:
    """`repository` (embed, classify, segment) copied to `target`, embed and classify calibrated."""
    from export.calibrate import calibrate_version

    shutil.copytree(repository, target)
    data = small_modelnet(target.parent / "modelnet_small.npz")
    for model in ("embed", "classify"):
        calibrate_version(target, model, data=data, rank=16, cache_dir=target.parent / "cache")
    return target
