"""Numpy mesh primitives for the procedural shapes, and the builder that keeps a label per face.

Everything is plain (vertices float64 [V,3], faces int64 [F,3]) arrays: a few thousand faces per shape
built without trimesh's processing keeps a shape well under a millisecond or two, and concatenating
parts (instead of boolean unions) keeps every face's part label exact. Overlapping parts are fine:
the meshes are only ever sampled on their surface.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np


class Mesh(NamedTuple):
    v: np.ndarray  # float64 [V, 3]
    f: np.ndarray  # int64 [F, 3]

    def moved(self, rotation: np.ndarray | None = None, offset: object = None, scale: object = None) -> Mesh:
        """Scale (per axis), then rotate, then translate."""
        v = self.v
        if scale is not None:
            v = v * np.asarray(scale, dtype=np.float64)
        if rotation is not None:
            v = v @ rotation.T
        if offset is not None:
            v = v + np.asarray(offset, dtype=np.float64)
        return Mesh(v, self.f)

    def mirrored(self, axis: int) -> Mesh:
        """Reflected through the plane `axis = 0` (winding flipped so normals stay outward)."""
        v = self.v.copy()
        v[:, axis] *= -1
        return Mesh(v, self.f[:, ::-1].copy())


def vec(x: float, y: float, z: float) -> np.ndarray:
    """A 3-vector (so offsets added to arrays read as arithmetic, not list concatenation)."""
    return np.array([x, y, z], dtype=np.float64)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross costs ~10 us of axis juggling per call; shapes make hundreds of single-vector crosses
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def rotation(axis: str, angle: float) -> np.ndarray:
    """Right-handed rotation about a coordinate axis ('x', 'y' or 'z')."""
    c, s = np.cos(angle), np.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def align(src: object, dst: object) -> np.ndarray:
    """Smallest rotation taking direction `src` onto direction `dst`."""
    a = np.asarray(src, dtype=np.float64)
    b = np.asarray(dst, dtype=np.float64)
    a = a / np.linalg.norm(a)
    b = b / np.linalg.norm(b)
    v = _cross(a, b)
    c = float(a @ b)
    if c < -1 + 1e-9:  # opposite: turn half way round any axis perpendicular to a
        p = _cross(a, vec(1, 0, 0)) if abs(a[0]) < 0.9 else _cross(a, vec(0, 1, 0))
        p /= np.linalg.norm(p)
        return 2 * np.outer(p, p) - np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


@lru_cache(maxsize=256)
def _grid_faces(nu: int, nv: int, wrap_u: bool, wrap_v: bool) -> np.ndarray:
    iu = np.arange(nu if wrap_u else nu - 1)
    iv = np.arange(nv if wrap_v else nv - 1)
    i, j = np.meshgrid(iu, iv, indexing="ij")
    i1, j1 = (i + 1) % nu, (j + 1) % nv
    a, b, c, d = i * nv + j, i1 * nv + j, i1 * nv + j1, i * nv + j1
    tris = np.concatenate([np.stack([a, b, c], -1), np.stack([a, c, d], -1)], axis=-1)
    out = tris.reshape(-1, 3).astype(np.int64)
    out.setflags(write=False)
    return out


def grid(
    points: np.ndarray,
    wrap_u: bool = False,
    wrap_v: bool = True,
    cap_start: bool = False,
    cap_end: bool = False,
) -> Mesh:
    """Surface through a [nu, nv, 3] grid of points; rows u are rings (closed when wrap_v).

    Caps close the first/last ring with a fan around its centroid.
    """
    nu, nv = points.shape[:2]
    v = points.reshape(-1, 3)
    faces = [_grid_faces(nu, nv, wrap_u, wrap_v)]
    extra: list[np.ndarray] = []
    ring = np.arange(nv)
    for flag, row, flip in ((cap_start, 0, False), (cap_end, nu - 1, True)):
        if not flag:
            continue
        centre = len(v) + len(extra)
        extra.append(points[row].mean(axis=0))
        idx = row * nv + ring
        fan = np.stack([np.full(nv, centre), idx, np.roll(idx, -1)], -1)
        faces.append(fan[:, ::-1] if flip else fan)
    if extra:
        v = np.concatenate([v, np.asarray(extra)])
    return Mesh(v, np.concatenate(faces))


def revolve(
    radii: object, heights: object, segments: int = 24, cap_start: bool = False, cap_end: bool = False
) -> Mesh:
    """Surface of revolution about +y of the profile (radius, height) pairs, bottom to top."""
    r = np.asarray(radii, dtype=np.float64)
    y = np.asarray(heights, dtype=np.float64)
    t = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    pts = np.stack(
        [
            r[:, None] * np.cos(t)[None],
            np.broadcast_to(y[:, None], (len(y), segments)),
            r[:, None] * np.sin(t)[None],
        ],
        axis=-1,
    )
    return grid(pts, cap_start=cap_start, cap_end=cap_end)


def cylinder(radius: float, p0: object, p1: object, segments: int = 16, caps: bool = True) -> Mesh:
    """Closed cylinder between two points."""
    a = np.asarray(p0, dtype=np.float64)
    b = np.asarray(p1, dtype=np.float64)
    length = float(np.linalg.norm(b - a))
    m = revolve([radius, radius], [0.0, length], segments, cap_start=caps, cap_end=caps)
    return m.moved(align([0, 1, 0], b - a), a)


def cone(r0: float, r1: float, p0: object, p1: object, segments: int = 16, caps: bool = True) -> Mesh:
    """Truncated cone from radius r0 at p0 to r1 at p1."""
    a = np.asarray(p0, dtype=np.float64)
    b = np.asarray(p1, dtype=np.float64)
    m = revolve([r0, r1], [0.0, float(np.linalg.norm(b - a))], segments, cap_start=caps, cap_end=caps)
    return m.moved(align([0, 1, 0], b - a), a)


def ellipsoid(radii: object, centre: object = (0, 0, 0), rings: int = 10, segments: int = 16) -> Mesh:
    """Ellipsoid with semi-axes (rx, ry, rz)."""
    phi = np.linspace(-np.pi / 2, np.pi / 2, rings + 1)
    m = revolve(np.cos(phi), np.sin(phi), segments)
    return m.moved(None, centre, radii)


def box(size: object, centre: object = (0, 0, 0), rot: np.ndarray | None = None) -> Mesh:
    """Axis-aligned box of full extents `size`, optionally rotated about its centre."""
    s = np.asarray(size, dtype=np.float64) / 2
    v = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64) * s
    f = np.array(
        [
            [0, 1, 3],
            [0, 3, 2],
            [4, 6, 7],
            [4, 7, 5],
            [0, 4, 5],
            [0, 5, 1],
            [2, 3, 7],
            [2, 7, 6],
            [0, 2, 6],
            [0, 6, 4],
            [1, 5, 7],
            [1, 7, 3],
        ],
        dtype=np.int64,
    )
    return Mesh(v, f).moved(rot, centre)


def beam(p0: object, p1: object, width: float, depth: float | None = None, up: object = (0, 1, 0)) -> Mesh:
    """Box-section bar from p0 to p1 (square unless depth is given)."""
    a = np.asarray(p0, dtype=np.float64)
    b = np.asarray(p1, dtype=np.float64)
    axis = b - a
    length = float(np.linalg.norm(axis))
    x = axis / length
    u = np.asarray(up, dtype=np.float64)
    if abs(float(x @ u)) > 0.95 * np.linalg.norm(u):
        u = np.array([1.0, 0, 0]) if abs(x[0]) < 0.9 else np.array([0, 0, 1.0])
    z = _cross(x, u)
    z /= np.linalg.norm(z)
    y = _cross(z, x)
    frame = np.stack([x, y, z], axis=1)
    return box([length, width, width if depth is None else depth], (a + b) / 2, frame)


def _frames(path: np.ndarray, closed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Parallel-transported (normal, binormal) along a polyline: tubes do not twist."""
    tang = np.roll(path, -1, 0) - np.roll(path, 1, 0) if closed else np.gradient(path, axis=0)
    tang /= np.linalg.norm(tang, axis=1, keepdims=True) + 1e-12
    n = _cross(tang[0], vec(0, 0, 1))
    if np.linalg.norm(n) < 1e-6:
        n = _cross(tang[0], vec(1, 0, 0))
    normals = np.empty_like(path)
    for i in range(len(path)):
        n = n - (n @ tang[i]) * tang[i]
        n /= np.linalg.norm(n) + 1e-12
        normals[i] = n
    return normals, np.cross(tang, normals)


def tube(
    path: object,
    radius: float | np.ndarray,
    segments: int = 10,
    closed: bool = False,
    caps: bool = True,
    flatten: float = 1.0,
) -> Mesh:
    """Circle (an ellipse when flatten != 1) swept along a polyline [k, 3]."""
    p = np.asarray(path, dtype=np.float64)
    r = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(p),))
    n, b = _frames(p, closed)
    t = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.cos(t)[None, :, None] * n[:, None] - flatten * np.sin(t)[None, :, None] * b[:, None]
    pts = p[:, None] + r[:, None, None] * ring
    return grid(pts, wrap_u=closed, cap_start=caps and not closed, cap_end=caps and not closed)


def torus(major: float, minor: float, segments: int = 24, tube_segments: int = 10) -> Mesh:
    """Torus in the x-y plane around the origin (axis z): the shape of a wheel's tyre."""
    t = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    path = np.stack([major * np.cos(t), major * np.sin(t), np.zeros_like(t)], -1)
    return tube(path, minor, tube_segments, closed=True)


def extrude(outline: object, depth: float | np.ndarray, centre_z: float = 0.0) -> Mesh:
    """Prism of a star-shaped (w.r.t. its mean) outline [k, 2] in x-y, from -depth/2 to depth/2 in z.

    `depth` may vary per outline vertex (a blade thinning towards its edge).
    """
    o = np.asarray(outline, dtype=np.float64)
    k = len(o)
    d = np.broadcast_to(np.asarray(depth, dtype=np.float64), (k,)) / 2
    lo = np.column_stack([o, centre_z - d])
    hi = np.column_stack([o, centre_z + d])
    ccw = float(np.sum(o[:, 0] * np.roll(o[:, 1], -1) - np.roll(o[:, 0], -1) * o[:, 1])) > 0
    return grid(np.stack([hi, lo] if ccw else [lo, hi]), cap_start=True, cap_end=True)


def superellipse(a: float, b: float, n: int = 24, power: float = 2.0) -> np.ndarray:
    """Closed [n, 2] curve |x/a|^p + |y/b|^p = 1 (p=2 an ellipse; large p a rounded rectangle)."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / power
    return np.column_stack([a * np.sign(c) * np.abs(c) ** e, b * np.sign(s) * np.abs(s) ** e])


def loft_x(
    xs: object,
    half_width: object,
    y_low: object,
    y_high: object,
    n: int = 20,
    power: float = 4.0,
    caps: bool = True,
) -> Mesh:
    """Body of superelliptic sections stacked along x (width along z, height along y).

    Each of xs has its own half width and y span: fuselages, car bodies, tanks, decks.
    """
    x = np.asarray(xs, dtype=np.float64)
    w = np.broadcast_to(np.asarray(half_width, dtype=np.float64), x.shape)
    lo = np.broadcast_to(np.asarray(y_low, dtype=np.float64), x.shape)
    hi = np.broadcast_to(np.asarray(y_high, dtype=np.float64), x.shape)
    unit = superellipse(1.0, 1.0, n, power)
    yc, hh = (lo + hi) / 2, (hi - lo) / 2
    pts = np.stack(
        [
            np.broadcast_to(x[:, None], (len(x), n)),
            yc[:, None] + hh[:, None] * unit[None, :, 1],
            w[:, None] * unit[None, :, 0],
        ],
        axis=-1,
    )
    return grid(pts, cap_start=caps, cap_end=caps)


def loft_y(
    ys: object,
    half_x: object,
    half_z: object,
    n: int = 20,
    power: float = 2.0,
    caps: bool = True,
    centre_x: object = 0.0,
) -> Mesh:
    """Body of superelliptic sections stacked along y (vases, bags, handles, cushions)."""
    y = np.asarray(ys, dtype=np.float64)
    hx = np.broadcast_to(np.asarray(half_x, dtype=np.float64), y.shape)
    hz = np.broadcast_to(np.asarray(half_z, dtype=np.float64), y.shape)
    cx = np.broadcast_to(np.asarray(centre_x, dtype=np.float64), y.shape)
    unit = superellipse(1.0, 1.0, n, power)
    pts = np.stack(
        [
            cx[:, None] + hx[:, None] * unit[None, :, 0],
            np.broadcast_to(y[:, None], (len(y), n)),
            hz[:, None] * unit[None, :, 1],
        ],
        axis=-1,
    )
    return grid(pts, cap_start=caps, cap_end=caps)


def smooth_path(points: object, iterations: int = 2, closed: bool = False) -> np.ndarray:
    """Chaikin corner cutting: a rounded version of a polyline [k, 3] (ends kept when open)."""
    p = np.asarray(points, dtype=np.float64)
    for _ in range(iterations):
        q = np.roll(p, -1, 0) if closed else p[1:]
        a = p if closed else p[:-1]
        cut = np.empty((2 * len(a), 3))
        cut[0::2] = 0.75 * a + 0.25 * q
        cut[1::2] = 0.25 * a + 0.75 * q
        p = cut if closed else np.concatenate([p[:1], cut, p[-1:]])
    return p


def arc(
    centre: object, radius_a: float, radius_b: float, t0: float, t1: float, n: int = 16, plane: str = "xy"
) -> np.ndarray:
    """Points [n, 3] on an elliptical arc in a coordinate plane, angles t0..t1."""
    t = np.linspace(t0, t1, n)
    a, b = radius_a * np.cos(t), radius_b * np.sin(t)
    zero = np.zeros_like(t)
    cols = {"xy": (a, b, zero), "yz": (zero, b, a), "xz": (a, zero, b)}[plane]
    return np.column_stack(cols) + np.asarray(centre, dtype=np.float64)


def face_centres_normals(mesh: Mesh) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and unit normal of each face (for labelling regions of one surface)."""
    tri = mesh.v[mesh.f]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    return tri.mean(axis=1), n


class PartBuilder:
    """Collects meshes with a part label (category-local index) per face."""

    def __init__(self) -> None:
        self._v: list[np.ndarray] = []
        self._f: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self._count = 0

    def add(self, mesh: Mesh, label: int | np.ndarray) -> None:
        self._v.append(mesh.v)
        self._f.append(mesh.f + self._count)
        self._labels.append(np.broadcast_to(np.asarray(label, dtype=np.int64), (len(mesh.f),)))
        self._count += len(mesh.v)

    def add_mirrored(self, mesh: Mesh, label: int | np.ndarray, axis: int = 2) -> None:
        """Add a part and its mirror image (left/right pairs)."""
        self.add(mesh, label)
        self.add(mesh.mirrored(axis), label)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.concatenate(self._v), np.concatenate(self._f), np.concatenate(self._labels)


def deform(v: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """Small smooth random deformation: per-axis stretch, taper, bend and low-frequency wobble.

    The same shape family then covers more of the real variety than its parameters alone.
    """
    lo, hi = v.min(0), v.max(0)
    ext = np.maximum(hi - lo, 1e-6)
    centre = (lo + hi) / 2
    u = (v - centre) / ext  # each axis in [-0.5, 0.5]
    out = v * (1 + strength * rng.uniform(-0.08, 0.08, 3))
    # taper: the horizontal axes shrink or grow with height
    out[:, [0, 2]] *= 1 + strength * rng.uniform(-0.12, 0.12) * u[:, 1:2]
    # bend: the longest axis curves a little towards one of the others
    a = int(np.argmax(ext))
    b = int(rng.choice([i for i in range(3) if i != a]))
    out[:, b] += strength * rng.uniform(-0.04, 0.04) * ext[a] * (4 * u[:, a] ** 2 - 1 / 3)
    # wobble: two random low-frequency waves, about 0.6 % of the size
    for _ in range(2):
        k = rng.normal(size=3) * 2.5
        phase = rng.uniform(0, 2 * np.pi)
        amp = strength * 0.006 * float(ext.max()) * rng.normal(size=3)
        out += amp * np.sin(u @ k + phase)[:, None]
    return out
