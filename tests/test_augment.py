"""The CrossPoint augmentations against the ranges the reference states (ARCHITECTURE, CrossPoint facts).

The point-view tests treat `augment_point_view` as a black box: they recover the scale, rotation,
translation, jitter and dropout from input/output pairs, so they check what the function does, not how.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from crosspoint.augment import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    JITTER_CLIP,
    MAX_DROPOUT_RATIO,
    augment_image,
    augment_point_view,
    color_jitter,
    image_to_tensor,
    normalize_image,
    quarter_turn,
)
from crosspoint.geometry import normalize_unit_sphere


@pytest.fixture(scope="module")
def cloud() -> np.ndarray:
    """A lopsided, non-normalized cloud: a box of uniform points, shifted and stretched."""
    rng = np.random.default_rng(7)
    return (rng.uniform(-1, 1, size=(1024, 3)) * [2.0, 1.5, 1.0] + [5.0, -2.0, 1.0]).astype(np.float32)


def _recover(src: np.ndarray, out: np.ndarray) -> dict[str, Any]:
    """Fit out = s * R_y(theta) @ p + t on the kept points, p = the normalized input."""
    p, _, _ = normalize_unit_sphere(src.astype(np.float64))
    out = out.astype(np.float64)
    dropped = (out == out[0]).all(axis=1)
    dropped[0] = False
    keep = ~dropped
    # y is untouched by a rotation about y: a 1-D linear fit gives scale and t_y.
    s_y, t_y = np.polyfit(p[keep, 1], out[keep, 1], 1)
    # x-z plane: 2-D similarity (Procrustes) gives the rotation, its scale and t_xz.
    a, b = p[keep][:, [0, 2]], out[keep][:, [0, 2]]
    a0, b0 = a - a.mean(0), b - b.mean(0)
    u, sv, vt = np.linalg.svd(a0.T @ b0)
    rot = (u @ vt).T
    s_xz = sv.sum() / (a0**2).sum()
    t_xz = b.mean(0) - s_xz * (rot @ a.mean(0))
    fitted = np.empty_like(p[keep])
    fitted[:, 1] = s_y * p[keep, 1] + t_y
    fitted[:, [0, 2]] = s_xz * a @ rot.T + t_xz
    # The reference translates by U[-0.5, 0.5] x the extent of the scaled, rotated cloud.
    moved = np.empty_like(p)
    moved[:, 1] = s_y * p[:, 1]
    moved[:, [0, 2]] = s_xz * p[:, [0, 2]] @ rot.T
    return {
        "keep": keep,
        "scale_y": s_y,
        "scale_xz": s_xz,
        "det": np.linalg.det(rot),
        "angle": np.arctan2(rot[1, 0], rot[0, 0]),
        "t": np.array([t_xz[0], t_y, t_xz[1]]),
        "extent": moved.max(0) - moved.min(0),
        "residual": out[keep] - fitted,
    }


def test_point_view_is_deterministic_float32_and_keeps_n(cloud: np.ndarray) -> None:
    a = augment_point_view(cloud, np.random.default_rng(3))
    b = augment_point_view(cloud, np.random.default_rng(3))
    c = augment_point_view(cloud, np.random.default_rng(4))
    assert a.dtype == np.float32 and a.shape == cloud.shape
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_point_view_follows_the_reference_ranges(cloud: np.ndarray) -> None:
    scales, angles, drop_ratios = [], [], []
    for seed in range(120):
        fit = _recover(cloud, augment_point_view(cloud, np.random.default_rng(seed)))
        # scale U[0.5, 2], the same on every axis
        assert 0.5 - 1e-3 <= fit["scale_y"] <= 2.0 + 1e-3
        assert fit["scale_xz"] == pytest.approx(fit["scale_y"], rel=0.02)
        # rotation about y only: a proper 2-D rotation in x-z, y only scaled and shifted (up to jitter)
        assert fit["det"] == pytest.approx(1.0, abs=1e-6)
        residual = np.asarray(fit["residual"])
        assert np.abs(residual).max() <= JITTER_CLIP + 5e-3
        # jitter N(0, 0.01) clipped at 0.05
        assert 0.007 < residual.std() < 0.013
        # translation U[-0.5, 0.5] x extent per axis
        assert np.all(np.abs(fit["t"]) <= 0.5 * np.asarray(fit["extent"]) + 5e-3)
        # dropout: at most 87.5% (+ binomial noise on 1024 points), dropped points equal the first
        drop_ratios.append(1.0 - np.mean(fit["keep"]))
        assert drop_ratios[-1] <= MAX_DROPOUT_RATIO + 0.04
        scales.append(fit["scale_y"])
        angles.append(fit["angle"] % (2 * np.pi))
    # the draws span their ranges
    assert min(scales) < 0.65 and max(scales) > 1.85
    assert np.histogram(angles, bins=4, range=(0, 2 * np.pi))[0].min() >= 15
    assert 0.35 < np.mean(drop_ratios) < 0.53  # mean of U[0, 0.875] is 0.4375
    assert max(drop_ratios) > 0.75


def test_dropped_points_are_copies_of_the_first(cloud: np.ndarray) -> None:
    out = augment_point_view(cloud, np.random.default_rng(11))
    same_as_first = (out == out[0]).all(axis=1)
    assert same_as_first.sum() > 1  # seed 11 drops some points
    # every other point is distinct (continuous jitter), so "equal to out[0]" means dropped
    assert len(np.unique(out[~same_as_first], axis=0)) == (~same_as_first).sum()


def test_image_augmentation_output_shape_dtype_and_range() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(137, 137, 3), dtype=np.uint8)  # ShapeNetRendering size
    out = augment_image(image, np.random.default_rng(1))
    assert out.shape == (3, 224, 224) and out.dtype == torch.float32
    pixels = out * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert torch.equal(out, augment_image(image, np.random.default_rng(1)))
    assert augment_image(image, np.random.default_rng(1), size=64).shape == (3, 64, 64)


def test_imagenet_normalization() -> None:
    img = torch.full((3, 4, 4), 0.5)
    out = normalize_image(img)
    for c in range(3):
        assert torch.allclose(out[c], torch.tensor((0.5 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]))
    assert torch.equal(image_to_tensor(np.full((4, 4, 3), 255, np.uint8)), torch.ones(3, 4, 4))


def test_image_augmentation_flips_about_half_the_time() -> None:
    image = np.zeros((32, 32, 3), np.uint8)
    image[:, 16:] = 255  # bright right half
    flipped = 0
    for seed in range(200):
        out = augment_image(image, np.random.default_rng(seed), size=32)
        flipped += int(out[:, :, :16].mean() > out[:, :, 16:].mean())
    assert 70 < flipped < 130


def test_color_jitter_factors_stay_in_range_and_keep_grey_grey() -> None:
    grey = torch.full((3, 8, 8), 0.5)
    for seed in range(50):
        out = color_jitter(grey, np.random.default_rng(seed))
        assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])  # saturation: no colour
        # brightness U[0.6, 1.4]; contrast/saturation leave a flat grey image unchanged
        assert 0.3 - 1e-6 <= float(out.mean()) <= 0.7 + 1e-6


def test_quarter_turn_draws_the_8_headings_and_keeps_up(cloud: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        out = quarter_turn(cloud, rng)
        assert out.dtype == np.float32 and out.shape == cloud.shape
        # Recover the 3x3 map from the pairs: a signed permutation that leaves y (up) where it was.
        turn, *_ = np.linalg.lstsq(cloud.astype(np.float64), out.astype(np.float64), rcond=None)
        turn = turn.T.round(6)
        assert np.array_equal(np.abs(turn).sum(axis=0), [1, 1, 1]) and set(np.abs(turn).ravel()) == {0, 1}
        assert turn[1, 1] == 1.0
        seen.add(tuple(turn.ravel()))
    assert len(seen) == 8  # 4 quarter turns x (mirrored or not)
