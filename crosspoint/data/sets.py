"""In-memory labelled sets (points already in the model frame) and the train/validation split."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from crosspoint.data.shapenetpart_meta import CATEGORY_NAMES


def shape_seed(shape_id: str) -> int:
    """A stable 32-bit seed for one shape: the first 4 bytes (little-endian) of sha256(shape_id).

    The same rule the shared data README uses for its own sampling, so per-shape randomness (FPS start,
    render viewpoints) never depends on row order or on the process.
    """
    return int.from_bytes(hashlib.sha256(shape_id.encode("utf-8")).digest()[:4], "little")


def _as_index(idx: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    index = np.asarray(idx)
    if index.dtype == bool:
        if index.shape != (n,):
            raise ValueError(f"boolean mask of shape {index.shape} for a set of {n}")
        return np.flatnonzero(index)
    return index.astype(np.int64).reshape(-1)


@dataclass(frozen=True)
class RawShapes:
    """Shapes as a dataset file stores them, not prepared: what a client would upload, or what
    parity and the benchmarks prepare themselves. Row order is the file's."""

    clouds: list[np.ndarray]  # float32 [n_i, 3], distinct points only
    labels: np.ndarray  # int64 [M]: class (ModelNet40) or category (ShapeNetPart) index
    class_names: list[str]  # names of the label values
    shape_ids: list[str]
    part_labels: list[np.ndarray] | None = None  # ShapeNetPart: global part id per point

    def __len__(self) -> int:
        return len(self.clouds)


@dataclass
class PointCloudSet:
    """Labelled clouds, already prepared (centred, unit sphere, y up), all with the same point count."""

    points: np.ndarray  # float32 [M, N, 3]
    labels: np.ndarray  # int64 [M]
    class_names: list[str]
    shape_ids: list[str]

    def __post_init__(self) -> None:
        if self.points.ndim != 3 or self.points.shape[2] != 3:
            raise ValueError(f"points must be [M, N, 3], got {self.points.shape}")
        if not (len(self.points) == len(self.labels) == len(self.shape_ids)):
            raise ValueError("points, labels and shape_ids must have the same length")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_points(self) -> int:
        return int(self.points.shape[1])

    def subset(self, idx: Sequence[int] | np.ndarray) -> PointCloudSet:
        """Rows `idx` (indices or a boolean mask), in that order; class names are kept whole."""
        index = _as_index(idx, len(self))
        return PointCloudSet(
            points=self.points[index],
            labels=self.labels[index],
            class_names=list(self.class_names),
            shape_ids=[self.shape_ids[i] for i in index],
        )


@dataclass
class PartSet:
    """Part-labelled clouds (ShapeNetPart numbering: 16 categories, global part ids 0..49)."""

    points: np.ndarray  # float32 [M, N, 3]
    part_labels: np.ndarray  # int64 [M, N]
    categories: np.ndarray  # int64 [M]
    shape_ids: list[str]
    split: str  # the split these rows were loaded as: "train", "val", "test", "trainval" or "all"

    def __post_init__(self) -> None:
        if self.points.ndim != 3 or self.points.shape[2] != 3:
            raise ValueError(f"points must be [M, N, 3], got {self.points.shape}")
        if self.part_labels.shape != self.points.shape[:2]:
            raise ValueError("part_labels must be [M, N] like the points")
        if not (len(self.points) == len(self.categories) == len(self.shape_ids)):
            raise ValueError("points, categories and shape_ids must have the same length")

    def __len__(self) -> int:
        return len(self.categories)

    @property
    def category_names(self) -> list[str]:
        return list(CATEGORY_NAMES)

    def subset(self, idx: Sequence[int] | np.ndarray) -> PartSet:
        index = _as_index(idx, len(self))
        return PartSet(
            points=self.points[index],
            part_labels=self.part_labels[index],
            categories=self.categories[index],
            shape_ids=[self.shape_ids[i] for i in index],
            split=self.split,
        )


def train_val_split(
    labels: np.ndarray | Sequence[int], val_fraction: float = 0.1, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, deterministic split of row indices into (train_idx, val_idx), both sorted.

    Each class gives round(val_fraction * count) rows to validation, but never all of a class with at
    least 2 rows (a class must stay trainable) and at least 1 when val_fraction > 0 and count >= 2 (so every
    class is validated). Same labels + same seed -> same split.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError("val_fraction must be in [0, 1)")
    y = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for cls in np.unique(y):
        rows = np.flatnonzero(y == cls)
        n_val = 0
        if val_fraction > 0 and len(rows) >= 2:
            n_val = min(max(round(val_fraction * len(rows)), 1), len(rows) - 1)
        val.append(rng.permutation(rows)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    return train_idx.astype(np.int64), val_idx.astype(np.int64)
