"""`render_points` and `render_mesh`: V seeded random views of one object, uint8 `[V, size, size, 3]`."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import trimesh

import crosspoint.geometry as geometry
from crosspoint.render.camera import view_angles
from crosspoint.render.splat import Surfels, rasterize, surfels_from_points

MESH_SAMPLES = 8192
"""Surface samples per mesh: dense enough that the discs are small and edges stay sharp at 224 px."""


def render_surfels(s: Surfels, *, views: int, size: int = 224, seed: int = 0) -> np.ndarray:
    """V views of prepared surfels; view v uses the viewpoint `view_angles(seed, v)`."""
    if views < 1:
        raise ValueError("views must be >= 1")
    out = np.empty((views, size, size, 3), dtype=np.uint8)
    for v in range(views):
        out[v] = rasterize(s, *view_angles(seed, v), size=size)
    return out


def render_points(
    points: np.ndarray,
    *,
    views: int,
    size: int = 224,
    seed: int = 0,
    splat_radius: float | None = None,
    up_axis: str = "y",
) -> np.ndarray:
    """Views of a point cloud `[N, 3]` as shaded surfel splats: uint8 `[views, size, size, 3]`.

    `splat_radius=None` sizes each splat by its local point spacing (closes the surface of a 1024-point
    cloud); a number fixes the radius in model-frame units (the object is scaled to the unit sphere).
    `up_axis` is the cloud's up axis (rotated to +y like `geometry.prepare` does).
    """
    pts = np.asarray(points, dtype=np.float64) @ geometry.up_axis_rotation(up_axis).T
    return render_surfels(
        surfels_from_points(pts, splat_radius=splat_radius), views=views, size=size, seed=seed
    )


def as_trimesh(mesh: Any) -> trimesh.Trimesh:
    """A single `trimesh.Trimesh` from a Trimesh, a Scene, a file path (read by `geometry.load`, the
    hardened reader), or anything with `vertices` and `faces` (e.g. a `geometry.Shape`)."""
    if isinstance(mesh, str | os.PathLike):
        mesh = geometry.load(mesh)
    if isinstance(mesh, trimesh.Scene):
        mesh = mesh.to_mesh()
    if not isinstance(mesh, trimesh.Trimesh):
        faces = getattr(mesh, "faces", None)
        if faces is None:
            raise TypeError(f"not a mesh (no faces): {type(mesh).__name__}")
        mesh = trimesh.Trimesh(np.asarray(mesh.vertices), np.asarray(faces), process=False)
    if len(mesh.faces) == 0 or mesh.area <= 0:
        raise ValueError("cannot render a mesh without surface area")
    return mesh


def render_mesh(mesh: Any, *, views: int, size: int = 224, seed: int = 0, up_axis: str = "y") -> np.ndarray:
    """Views of a mesh: uint8 `[views, size, size, 3]`, same cameras and shading as `render_points`.

    The mesh is sampled densely (area-weighted, seeded) and each sample is splatted with its face's true
    normal, so no normal estimation is involved and thin parts keep their shape.
    """
    tm = as_trimesh(mesh)
    samples, face_index = trimesh.sample.sample_surface(tm, MESH_SAMPLES, seed=seed)
    rotation = geometry.up_axis_rotation(up_axis)
    surfels = surfels_from_points(samples @ rotation.T, normals=tm.face_normals[face_index] @ rotation.T)
    return render_surfels(surfels, views=views, size=size, seed=seed)


def is_mesh(obj: Any) -> bool:
    """True for inputs `render_mesh` takes (meshes, scenes, Shape-like objects with faces, mesh paths)."""
    if isinstance(obj, trimesh.Trimesh | trimesh.Scene | str | os.PathLike):
        return True
    return getattr(obj, "faces", None) is not None


__all__ = ["as_trimesh", "is_mesh", "render_mesh", "render_points", "render_surfels", "view_angles"]
