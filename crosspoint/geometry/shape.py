"""`Shape`: what `load` returns, and the checks every source goes through to become one."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crosspoint.geometry.errors import (
    DegenerateGeometryError,
    EmptyGeometryError,
    LimitExceededError,
    ParseError,
    TooFewPointsError,
)
from crosspoint.geometry.limits import Limits, check_limit


@dataclass(frozen=True, eq=False)
class Shape:
    """A loaded mesh or point cloud in its own (input) frame.

    `vertices` are the finite vertices in file order (non-finite ones dropped, see
    `dropped_nonfinite`); `faces` index into them, or are None for a point cloud. Both arrays
    are read-only so a Shape can be shared between requests without defensive copies.
    """

    vertices: np.ndarray  # float64 [V, 3]
    faces: np.ndarray | None  # int64 [F, 3]
    format: str
    source_vertices: int  # as read, before dropping non-finite ones
    source_faces: int
    dropped_nonfinite: int  # vertices dropped for NaN/Inf
    dropped_faces: int  # faces dropped because they used such a vertex

    @property
    def num_vertices(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def num_faces(self) -> int:
        return 0 if self.faces is None else int(self.faces.shape[0])

    @property
    def is_mesh(self) -> bool:
        return self.faces is not None


def as_vertex_array(values: object, source: str) -> np.ndarray:
    """Coerce to float64 [V, 3]; extra columns (normals, colours) are ignored, x y z come first."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ParseError(f"the {source} is not a numeric array of points: {exc}") from exc
    if array.size == 0:
        array = np.zeros((0, 3))
    if array.ndim != 2 or array.shape[1] < 3:
        raise ParseError(f"the {source} has shape {tuple(array.shape)}; points must be an array [V, 3]")
    return array[:, :3]


def _check_faces(faces: object, num_vertices: int, source: str) -> np.ndarray:
    array = np.asarray(faces)
    if array.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != 3 or array.dtype.kind not in "iu":
        raise ParseError(f"the {source} has faces of shape {tuple(array.shape)}; expected triangles [F, 3]")
    array = array.astype(np.int64, copy=False)
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= num_vertices:
        raise ParseError(
            f"the {source} has a face that uses vertex {low if low < 0 else high}, "
            f"but there are only {num_vertices} vertices"
        )
    return array


def _count_distinct_up_to(vertices: np.ndarray, cap: int) -> int:
    """Distinct rows, counted only up to `cap`: O(V * cap), no sort of millions of rows."""
    remaining = np.ones(vertices.shape[0], dtype=bool)
    count = 0
    while count < cap and remaining.any():
        point = vertices[int(np.argmax(remaining))]
        remaining &= np.any(vertices != point, axis=1)
        count += 1
    return count


def build_shape(
    vertices: object,
    faces: object | None,
    format: str,
    limits: Limits,
    source: str | None = None,
) -> Shape:
    """Validate raw arrays from any reader and return a Shape (drops NaN/Inf, refuses degenerate input)."""
    source = source or f"{format.upper()} file"
    verts = as_vertex_array(vertices, source)
    num = int(verts.shape[0])
    if num == 0:
        raise EmptyGeometryError(f"the {source} holds no vertices")
    check_limit(num, limits.max_vertices, "vertices", source)
    tri = None if faces is None else _check_faces(faces, num, source)
    if tri is not None:
        check_limit(int(tri.shape[0]), limits.max_faces, "faces", source)
    source_faces = 0 if tri is None else int(tri.shape[0])

    finite = np.isfinite(verts).all(axis=1)
    kept = int(np.count_nonzero(finite))
    if kept == 0:
        raise EmptyGeometryError(f"all {num} vertices of the {source} are NaN or infinite")
    dropped_faces = 0
    if kept < num:
        if tri is not None and tri.shape[0]:
            good = finite[tri].all(axis=1)
            # New index of each kept vertex: its rank among the kept ones.
            remap = np.cumsum(finite, dtype=np.int64) - 1
            dropped_faces = int(tri.shape[0] - np.count_nonzero(good))
            tri = remap[tri[good]]
        verts = verts[finite]
    verts = np.ascontiguousarray(verts, dtype=np.float64)

    biggest = float(np.abs(verts).max())
    if biggest > limits.max_abs_coordinate:
        raise LimitExceededError(
            f"the {source} has a coordinate of {biggest:.3g}; coordinates beyond "
            f"±{limits.max_abs_coordinate:.0e} are refused"
        )
    distinct = _count_distinct_up_to(verts, max(2, limits.min_distinct_points))
    if distinct == 1:
        x, y, z = (float(v) for v in verts[0])
        raise DegenerateGeometryError(
            f"all {kept} finite points of the {source} are the same point ({x:g}, {y:g}, {z:g}): "
            "the shape has zero extent"
        )
    if distinct < limits.min_distinct_points:
        raise TooFewPointsError(
            f"the {source} holds only {distinct} distinct points; at least "
            f"{limits.min_distinct_points} are needed"
        )

    if tri is not None and tri.shape[0] == 0:
        tri = None
    verts.setflags(write=False)
    if tri is not None:
        tri = np.ascontiguousarray(tri, dtype=np.int64)
        tri.setflags(write=False)
    return Shape(
        vertices=verts,
        faces=tri,
        format=format,
        source_vertices=num,
        source_faces=source_faces,
        dropped_nonfinite=num - kept,
        dropped_faces=dropped_faces,
    )
