"""`prepare`: a loaded shape -> the model's input points [N, 3] float32, plus a receipt.

Steps (the one preprocessing training and serving share):
1. candidates: a mesh with surface area gives M = max(oversample * N, 4096) area-weighted surface
   samples; a point cloud (or a mesh without area) gives its vertices.
2. rotate the up axis to +y and scale to the unit sphere in float64 (numerical conditioning only),
   cast to float32 and drop exact duplicates: duplicate points make kNN ties, which ONNX Runtime
   and torch break differently.
3. farthest point sampling to N. Fewer distinct points than N: all of them are returned when
   there are at least `min_points` (the receipt says how many), else TooFewPointsError. Padding
   by repetition is not done because it would put the duplicates back.
4. the model frame: `R @ (p - centroid) / scale`, centroid = mean of the N chosen points (input
   frame), scale = their largest distance from it (reference `pc_normalize`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from crosspoint.geometry.errors import InvalidArgumentError, TooFewPointsError
from crosspoint.geometry.formats import PointArray, load
from crosspoint.geometry.normalize import (
    apply_frame,
    canonical_up_axis,
    normalize_unit_sphere,
    up_axis_rotation,
)
from crosspoint.geometry.sampling import (
    MIN_RELATIVE_AREA,
    face_areas,
    farthest_point_sample,
    sample_surface,
    unique_row_indices,
)
from crosspoint.geometry.shape import Shape

DEFAULT_OVERSAMPLE = 8
MIN_CANDIDATES = 4096
DEFAULT_MIN_POINTS = 32
MAX_NUM_POINTS = 1 << 16


@dataclass(frozen=True)
class Receipt:
    """How the points were made; enough to redo the transform on other points (`to_model_frame`)."""

    centroid: tuple[float, float, float]  # input frame
    scale: float
    up_axis: str  # canonical: "+y", "-z", ...
    rotation: tuple[tuple[float, float, float], ...]  # 3x3, row-major
    num_points: int  # returned
    requested_points: int
    seed: int
    source_format: str
    source_vertices: int
    source_faces: int
    dropped_nonfinite: int
    duplicates_removed: int  # among the candidates
    sampling: str  # "surface" or "points"
    candidates: int  # surface samples or vertices FPS chose from (before de-duplication)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists, floats, ints, strings. Floats round-trip exactly through JSON."""
        data = asdict(self)
        data["centroid"] = list(self.centroid)
        data["rotation"] = [list(row) for row in self.rotation]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Receipt:
        values = dict(data)
        values["centroid"] = tuple(float(v) for v in values["centroid"])
        values["rotation"] = tuple(tuple(float(v) for v in row) for row in values["rotation"])
        return cls(**values)


def to_model_frame(points: ArrayLike, receipt: Receipt) -> np.ndarray:
    """Map input-frame points (e.g. the original vertices) to the model frame: float32 [K, 3].

    `prepare` builds its output with this very function, so prepared points are reproduced
    bit-exactly from their input-frame positions.
    """
    return apply_frame(points, receipt.centroid, receipt.rotation, receipt.scale)


def _check_int(name: str, value: object, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise InvalidArgumentError(f"{name} must be a whole number, not {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise InvalidArgumentError(f"{name} must be {bound}, not {value}")
    return int(value)


def _candidates(
    shape: Shape, num_points: int, oversample: int, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    if shape.faces is not None:
        areas = face_areas(shape.vertices, shape.faces)
        if float(areas.sum()) > MIN_RELATIVE_AREA:
            count = max(oversample * num_points, MIN_CANDIDATES)
            return sample_surface(shape.vertices, shape.faces, count, rng, areas=areas), "surface"
    return shape.vertices, "points"


def prepare(
    shape_or_array: Shape | PointArray,
    num_points: int = 1024,
    up_axis: str = "y",
    seed: int = 0,
    *,
    oversample: int = DEFAULT_OVERSAMPLE,
    min_points: int = DEFAULT_MIN_POINTS,
) -> tuple[np.ndarray, Receipt]:
    """Points for the model (float32 [n, 3], n = num_points or fewer, see module doc) and a receipt.

    Same input + same arguments -> bit-identical points. Arrays are passed through `load` first.
    """
    shape = shape_or_array if isinstance(shape_or_array, Shape) else load(shape_or_array)
    num_points = _check_int("num_points", num_points, 2, MAX_NUM_POINTS)
    seed = _check_int("seed", seed, 0)
    oversample = _check_int("oversample", oversample, 1, 64)
    min_points = _check_int("min_points", min_points, 1)
    axis = canonical_up_axis(up_axis)
    rotation = up_axis_rotation(axis)

    candidates, sampling = _candidates(shape, num_points, oversample, np.random.default_rng(seed))
    # FPS and de-duplication run in a conditioned float32 frame: rotated like the output (so a
    # rotated copy of a shape gives the same float32 values and the same FPS choices), centred and
    # unit-scaled (so float32 keeps full precision even for coordinates like 6e6 in survey data).
    conditioned = normalize_unit_sphere(candidates @ rotation.T)[0].astype(np.float32)
    distinct = unique_row_indices(conditioned)
    _check_enough(int(distinct.size), num_points, min_points)
    count = min(num_points, int(distinct.size))
    chosen = candidates[distinct[farthest_point_sample(conditioned[distinct], count, seed)]]

    centroid = chosen.mean(axis=0)
    scale = float(np.sqrt(np.einsum("ij,ij->i", chosen - centroid, chosen - centroid)).max())
    receipt = Receipt(
        centroid=(float(centroid[0]), float(centroid[1]), float(centroid[2])),
        scale=scale,
        up_axis=axis,
        rotation=tuple((float(r[0]), float(r[1]), float(r[2])) for r in rotation),
        num_points=count,
        requested_points=num_points,
        seed=seed,
        source_format=shape.format,
        source_vertices=shape.source_vertices,
        source_faces=shape.source_faces,
        dropped_nonfinite=shape.dropped_nonfinite,
        duplicates_removed=int(candidates.shape[0] - distinct.size),
        sampling=sampling,
        candidates=int(candidates.shape[0]),
    )
    points = to_model_frame(chosen, receipt)
    kept = unique_row_indices(points)
    if kept.size < count:
        # Two points one float32 step apart in the conditioned frame can round together in the
        # final one (only when every distinct point was taken); the model must never see a tie.
        _check_enough(int(kept.size), num_points, min_points)
        points = points[kept]
        receipt = replace(
            receipt,
            num_points=int(kept.size),
            duplicates_removed=receipt.duplicates_removed + count - int(kept.size),
        )
    return points, receipt


def _check_enough(distinct: int, num_points: int, min_points: int) -> None:
    if distinct < num_points and distinct < min_points:
        raise TooFewPointsError(
            f"the shape has {distinct} distinct points; {num_points} were asked for and at least "
            f"{min(num_points, min_points)} are needed"
        )
