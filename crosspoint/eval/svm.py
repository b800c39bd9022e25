"""The linear-SVM protocol on frozen features (CrossPoint's main ModelNet40 number).

The reference fits `SVC(kernel="linear")` on the train features and scores the test features, with a
hand-picked C (0.1 in `train_crosspoint.py`, 0.01 in `eval_ssl.ipynb`) and no scaling. We pick C on a
stratified validation part of train (never on test), refit on all of train with that C, and report two
variants: `unscaled` (the reference) and `scaled` (StandardScaler first). Both matter because a DGCNN
with random weights has tiny features (mean |f| ~0.03): unscaled it looks weak at small C, scaled it
is a strong baseline (see ARCHITECTURE.md). Compare networks on the best of the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

C_GRID: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)


@dataclass
class SVMResult:
    variant: str  # "unscaled" | "scaled"
    C: float
    val_accuracy: float  # of the chosen C, fitted on the train part, scored on the validation part
    test_accuracy: float  # refit on all of train with the chosen C
    val_by_C: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def make_svm(C: float, scaled: bool, seed: int = 0) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    # libsvm is deterministic for a given input order; a bigger kernel cache halves the fit time here.
    svc = SVC(C=C, kernel="linear", cache_size=1000, random_state=seed)
    return make_pipeline(StandardScaler(), svc) if scaled else svc


def svm_protocol(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    scaled: bool,
    Cs: Sequence[float] = C_GRID,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> SVMResult:
    """Choose C on a validation split of train, refit on all of train, score test."""
    from crosspoint.data import train_val_split

    fit_idx, val_idx = train_val_split(train_y, val_fraction=val_fraction, seed=seed)
    val_by_C: dict[str, float] = {}
    for C in Cs:
        clf = make_svm(C, scaled, seed).fit(train_x[fit_idx], train_y[fit_idx])
        val_by_C[repr(float(C))] = float(clf.score(train_x[val_idx], train_y[val_idx]))
    # Highest validation accuracy; ties go to the smaller C (stronger regularization).
    best = max(Cs, key=lambda c: (val_by_C[repr(float(c))], -c))
    final = make_svm(best, scaled, seed).fit(train_x, train_y)
    return SVMResult(
        variant="scaled" if scaled else "unscaled",
        C=float(best),
        val_accuracy=val_by_C[repr(float(best))],
        test_accuracy=float(final.score(test_x, test_y)),
        val_by_C=val_by_C,
    )


def svm_both(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    Cs: Sequence[float] = C_GRID,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> dict[str, SVMResult]:
    return {
        variant: svm_protocol(
            train_x,
            train_y,
            test_x,
            test_y,
            scaled=variant == "scaled",
            Cs=Cs,
            val_fraction=val_fraction,
            seed=seed,
        )
        for variant in ("unscaled", "scaled")
    }


def best_variant(results: dict[str, SVMResult]) -> SVMResult:
    """The variant with the higher VALIDATION accuracy (choosing on test would flatter the number)."""
    return max(results.values(), key=lambda r: (r.val_accuracy, r.variant == "unscaled"))
