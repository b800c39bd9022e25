"""The SVM and few-shot protocols on synthetic features: C is chosen on validation (never test),
episodes are disjoint, seeded and limited to classes with enough shapes."""

from __future__ import annotations

import numpy as np
import pytest

from crosspoint.eval.fewshot import fewshot_accuracy, needed_indices, sample_episodes
from crosspoint.eval.svm import SVMResult, best_variant, svm_both


def _blobs(
    n: int, classes: int, seed: int, scale: float = 1.0, noise: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(classes, 32))
    y = np.arange(n) % classes
    return (centres[y] + noise * rng.normal(size=(n, 32))) * scale, y


def test_svm_protocol_picks_c_on_validation_and_reports_both_variants() -> None:
    train_x, train_y = _blobs(300, 5, 0, scale=0.01, noise=2.5)  # tiny, overlapping features
    test_x, test_y = _blobs(100, 5, 1, scale=0.01, noise=2.5)
    grid = (0.001, 0.1, 100.0)
    results = svm_both(train_x, train_y, test_x, test_y, Cs=grid)
    for variant, r in results.items():
        assert r.variant == variant and set(r.val_by_C) == {repr(c) for c in grid}
        best = max(r.val_by_C.values())
        # the smallest C among those with the best validation accuracy
        assert min(c for c in grid if r.val_by_C[repr(c)] == best) == r.C
        assert r.val_accuracy == best and 0.5 < r.test_accuracy <= 1.0
    # Shuffling the test labels changes test accuracy but not the chosen C (test plays no part in it).
    rng = np.random.default_rng(2)
    shuffled = svm_both(train_x, train_y, test_x, rng.permutation(test_y), Cs=grid)
    assert {k: r.C for k, r in shuffled.items()} == {k: r.C for k, r in results.items()}
    assert shuffled["scaled"].test_accuracy < results["scaled"].test_accuracy


def test_best_variant_is_chosen_by_validation_accuracy() -> None:
    a = SVMResult("unscaled", 1.0, val_accuracy=0.8, test_accuracy=0.9)
    b = SVMResult("scaled", 1.0, val_accuracy=0.85, test_accuracy=0.7)
    assert best_variant({"unscaled": a, "scaled": b}) is b


def test_episodes_are_disjoint_seeded_and_respect_class_sizes() -> None:
    labels = np.repeat(np.arange(6), [40, 40, 40, 40, 40, 10])  # class 5 is too small for 10 + 20
    episodes, classes = sample_episodes(labels, n_way=5, k_shot=10, n_query=20, runs=4, seed=0)
    assert classes == [0, 1, 2, 3, 4]
    again, _ = sample_episodes(labels, n_way=5, k_shot=10, n_query=20, runs=4, seed=0)
    for ep, ep2 in zip(episodes, again, strict=True):
        assert np.array_equal(ep.support, ep2.support) and np.array_equal(ep.query, ep2.query)
        assert not set(ep.support) & set(ep.query)
        assert len(ep.support) == 50 and len(ep.query) == 100
        # support label i are all shapes of one original class
        for i in range(5):
            assert len(set(labels[ep.support[ep.support_labels == i]])) == 1
    with pytest.raises(ValueError):
        sample_episodes(labels, n_way=6, k_shot=10, n_query=20)
    assert set(needed_indices(episodes)) <= set(range(len(labels)))


def test_fewshot_accuracy_on_separable_features() -> None:
    feats, labels = _blobs(300, 6, 0)
    episodes, _ = sample_episodes(labels, n_way=5, k_shot=5, n_query=20, runs=3, seed=1)
    result = fewshot_accuracy(episodes, lambda idx: feats[idx])
    assert result["mean"] > 90 and len(result["runs"]) == 3
    assert result["std"] == pytest.approx(np.std(result["runs"]))
