"""Few-shot N-way K-shot classification on frozen features, following the reference `eval_fewshot.py`.

Per run: draw N classes, K support and 20 query shapes per class (disjoint), fit StandardScaler +
`SVC(kernel="linear")` (default C=1) on the support features, score the queries; report mean +- std
(population std, `np.std`) of the accuracy in percent over runs (the paper: 10 runs).

Where the shapes come from: the reference draws support AND query from the ModelNet40 *train* h5
files (`load_modelnet_data('train')` in MohamedAfham/CrossPoint `eval_fewshot.py`), so `split="train"`
is the default here; `split="test"` is offered, limited to the classes with at least K + 20 shapes.
Unlike the reference (unseeded `random`), episodes come from a seeded generator, so a run repeats.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Episode:
    support: np.ndarray  # row indices into the pool, [N*K]
    support_labels: np.ndarray  # 0..N-1
    query: np.ndarray  # [N*Q]
    query_labels: np.ndarray


def sample_episodes(
    labels: np.ndarray, n_way: int, k_shot: int, n_query: int = 20, runs: int = 10, seed: int = 0
) -> tuple[list[Episode], list[int]]:
    """Seeded episodes over the classes that have at least K + Q shapes; returns them and those classes."""
    labels = np.asarray(labels)
    classes = [int(c) for c in np.unique(labels) if (labels == c).sum() >= k_shot + n_query]
    if len(classes) < n_way:
        raise ValueError(
            f"only {len(classes)} classes have >= {k_shot + n_query} shapes; cannot draw {n_way}-way episodes"
        )
    rng = np.random.default_rng(seed)
    episodes = []
    for _ in range(runs):
        ways = rng.choice(classes, size=n_way, replace=False)
        support, query = [], []
        for c in ways:
            members = rng.permutation(np.flatnonzero(labels == c))
            support.append(members[:k_shot])
            query.append(members[k_shot : k_shot + n_query])
        episodes.append(
            Episode(
                support=np.concatenate(support),
                support_labels=np.repeat(np.arange(n_way), k_shot),
                query=np.concatenate(query),
                query_labels=np.repeat(np.arange(n_way), n_query),
            )
        )
    return episodes, classes


def fewshot_accuracy(
    episodes: list[Episode], features: Callable[[np.ndarray], np.ndarray], C: float = 1.0
) -> dict[str, Any]:
    """`features(indices) -> [len, D]`; returns accuracies (percent) per run and their mean/std."""
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    accs = []
    for ep in episodes:
        scaler = StandardScaler().fit(features(ep.support))
        clf = SVC(C=C, kernel="linear").fit(scaler.transform(features(ep.support)), ep.support_labels)
        accs.append(100.0 * float(clf.score(scaler.transform(features(ep.query)), ep.query_labels)))
    return {"mean": float(np.mean(accs)), "std": float(np.std(accs)), "runs": accs}


def needed_indices(episodes: list[Episode]) -> np.ndarray:
    """Every pool row any episode uses: only these are embedded."""
    return np.unique(np.concatenate([np.concatenate((ep.support, ep.query)) for ep in episodes]))
