"""Frames: up-axis rotations, unit-sphere normalization, and the input -> model frame map.

Model frame (docs/interfaces.md): y up, centred on the mean of the sampled points, farthest point
at norm 1. The map is always `model = R @ (p - centroid) / scale`, with `centroid` in the input
frame, so a receipt applies to any other input-frame points (e.g. the original vertices).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from crosspoint.geometry.errors import DegenerateGeometryError, InvalidArgumentError

UP_AXES = ("+x", "-x", "+y", "-y", "+z", "-z")

# Proper rotations (det +1) taking each axis to +y. "+z" is the M1 of shared/data/README.md
# (x' = -x, y' = z, z' = y) that turned the raw z-up ModelNet meshes into the y-up training data,
# so a z-up ModelNet-style upload lands in the frame the models were trained in, yaw included.
_ROTATIONS = {
    "+y": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "-y": ((1, 0, 0), (0, -1, 0), (0, 0, -1)),  # 180 degrees about x
    "+z": ((-1, 0, 0), (0, 0, 1), (0, 1, 0)),
    "-z": ((-1, 0, 0), (0, 0, -1), (0, -1, 0)),  # M1 after 180 degrees about x
    "+x": ((0, -1, 0), (1, 0, 0), (0, 0, 1)),  # +90 degrees about z
    "-x": ((0, 1, 0), (-1, 0, 0), (0, 0, 1)),  # -90 degrees about z
}


def canonical_up_axis(axis: str) -> str:
    """Map "z", "+Z" or " z " to "+z"; anything else is an InvalidArgumentError."""
    if not isinstance(axis, str):
        raise InvalidArgumentError(f"up_axis must be a string such as 'y' or '-z', not {axis!r}")
    text = axis.strip().lower()
    if not text.startswith(("+", "-")):
        text = "+" + text
    if text not in _ROTATIONS:
        raise InvalidArgumentError(f"up_axis {axis!r} is not one of x, y, z, +x, -x, +y, -y, +z, -z")
    return text


def up_axis_rotation(axis: str) -> np.ndarray:
    """3x3 rotation (det +1) that maps the given up axis onto +y."""
    return np.array(_ROTATIONS[canonical_up_axis(axis)], dtype=np.float64)


def normalize_unit_sphere(points: ArrayLike) -> tuple[np.ndarray, np.ndarray, float]:
    """Centre on the mean and scale so the farthest point has norm 1 (reference `pc_normalize`).

    Returns (normalized points, centroid, scale); computed in float64, returned in the input's
    float dtype (float64 for integer input).
    """
    array = np.asarray(points)
    if array.ndim != 2 or array.shape[1] != 3 or array.shape[0] == 0:
        raise InvalidArgumentError(f"points must be a non-empty array [N, 3], not shape {array.shape}")
    dtype = array.dtype if array.dtype.kind == "f" else np.dtype(np.float64)
    work = array.astype(np.float64, copy=False)
    centroid = work.mean(axis=0)
    centered = work - centroid
    scale = float(np.sqrt(np.einsum("ij,ij->i", centered, centered)).max())
    if not np.isfinite(scale) or scale <= np.finfo(np.float64).tiny:
        raise DegenerateGeometryError(
            "the points cannot be scaled to the unit sphere: "
            + ("they are all the same point" if np.isfinite(scale) else "a coordinate is not finite")
        )
    return (centered / scale).astype(dtype, copy=False), centroid, scale


def apply_frame(points: ArrayLike, centroid: ArrayLike, rotation: ArrayLike, scale: float) -> np.ndarray:
    """`R @ (p - centroid) / scale` for each row, in float64, returned as float32 [K, 3]."""
    array = np.asarray(points, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise InvalidArgumentError(f"points must be an array [K, 3], not shape {array.shape}")
    rot = np.asarray(rotation, dtype=np.float64)
    return (((array - np.asarray(centroid, dtype=np.float64)) @ rot.T) / float(scale)).astype(np.float32)
