"""Few-shot classifiers fitted on a collection's labelled embeddings (numpy + scipy: the serving set).

Three were measured on the shipped embed model through the API (`bench/collections_eval.py`, README
"Collections"): nearest class mean (cosine), k-nearest-neighbour vote, and a multinomial logistic head
on standardised embeddings. `DEFAULT_METHOD` is the one that measured best; the others stay selectable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.optimize import minimize

Method = Literal["mean", "knn", "logistic"]
METHODS: tuple[Method, ...] = ("mean", "knn", "logistic")
DEFAULT_METHOD: Method = "logistic"
MEAN_TEMPERATURE = 0.05  # softmax over cosine similarities to the class means
KNN_K = 10
LOGISTIC_L2 = 1.0  # penalty on the weights of standardised features (a few examples per class)


def normalized(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class FewShotClassifier:
    method: Method
    classes: list[str]
    # mean: unit class means [C, D]; knn: unit examples [M, D] + their class index [M];
    # logistic: feature mean/scale [D] and weights [D + 1, C]
    arrays: dict[str, np.ndarray]

    def probabilities(self, queries: np.ndarray) -> np.ndarray:
        """[Q, D] embeddings -> [Q, C] class probabilities (order of `classes`)."""
        q = np.atleast_2d(np.asarray(queries, dtype=np.float64))
        a = self.arrays
        if self.method == "mean":
            return _softmax(normalized(q) @ a["means"].T / MEAN_TEMPERATURE)
        if self.method == "knn":
            sims = normalized(q) @ a["examples"].T
            k = min(KNN_K, sims.shape[1])
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            votes = np.zeros((q.shape[0], len(self.classes)))
            for row in range(q.shape[0]):
                # one vote per neighbour, plus its similarity / k as a tie-break that never outweighs a vote
                np.add.at(votes[row], a["owner"][top[row]], 1.0 + sims[row, top[row]] / (k + 1))
            return votes / votes.sum(axis=1, keepdims=True)
        z = (q - a["center"]) / a["scale"]
        return _softmax(z @ a["weights"][:-1] + a["weights"][-1])


def fit(method: Method, labels: list[str], embeddings: np.ndarray) -> FewShotClassifier:
    """Fit on labelled embeddings [M, D] (at least one label; one class answers with probability 1)."""
    classes = sorted(set(labels))
    owner = np.array([classes.index(label) for label in labels])
    x = np.asarray(embeddings, dtype=np.float64)
    if method == "mean":
        unit = normalized(x)
        means = np.stack([unit[owner == c].mean(axis=0) for c in range(len(classes))])
        return FewShotClassifier(method, classes, {"means": normalized(means)})
    if method == "knn":
        return FewShotClassifier(method, classes, {"examples": normalized(x), "owner": owner})
    return FewShotClassifier(method, classes, _fit_logistic(x, owner, len(classes)))


def _fit_logistic(x: np.ndarray, owner: np.ndarray, num_classes: int) -> dict[str, np.ndarray]:
    center = x.mean(axis=0)
    scale = x.std(axis=0) + 1e-6
    z = (x - center) / scale
    n, d = z.shape
    target = np.eye(num_classes)[owner]

    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        w = flat.reshape(d + 1, num_classes)
        logits = z @ w[:-1] + w[-1]
        logits -= logits.max(axis=1, keepdims=True)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        value = -(target * logp).sum() / n + 0.5 * LOGISTIC_L2 * (w[:-1] ** 2).sum() / n
        residual = (np.exp(logp) - target) / n
        grad = np.vstack([z.T @ residual + LOGISTIC_L2 * w[:-1] / n, residual.sum(axis=0)])
        return float(value), grad.ravel()

    if num_classes == 1:
        weights = np.zeros((d + 1, 1))
    else:
        result = minimize(
            loss, np.zeros((d + 1) * num_classes), jac=True, method="L-BFGS-B", options={"maxiter": 200}
        )
        weights = result.x.reshape(d + 1, num_classes)
    return {"center": center, "scale": scale, "weights": weights}
