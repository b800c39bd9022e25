"""A small CPU surfel splatter in numpy: points (+ normals) -> shaded 224x224 views.

Why numpy and not OpenGL: it needs no EGL/GL stack, is deterministic (no driver in the loop), and at ~10 ms
of CPU per 224x224 view of 1024 points it is fast enough to render every training view once and cache it
(`ViewStore`). moderngl over EGL was measured too; see `crosspoint/render/__init__.py`.

Each point becomes a surfel: a disc of radius ~ the local point spacing, oriented by an estimated normal.
Two passes, as in classic surface splatting: a depth pass keeps the nearest surface per pixel, then the
discs on that surface blend their normals with a radial weight, which hides the disc seams; the blended
normal is Lambert-shaded (key light + headlight) with a mild depth cue. With 1024 points per object
(the shared ModelNet40 rows) the discs still close the surface.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.spatial import cKDTree

from crosspoint.geometry import normalize_unit_sphere
from crosspoint.render.camera import CAMERA_DISTANCE, camera_basis, focal_length

NEIGHBOURS = 16
"""kNN size for normal estimation (PCA) and per-view normal smoothing."""
SPACING_NEIGHBOURS = 8
"""The surfel radius is the mean distance to this many nearest neighbours..."""
RADIUS_CLIP = (0.5, 1.5)
"""...clipped to this range times its median, so one stray point cannot paint a huge blob."""
MIN_NORMAL_FACING = 0.25
"""Grazing discs are treated as tilted at most ~75 degrees, or they would vanish into lines."""
# Light blue-grey, not pure grey: colour jitter's saturation then has something to act on.
BASE_COLOR = np.array([0.86, 0.88, 0.93])
BACKGROUND = 255
# Key light from the upper left, in the camera frame (x right, y up, z toward the viewer).
_KEY_LIGHT = np.array([-0.4, 0.6, 0.7]) / np.linalg.norm([-0.4, 0.6, 0.7])


@dataclass
class Surfels:
    """Oriented discs in the model frame (unit sphere, y up)."""

    centers: np.ndarray  # float64 [N, 3]
    normals: np.ndarray  # float64 [N, 3], unit, sign arbitrary (flipped toward each camera)
    radii: np.ndarray  # float64 [N], model-frame units
    # int [N, k] (self first): smooths estimated normals per view; None when the normals are exact.
    neighbours: np.ndarray | None


def surfels_from_points(
    points: np.ndarray, normals: np.ndarray | None = None, splat_radius: float | None = None
) -> Surfels:
    """Surfels for a point cloud; normals are estimated by PCA over the k nearest neighbours if not given.

    `splat_radius=None` sizes each disc by its local point spacing; a number fixes it (model-frame units).
    """
    pts = np.asarray(points, dtype=np.float64)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) == 0:
        raise ValueError("cannot render an empty point cloud")
    pts, _, _ = normalize_unit_sphere(pts)
    k = min(NEIGHBOURS, len(pts) - 1)
    if k < 3:  # too few points for a tangent plane: face-on discs
        return Surfels(
            pts, np.tile([0.0, 0.0, 1.0], (len(pts), 1)), np.full(len(pts), splat_radius or 0.1), None
        )
    dist, idx = cKDTree(pts).query(pts, k=k + 1)
    if normals is None:
        centred = pts[idx] - pts[idx].mean(axis=1, keepdims=True)
        _, vecs = np.linalg.eigh(np.einsum("nki,nkj->nij", centred, centred))
        nrm = vecs[:, :, 0]  # eigenvector of the smallest eigenvalue
        neighbours: np.ndarray | None = idx
    else:
        nrm = np.asarray(normals, dtype=np.float64)
        nrm = nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        neighbours = None
    if splat_radius is None:
        spacing = dist[:, 1 : SPACING_NEIGHBOURS + 1].mean(axis=1)
        median = float(np.median(spacing)) or 1e-2  # all-duplicate clouds have zero spacing
        radii = np.clip(spacing, RADIUS_CLIP[0] * median, RADIUS_CLIP[1] * median)
    else:
        radii = np.full(len(pts), float(splat_radius))
    return Surfels(pts, nrm, radii, neighbours)


@lru_cache(maxsize=8)
def _disc_offsets(radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer pixel offsets within `radius`, sorted by squared distance (so a prefix is a smaller disc)."""
    oy, ox = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    ox, oy = ox.ravel(), oy.ravel()
    d2 = ox * ox + oy * oy
    order = np.argsort(d2, kind="stable")
    # float32 offsets: mixing integer with float32 arrays would promote every fragment array to float64.
    return ox[order].astype(np.float32), oy[order].astype(np.float32), d2[order].astype(np.float64)


def _oriented_normals(s: Surfels, forward: np.ndarray) -> np.ndarray:
    """Normals flipped toward the camera, smoothed over neighbours when they were estimated."""
    nrm = s.normals * np.where(s.normals @ forward > 0.0, -1.0, 1.0)[:, None]
    if s.neighbours is not None:
        nrm = nrm[s.neighbours].mean(axis=1)
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
    return nrm


def rasterize(s: Surfels, azimuth: float, elevation: float, size: int = 224) -> np.ndarray:
    """One view of the surfels: uint8 `[size, size, 3]`, white background."""
    eye, right, up, forward = camera_basis(azimuth, elevation)
    rel = s.centers - eye * CAMERA_DISTANCE
    depth, cam_x, cam_y = rel @ forward, rel @ right, rel @ up
    foc = focal_length(size)
    px, py = size / 2 + foc * cam_x / depth, size / 2 - foc * cam_y / depth
    nrm = _oriented_normals(s, forward)
    n_cam = np.stack([nrm @ right, nrm @ up, np.minimum(nrm @ forward, -MIN_NORMAL_FACING)], axis=1)

    # Per disc: a pixel offset (dx, dy) from its centre lies on the disc's plane at the world offset
    # a * (dx, -dy, g dx + h dy), a = world units per pixel; its in-plane distance^2 / radius^2 is the
    # quadratic form q = qa dx^2 + qb dx dy + qc dy^2 (an ellipse on screen) and g, h give per-pixel depth.
    a = depth / foc
    g, h = -n_cam[:, 0] / n_cam[:, 2], n_cam[:, 1] / n_cam[:, 2]
    k = (a / s.radii) ** 2
    # Discs are drawn into a frame padded by the largest radius (no per-fragment bounds checks), cropped
    # at the end; the unit sphere fits the unpadded frame, so only splat rims ever reach the padding.
    r_px = np.clip(foc * s.radii / depth, 0.75, size / 4)
    pad = int(np.ceil(r_px.max()))
    width = size + 2 * pad
    base = (np.floor(py).astype(np.int64) + pad) * width + np.floor(px).astype(np.int64) + pad
    per_disc = np.stack(
        [
            k * (1 + g * g),
            2 * k * g * h,
            k * (1 + h * h),
            a * g,
            a * h,
            depth,
            np.floor(px) + 0.5 - px,
            np.floor(py) + 0.5 - py,
            s.radii,
            np.arange(len(depth)),  # disc index: exact in float32 below 2^24 discs
        ]
    ).astype(np.float32)

    # Fragments: each disc's pixels within its screen radius, listed compactly (no N x R^2 padding).
    # One np.repeat of the [10, N] table (rows stay contiguous) replaces ten gathers.
    ox, oy, d2 = _disc_offsets(pad)
    counts = np.searchsorted(d2, r_px**2, side="right")
    off = np.arange(counts.sum(), dtype=np.int32) - np.repeat(
        (np.cumsum(counts) - counts).astype(np.int32), counts
    )
    qa, qb, qc, zx, zy, z0, frac_x, frac_y, radius, disc = np.repeat(per_disc, counts, axis=1)
    dx, dy = ox[off] + frac_x, oy[off] + frac_y
    q = qa * dx * dx + qb * dx * dy + qc * dy * dy
    keep = q <= 1.0
    q, radius = q[keep], radius[keep]
    frag_depth = z0[keep] + zx[keep] * dx[keep] + zy[keep] * dy[keep]
    pix = np.repeat(base, counts)[keep] + (oy[off[keep]] * width + ox[off[keep]]).astype(np.int64)
    pid = disc[keep].astype(np.intp)

    zbuf = np.full(width * width, np.inf, dtype=np.float32)
    np.minimum.at(zbuf, pix, frag_depth)
    # Discs within one radius of the nearest surface belong to it and get blended.
    front = frag_depth <= zbuf[pix] + radius
    pid, q, pix = pid[front], q[front], pix[front]
    weight = 1.0 - q + 1e-3
    crop = (slice(pad, pad + size), slice(pad, pad + size))
    normal = np.stack(
        [
            np.bincount(pix, weight * n_cam[pid, i], width * width).reshape(width, width)[crop]
            for i in range(3)
        ],
        axis=-1,
    ).reshape(-1, 3)
    covered = (np.bincount(pix, weight, width * width).reshape(width, width)[crop] > 0).ravel()
    zbuf = zbuf.reshape(width, width)[crop].ravel()

    n = normal[covered].astype(np.float64)
    n = n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
    n[:, 2] = -n[:, 2]  # camera frame with z toward the viewer, for the lights below
    shade = 0.22 + 0.5 * np.clip(n @ _KEY_LIGHT, 0.0, 1.0) + 0.33 * np.clip(n[:, 2], 0.0, 1.0)
    z = zbuf[covered]
    z_rel = (z - z.min()) / max(float(z.max() - z.min()), 1e-6)
    shade = np.clip(shade * (1.0 - 0.3 * z_rel), 0.0, 1.0)

    image = np.full((size * size, 3), BACKGROUND, dtype=np.uint8)
    image[covered] = np.round(255.0 * shade[:, None] * BASE_COLOR).astype(np.uint8)
    return image.reshape(size, size, 3)
