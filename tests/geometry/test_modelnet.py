"""The shared ModelNet40 rows: float16, kind-2 rows tiled x2; de-duplication recovers n_points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from crosspoint.geometry import deduplicate, prepare, to_model_frame
from tests.geometry.helpers import MODELNET_NPZ


@pytest.fixture(scope="module")
def rows() -> dict[str, np.ndarray]:
    if not Path(MODELNET_NPZ).exists():
        pytest.skip(f"no {MODELNET_NPZ}")
    with np.load(MODELNET_NPZ) as data:
        kind = data["source_kind"]
        # Every kind-1 row, and an even spread of the others (all 12k rows would take ~5 s).
        picked = np.concatenate(
            [np.flatnonzero(kind == 1)] + [np.flatnonzero(kind == k)[::97] for k in (0, 2)]
        )
        points = data["points"]
        return {"points": points[picked], "n_points": data["n_points"][picked], "kind": kind[picked]}


def test_rows_dedupe_to_n_points(rows: dict[str, np.ndarray]) -> None:
    assert set(rows["kind"].tolist()) == {0, 1, 2}
    for points, n_points, kind in zip(rows["points"], rows["n_points"], rows["kind"], strict=True):
        assert points.dtype == np.float16
        unique, index = deduplicate(points, return_index=True)
        assert len(unique) == n_points
        if kind == 2:  # the distinct points are the first 1024, in order
            assert np.array_equal(index, np.arange(1024))


def test_prepare_on_tiled_rows(rows: dict[str, np.ndarray]) -> None:
    for points, n_points in list(zip(rows["points"], rows["n_points"], strict=True))[::10]:
        out, receipt = prepare(points, 2048, seed=0)
        assert receipt.num_points == n_points and out.shape == (n_points, 3)
        assert receipt.duplicates_removed == 2048 - n_points
        # Every distinct point is taken, so the output is exactly the row's points in the model frame.
        expected = to_model_frame(points[:n_points], receipt)
        assert {row.tobytes() for row in out} == {row.tobytes() for row in expected}
        assert abs(float(np.linalg.norm(out, axis=1).max()) - 1.0) < 1e-6
