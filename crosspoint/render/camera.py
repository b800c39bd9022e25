"""Random viewpoints around a y-up object and the perspective camera that looks at it."""

from __future__ import annotations

import numpy as np

ELEVATION_DEG = (10.0, 40.0)
"""Views look slightly down on the object, like the ShapeNet renderings the reference trained on
(3D-R2N2 / DISN used elevations of roughly 25-30 degrees); a range keeps some variety."""

CAMERA_DISTANCE = 2.8
"""In units of the object's bounding-sphere radius (1 in the model frame): mild perspective."""


def view_angles(
    seed: int, view: int, elevation_deg: tuple[float, float] = ELEVATION_DEG
) -> tuple[float, float]:
    """(azimuth, elevation) in radians for view number `view` of an object whose seed is `seed`.

    Each (seed, view) pair has its own generator, so view 3 is the same whether 4 or 8 views are rendered.
    """
    rng = np.random.default_rng([seed & 0xFFFFFFFF, view])
    azimuth = rng.uniform(0.0, 2.0 * np.pi)
    elevation = np.deg2rad(rng.uniform(*elevation_deg))
    return float(azimuth), float(elevation)


def camera_basis(azimuth: float, elevation: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Camera position (unit vector) and its right / up / forward axes, for a camera looking at the origin."""
    eye = np.array(
        [np.cos(elevation) * np.sin(azimuth), np.sin(elevation), np.cos(elevation) * np.cos(azimuth)]
    )
    forward = -eye
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)  # elevation stays below 90 degrees, so this never degenerates
    up = np.cross(right, forward)
    return eye, right, up, forward


def focal_length(size: int, distance: float = CAMERA_DISTANCE, margin: float = 0.9) -> float:
    """Focal length in pixels such that the unit sphere always fits in `margin` of the image (the rest
    leaves room for the splats of points on the sphere itself)."""
    return (size / 2) * margin / np.tan(np.arcsin(1.0 / distance))
