"""The out-of-distribution evaluation set: shapes that belong to no ModelNet40 class.

Procedural families (each shape seeded by its name, so the set is the same on every machine):
- `knot`: (p, q) torus knots swept as tubes of random thickness;
- `blob`: spheres with a random low-frequency radial bump field (potatoes, lumps);
- `noise`: clouds with no surface at all (uniform box, Gaussian, a few Gaussian clusters);
- `plane`: flat sheets (rectangle, disc, ellipse) with no thickness;
- `degenerate`: one triangle, line segments, a polyline, a circle ring, a tiny cloud of 16 points;
plus `mesh`: the shared meshes (../shared/data/meshes) that are of no ModelNet40 class (`SHARED_MESHES`;
left out: chair_model.obj (a chair), fuze.* (a bottle), cube.glb/BoxTextured.glb/cube.OBJ duplicates,
Mesh_PrimitiveMode_04 and the point files (too few points), TestScene.gltf (an external buffer, which
uploads refuse), empty.*).

Every shape goes through `crosspoint.geometry.prepare` exactly as an upload does (the meshes are read
from their files by `geometry.load`); random orientation is part of the procedural families.

    from crosspoint.eval.ood_set import ood_shapes
    for item in ood_shapes(per_family=40): item.prepare(1024)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crosspoint import geometry
from crosspoint.data.sets import shape_seed
from crosspoint.geometry.limits import Limits
from crosspoint.geometry.shape import Shape, build_shape

FAMILIES: tuple[str, ...] = ("knot", "blob", "noise", "plane", "degenerate")
SHARED_MESHES: tuple[str, ...] = (
    "rabbit.obj",  # a bunny
    "bunny.ply",  # the Stanford bunny
    "quadknot.obj",  # a knot
    "teapot.stl",
    "unit_sphere.STL",
    "20mm-xyz-cube.stl",  # a printer calibration cube with letters
    "featuretype.STL",  # a machined part
    "soup.stl",  # a triangle soup
    "suzanne.ply",  # Blender's monkey head
    "monkey.glb",
    "ballA.off",
    "textured_tetrahedron.obj",
    "tube.obj",
    "comments.off",  # a cube
)


@dataclass(frozen=True)
class OodShape:
    name: str
    family: str
    shape: Shape

    def prepare(self, num_points: int) -> np.ndarray:
        """Model-frame points as the gateway makes them (fewer than num_points when the shape has fewer)."""
        points, _ = geometry.prepare(
            self.shape, num_points=num_points, seed=shape_seed(self.name), min_points=1
        )
        return points


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def _mesh(vertices: np.ndarray, faces: np.ndarray | None, rng: np.random.Generator) -> Shape:
    rotated = np.asarray(vertices, dtype=np.float64) @ _random_rotation(rng).T
    return build_shape(rotated, faces, "array", Limits(), source="procedural shape")


def _grid_faces(nu: int, nv: int) -> np.ndarray:
    """Faces of a nu x nv vertex grid that wraps around in both directions (a torus topology)."""
    i, j = np.meshgrid(np.arange(nu), np.arange(nv), indexing="ij")
    a = i * nv + j
    b = ((i + 1) % nu) * nv + j
    c = ((i + 1) % nu) * nv + (j + 1) % nv
    d = i * nv + (j + 1) % nv
    return np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)]).reshape(-1, 3)


def knot(rng: np.random.Generator) -> Shape:
    p, q = [(2, 3), (2, 5), (3, 4), (3, 5), (2, 7), (3, 7)][rng.integers(6)]
    t = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    r = np.cos(q * t) + rng.uniform(1.6, 2.6)
    path = np.stack([r * np.cos(p * t), r * np.sin(p * t), -np.sin(q * t) * rng.uniform(0.6, 1.4)], -1)
    tangent = np.roll(path, -1, 0) - np.roll(path, 1, 0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.cross(tangent, path)  # the position vector is never parallel to a torus knot's tangent
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    binormal = np.cross(tangent, normal)
    s = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    radius = rng.uniform(0.15, 0.45)
    ring = np.cos(s)[None, :, None] * normal[:, None] + np.sin(s)[None, :, None] * binormal[:, None]
    vertices = (path[:, None] + radius * ring).reshape(-1, 3)
    return _mesh(vertices, _grid_faces(len(t), len(s)), rng)


def blob(rng: np.random.Generator) -> Shape:
    u, v = np.meshgrid(np.linspace(0, 2 * np.pi, 48, endpoint=False), np.linspace(0.02, np.pi - 0.02, 24))
    d = np.stack([np.sin(v) * np.cos(u), np.sin(v) * np.sin(u), np.cos(v)], -1).reshape(-1, 3)
    radius = np.ones(len(d))
    for _ in range(rng.integers(3, 9)):
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        radius += rng.uniform(0.1, 0.6) * np.exp(rng.uniform(2, 8) * (d @ direction - 1))
    vertices = d * radius[:, None] * rng.uniform(0.6, 1.4, size=3)
    faces = _grid_faces(24, 48)  # wraps in v too: the poles close up into a thin seam, fine for sampling
    return _mesh(vertices, faces, rng)


def noise(rng: np.random.Generator) -> Shape:
    kind = rng.integers(3)
    n = int(rng.integers(1500, 4000))
    if kind == 0:
        points = rng.uniform(-1, 1, size=(n, 3)) * rng.uniform(0.3, 1, size=3)
    elif kind == 1:
        points = rng.normal(size=(n, 3)) * rng.uniform(0.3, 1, size=3)
    else:
        centres = rng.uniform(-1, 1, size=(int(rng.integers(2, 7)), 3))
        points = centres[rng.integers(len(centres), size=n)] + rng.normal(scale=0.08, size=(n, 3))
    return _mesh(points, None, rng)


def plane(rng: np.random.Generator) -> Shape:
    kind = rng.integers(3)
    if kind == 0:
        w, h = rng.uniform(0.2, 1), 1.0
        vertices = np.array([[-w, -h, 0], [w, -h, 0], [w, h, 0], [-w, h, 0]], dtype=np.float64)
        return _mesh(vertices, np.array([[0, 1, 2], [0, 2, 3]]), rng)
    angles = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    a, b = 1.0, (1.0 if kind == 1 else rng.uniform(0.2, 0.8))
    rim = np.stack([a * np.cos(angles), b * np.sin(angles), np.zeros_like(angles)], -1)
    vertices = np.vstack([[0, 0, 0], rim])
    faces = np.stack([np.zeros(64, dtype=np.int64), 1 + np.arange(64), 1 + (np.arange(64) + 1) % 64], -1)
    return _mesh(vertices, faces, rng)


def degenerate(rng: np.random.Generator) -> Shape:
    kind = rng.integers(5)
    if kind == 0:  # one triangle
        return _mesh(rng.normal(size=(3, 3)), np.array([[0, 1, 2]]), rng)
    if kind == 1:  # a straight segment
        t = rng.uniform(-1, 1, size=(int(rng.integers(50, 2000)), 1))
        return _mesh(t * np.array([[1.0, 0.0, 0.0]]), None, rng)
    if kind == 2:  # a random polyline
        corners = rng.normal(size=(int(rng.integers(3, 6)), 3))
        t = np.linspace(0, len(corners) - 1, 1500)
        i = np.minimum(t.astype(int), len(corners) - 2)
        points = corners[i] + (t - i)[:, None] * (corners[i + 1] - corners[i])
        return _mesh(points, None, rng)
    if kind == 3:  # a circle ring (a wire)
        t = np.linspace(0, 2 * np.pi, 1500, endpoint=False)
        return _mesh(np.stack([np.cos(t), np.sin(t), np.zeros_like(t)], -1), None, rng)
    return _mesh(rng.normal(size=(16, 3)), None, rng)  # a tiny cloud


_MAKERS = {"knot": knot, "blob": blob, "noise": noise, "plane": plane, "degenerate": degenerate}


def procedural_shape(family: str, index: int) -> OodShape:
    name = f"ood/{family}/{index:03d}"
    return OodShape(name, family, _MAKERS[family](np.random.default_rng(shape_seed(name))))


def shared_meshes(data_dir: str | os.PathLike[str] | None = None) -> Iterator[OodShape]:
    from crosspoint.data.prepared import shared_data_dir

    root = Path(data_dir) if data_dir is not None else shared_data_dir() / "meshes"
    for file in SHARED_MESHES:
        yield OodShape(f"mesh/{file}", "mesh", geometry.load(root / file))


def ood_shapes(per_family: int = 40, data_dir: str | os.PathLike[str] | None = None) -> list[OodShape]:
    """`per_family` shapes of each procedural family, then the shared meshes of no ModelNet40 class."""
    shapes = [procedural_shape(family, i) for family in FAMILIES for i in range(per_family)]
    return shapes + list(shared_meshes(data_dir))
