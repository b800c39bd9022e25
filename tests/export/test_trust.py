"""Calibration and OOD statistics (export/trust.py, export/calibrate.py) on synthetic data: the PPCA
distance is the Mahalanobis distance it claims, the temperature fit finds a known temperature, the
files refuse to be mixed up, and up_axis=auto's turns are what `prepare` would have done."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crosspoint import geometry
from export.calibrate import (
    fit_ood_stats,
    fit_temperature,
    fit_up_selector,
    reliability,
    softmax,
    threshold_at,
    up_axis_found,
)
from export.trust import (
    AUTO_UP_AXES,
    CALIBRATION_FILE,
    CALIBRATION_FORMAT,
    OOD_FILE,
    OOD_METHOD,
    UP_FILE,
    UP_METHOD,
    TrustError,
    auto_candidates,
    auto_choice,
    choose_up_axis,
    file_sha256,
    load_trust,
    signed_permutations,
    true_up_index,
    turn_randomly,
)
from tests.server.helpers import MESHES, require


def _blobs(seed: int = 0, n: int = 300, dim: int = 12, classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    mix = rng.normal(size=(dim, dim))
    x = rng.normal(size=(n, dim)) @ mix + 4 * rng.normal(size=(classes, dim))[labels]
    return x, labels


def test_ppca_score_is_the_mahalanobis_distance_of_its_covariance() -> None:
    x, y = _blobs()
    stats = fit_ood_stats(x, y, rank=5)
    assert stats.features == (0, x.shape[1])
    # The covariance the PPCA statistics stand for, built explicitly.
    b, v = stats.basis, stats.variances
    cov = b @ np.diag(v) @ b.T + stats.residual_variance * (np.eye(x.shape[1]) - b @ b.T)
    precision = np.linalg.inv(cov)
    query = np.random.default_rng(1).normal(size=(7, x.shape[1])) * 5
    z = query[:, None, :] - stats.means[None]
    exact = np.einsum("bcd,de,bce->bc", z, precision, z) / x.shape[1]
    assert np.allclose(stats.distances(query), exact, rtol=1e-9)
    assert np.allclose(stats.score(query), exact.min(axis=1))
    # Full rank: the plain shared-covariance Mahalanobis distance (Lee et al.).
    full = fit_ood_stats(x, y, rank=x.shape[1] - 1)
    centred = x - full.means[y]
    shared = centred.T @ centred / (len(x) - 3)
    d = query[:, None, :] - full.means[None]
    plain = np.einsum("bcd,de,bce->bc", d, np.linalg.inv(shared), d) / x.shape[1]
    assert np.allclose(full.distances(query), plain, rtol=1e-6)


def test_training_shapes_score_near_one_and_far_shapes_high() -> None:
    x, y = _blobs(n=3000)
    stats = fit_ood_stats(x, y, rank=6)
    held_out, _ = _blobs(seed=0, n=3000)
    assert 0.7 < float(np.median(stats.score(held_out))) < 1.3
    far = stats.means[:1] + 50 * np.random.default_rng(2).normal(size=(5, x.shape[1]))
    assert (stats.score(far) > 10 * threshold_at(stats.score(held_out))).all()


def test_temperature_fit_recovers_the_temperature_the_labels_were_drawn_with() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(20000, 5)) * 3
    labels = np.array([rng.choice(5, p=p) for p in softmax(logits, 2.5)])
    assert fit_temperature(logits, labels) == pytest.approx(2.5, rel=0.05)
    assert reliability(softmax(logits, 2.5), labels)["ece"] < 0.02
    assert reliability(softmax(logits), labels)["ece"] > 0.1  # overconfident before


def test_threshold_passes_the_target_share() -> None:
    scores = np.random.default_rng(0).random(1000)
    assert (scores <= threshold_at(scores)).mean() == pytest.approx(0.95, abs=0.002)


def _write(directory: Path, threshold: float = 1.5, temperature: float | None = 0.5) -> None:
    x, y = _blobs()
    stats = fit_ood_stats(x, y, rank=4)
    np.savez(directory / OOD_FILE, **stats.arrays())
    document = {
        "format": CALIBRATION_FORMAT,
        "temperature": temperature,
        "ood": {
            "method": OOD_METHOD,
            "file": OOD_FILE,
            "threshold": threshold,
            "sha256": file_sha256(directory / OOD_FILE),
        },
    }
    (directory / CALIBRATION_FILE).write_text(json.dumps(document))


def test_load_trust_round_trip_and_refusals(tmp_path: Path) -> None:
    assert load_trust(tmp_path) is None  # an uncalibrated version
    _write(tmp_path)
    trust = load_trust(tmp_path)
    assert trust is not None and trust.temperature == 0.5 and trust.threshold == 1.5
    logits = np.array([[1.0, 2.0, 0.0]])
    assert np.allclose(trust.probabilities(logits), softmax(logits, 0.5))
    assert trust.in_distribution(np.array([1.5, 1.6])).tolist() == [True, False]
    # ood.npz from another fit: its sha256 no longer matches the document.
    x, y = _blobs(seed=5)
    np.savez(tmp_path / OOD_FILE, **fit_ood_stats(x, y, rank=4).arrays())
    with pytest.raises(TrustError, match="sha256"):
        load_trust(tmp_path)
    (tmp_path / OOD_FILE).unlink()
    with pytest.raises(TrustError, match="missing"):
        load_trust(tmp_path)


def test_choose_up_axis_prefers_low_keys_then_the_tiebreak() -> None:
    assert AUTO_UP_AXES[choose_up_axis(np.array([3.0, 2.0, 1.0, 5.0, 1.5, 9.0]))] == "+y"
    tied = np.array([1.0, 1.0, 2.0, 2.0, 2.0, 2.0])
    assert choose_up_axis(tied, np.array([0.9, 0.2, 0, 0, 0, 0])) == 1
    assert choose_up_axis(tied) == 0


def test_auto_candidates_are_the_sample_turned_to_each_up_axis() -> None:
    """Each row is the one upright sample in the frame `prepare(..., up_axis=axis)` uses: the same
    surface, turned the same way (an explicit request samples in its own frame, so its FPS picks
    other points of that surface; bit-identical only for y)."""
    from scipy.spatial import cKDTree

    shape = geometry.load(require(MESHES / "bunny.ply"))
    upright, _ = geometry.prepare(shape, num_points=512, up_axis="y", seed=3)
    rows = auto_candidates(upright[None])
    assert rows.shape == (6, 512, 3) and np.array_equal(rows[AUTO_UP_AXES.index("+y")], upright)
    for axis in AUTO_UP_AXES:
        direct, _ = geometry.prepare(shape, num_points=512, up_axis=axis, seed=3)
        gaps = [float(cKDTree(direct).query(row)[0].mean()) for row in rows]
        assert AUTO_UP_AXES[int(np.argmin(gaps))] == axis and min(gaps) < 0.05, (axis, gaps)


def test_validate_flags_calibration_of_another_graph(tmp_path: Path) -> None:
    from export.validate import check_calibration

    (tmp_path / "model.onnx").write_bytes(b"graph one")
    assert check_calibration(tmp_path) == []  # none is fine
    _write(tmp_path)
    document = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    document["graph_sha256"] = file_sha256(tmp_path / "model.onnx")
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(document))
    assert check_calibration(tmp_path) == []
    (tmp_path / "model.onnx").write_bytes(b"graph two")
    assert "another model.onnx" in check_calibration(tmp_path)[0]
    (tmp_path / OOD_FILE).write_bytes(b"not the statistics")
    assert "sha256" in check_calibration(tmp_path)[0]


def test_statistics_can_describe_a_slice_of_the_embedding() -> None:
    x, y = _blobs(dim=12)
    half = fit_ood_stats(x, y, rank=4, features=(6, 12))
    alone = fit_ood_stats(x[:, 6:], y, rank=4)
    query = np.random.default_rng(3).normal(size=(5, 12))
    assert half.dim == 6 and np.allclose(half.score(query), alone.score(query[:, 6:]))
    from export.trust import OodStats

    assert OodStats.from_arrays(half.arrays()).features == (6, 12)


def test_turns_are_undone_by_the_true_up_axis() -> None:
    """turn_randomly's truth is the candidate with the shape's own up back on +y (heading still turned):
    its y coordinates are the upright shape's, and all 48 signed permutations occur."""
    rng = np.random.default_rng(0)
    upright = rng.normal(size=(200, 64, 3)).astype(np.float32)
    turned, truth, turns = turn_randomly(upright, rng)
    rows = auto_candidates(turned).reshape(len(upright), len(AUTO_UP_AXES), 64, 3)
    assert np.allclose(rows[np.arange(len(upright)), truth][..., 1], upright[..., 1], atol=1e-6)
    assert len({t.tobytes() for t in turns}) > 40 and len(signed_permutations()) == 48
    assert all(true_up_index(t) == i for t, i in zip(turns, truth, strict=True))


def test_up_selector_learns_a_direction_and_survives_the_files(tmp_path: Path) -> None:
    """fit_up_selector on embeddings where 'upright' is one direction: it finds the upright row of new
    shapes; the standardisation folded into the weights gives the same log-odds; calibration.json
    names up_axis.npz by sha256."""
    rng = np.random.default_rng(1)
    direction = 3.0 * rng.normal(size=16)

    def shapes(n: int) -> tuple[np.ndarray, np.ndarray]:
        truth = rng.integers(6, size=n)
        x = rng.normal(size=(n, 6, 16)) * 3.0 + 5.0
        x[np.arange(n), truth] += direction
        return x.reshape(n * 6, 16), truth

    (fit_x, fit_y), (val_x, val_y) = shapes(400), shapes(100)
    selector, info = fit_up_selector(fit_x, fit_y, val_x, val_y)
    assert up_axis_found(selector.logits(val_x), val_y) == info["val_axis_found_by_C"][str(info["C"])] > 0.8
    _write(tmp_path)
    np.savez(tmp_path / UP_FILE, **selector.arrays())
    document = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    document["up_axis"] = {"method": UP_METHOD, "file": UP_FILE, "sha256": file_sha256(tmp_path / UP_FILE)}
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(document))
    trust = load_trust(tmp_path)
    assert trust is not None and trust.up is not None
    assert np.allclose(trust.up.logits(val_x), selector.logits(val_x))
    choice = auto_choice(trust, val_x[:6])
    assert choice is not None and choice[0] == int(np.argmax(selector.logits(val_x[:6])))
    assert np.isclose(choice[1].sum(), 1.0)  # the receipt's scores: shares of belief over the 6
    np.savez(tmp_path / UP_FILE, weights=np.zeros(16), bias=np.array(0.0))
    with pytest.raises(TrustError, match="sha256"):
        load_trust(tmp_path)
