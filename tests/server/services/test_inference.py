"""The pure parts of the inference service: softmax, category ranking, the num_points range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.metadata import ServingMetadata
from server.backends.base import ModelInfo
from server.core.config import Settings
from server.errors import ServingError
from server.services.inference import category_scores, log_softmax, resolve_num_points, softmax


def test_softmax_is_stable() -> None:
    logits = np.array([[1000.0, 1000.0, -1000.0]], dtype=np.float32)
    assert np.allclose(softmax(logits), [[0.5, 0.5, 0.0]])
    assert np.allclose(np.exp(log_softmax(logits)).sum(), 1.0)


def test_category_scores_prefer_the_category_whose_parts_win() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 100, 6))
    logits[1, :, 2:4] += 8.0  # with category 1, points fall confidently on category 1's parts
    parts = [[0, 1], [2, 3], [4, 5]]
    scores = category_scores(logits, parts)
    assert int(np.argmax(scores)) == 1
    # few parts are no free advantage: probabilities are normalised over all parts
    logits2 = np.zeros((2, 10, 6))
    assert np.allclose(category_scores(logits2, [[0], [1, 2, 3, 4, 5]]), np.log(1 / 6))


def test_num_points_range(tmp_path: Path) -> None:
    info = ModelInfo(
        "embed", "1", tmp_path, ServingMetadata(num_points=1024, min_points=20, max_points=4096, k=20)
    )
    settings = Settings(model_repository=tmp_path)
    assert resolve_num_points(info, None, settings) == 1024
    assert resolve_num_points(info, 20, settings) == 20
    with pytest.raises(ServingError) as err:
        resolve_num_points(info, 19, settings)
    assert err.value.code == "num_points_out_of_range" and err.value.status == 422
    narrowed = Settings(model_repository=tmp_path, max_num_points=512, default_num_points=2048)
    assert resolve_num_points(info, None, narrowed) == 512
    with pytest.raises(ServingError):
        resolve_num_points(info, 1024, narrowed)
