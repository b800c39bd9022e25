"""ScanObjectNN (h5 release, e.g. `main_split/training_objectdataset.h5`): real scanned objects, 15 classes."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from crosspoint.data.prepared import cache_key, cached_arrays, file_fingerprint, prepare_many
from crosspoint.data.sets import PointCloudSet

SCANOBJECTNN_CLASSES: tuple[str, ...] = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door", "shelf", "table",
    "bed", "pillow", "sink", "sofa", "toilet",
)  # fmt: skip
"""Label order of the ScanObjectNN release (`shape_names.txt`)."""


def load_scanobjectnn_h5(
    path: str | os.PathLike,
    num_points: int = 1024,
    cache_dir: str | os.PathLike | None = None,
    up_axis: str = "y",
) -> PointCloudSet:
    """One ScanObjectNN h5 file (`data` [B, 2048, 3], `label` [B]); pick the file for the split you want.

    The objects are y up in the release, as in ModelNet40's PointNet++ files. Ids are `<file stem>_<row>`.
    """
    h5_path = Path(path)
    with h5py.File(h5_path, "r") as h5:
        data = np.asarray(h5["data"][:], dtype=np.float32)[..., :3]
        labels = np.asarray(h5["label"][:]).reshape(-1).astype(np.int64)
    ids = [f"{h5_path.stem}_{i:05d}" for i in range(len(data))]
    key = cache_key("scanobjectnn-h5", file_fingerprint(h5_path), num_points=num_points, up_axis=up_axis)
    points = cached_arrays(cache_dir, key, lambda: {"points": prepare_many(data, ids, num_points, up_axis)})
    return PointCloudSet(points["points"], labels, list(SCANOBJECTNN_CLASSES), ids)
