"""Calibration and out-of-distribution statistics of a served version, read and applied without torch.

Written by `crosspoint calibrate` (export/calibrate.py) beside the graph, versioned with it:

    <repository>/<model>/<version>/calibration.json   temperature (classify), OOD method, threshold,
                                                      provenance, sha256 of ood.npz and model.onnx
    <repository>/<model>/<version>/ood.npz            the statistics the OOD score needs
    <repository>/<model>/<version>/up_axis.npz        up_axis=auto's selector (UpSelector)

The OOD score is the Mahalanobis distance of the embedding to the nearest class mean under one
covariance shared by all classes (Lee et al. 2018), on the average-pooled half of the 2048-d
embedding (`features`: DGCNN's embedding is [max-pool; avg-pool]; measured in the README, the
max-pooled half carries little OOD signal and drowns the other: AUROC 0.84 on the whole embedding
vs 0.99 on the average half, at every PPCA rank tried). The covariance is estimated as probabilistic
PCA: the top `rank` principal directions of the within-class scatter keep their own variances, the
rest share their mean variance (with a few thousand shapes the sample covariance is singular; this
is its usual well-conditioned estimate). Score = d^2 / dim (about 1 for a typical training shape;
higher = less like the training data). The gateway computes it in numpy from the graph's `embedding`
output, so both backends give the same score.

up_axis=auto scores 6 candidate orientations (AUTO_UP_AXES) as one batch and keeps the most upright by
a linear "is this upright?" model on each candidate's embedding (UpSelector; auto_choice holds the
rule). The OOD score made a poor orientation picker: a shape on its side is often as close to some
class mean as upright (the README's trust table has the numbers).
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from crosspoint.geometry.normalize import up_axis_rotation
from export.metadata import file_sha256

CALIBRATION_FILE = "calibration.json"
OOD_FILE = "ood.npz"
CALIBRATION_FORMAT = "crosspoint-calibration/1"
OOD_METHOD = "mahalanobis_ppca"
UP_FILE = "up_axis.npz"
UP_METHOD = "upright_logistic"


class TrustError(ValueError):
    """calibration.json / ood.npz are missing pieces, disagree with each other, or are not ours."""


@dataclass(frozen=True)
class OodStats:
    """Class means and a shared PPCA covariance of the embedding (see module doc)."""

    means: np.ndarray  # float64 [C, D]
    basis: np.ndarray  # float64 [D, r]: orthonormal principal directions
    variances: np.ndarray  # float64 [r]: variance along each direction
    residual_variance: float  # variance of every direction outside the basis
    features: tuple[int, int]  # the embedding columns [start, stop) the statistics describe

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "means": self.means.astype(np.float32),
            "basis": self.basis.astype(np.float32),
            "variances": self.variances.astype(np.float64),
            "residual_variance": np.array(self.residual_variance, dtype=np.float64),
            "features": np.array(self.features, dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> OodStats:
        means = np.asarray(arrays["means"], dtype=np.float64)
        basis = np.asarray(arrays["basis"], dtype=np.float64)
        variances = np.asarray(arrays["variances"], dtype=np.float64)
        residual = float(arrays["residual_variance"])
        start, stop = (int(v) for v in np.asarray(arrays["features"]).reshape(2))
        if means.ndim != 2 or basis.shape[0] != means.shape[1] or variances.shape != (basis.shape[1],):
            raise TrustError(f"ood statistics of inconsistent shapes: {means.shape}, {basis.shape}")
        if stop - start != means.shape[1]:
            raise TrustError(f"ood statistics of {means.shape[1]} features for columns {start}:{stop}")
        if residual <= 0 or (variances <= 0).any():
            raise TrustError("ood statistics need positive variances")
        return cls(means, basis, variances, residual, (start, stop))

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @cached_property
    def _mean_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """The class means on the basis and their squared norms: the same for every call of `distances`,
        and most of its work when a request scores one row (~10 MFLOP, computed once per version)."""
        return self.means @ self.basis, (self.means**2).sum(-1)

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of each row to each class mean, divided by D: [B, C]."""
        x = np.asarray(embeddings, dtype=np.float64)[:, self.features[0] : self.features[1]]
        means_inside, means_norm = self._mean_terms
        # Expanded so no [B, C, D] tensor is built: ||x - m||^2 and its projection onto the basis.
        inside = (x @ self.basis)[:, None, :] - means_inside[None, :, :]  # [B, C, r]
        total = (x * x).sum(-1)[:, None] - 2.0 * x @ self.means.T + means_norm[None, :]
        along = (inside**2).sum(-1)
        d2 = (inside**2 / self.variances).sum(-1) + np.maximum(total - along, 0.0) / self.residual_variance
        return d2 / self.dim

    def score(self, embeddings: np.ndarray) -> np.ndarray:
        """OOD score per row: distance to the nearest class mean (higher = less like the training data)."""
        return self.distances(embeddings).min(axis=1)


@dataclass(frozen=True)
class UpSelector:
    """up_axis=auto's "is this the shape's up axis?": a logistic regression on the embedding of a
    candidate orientation (standardisation folded into the weights), fitted by `crosspoint calibrate`
    on training shapes shown under all 6 up axes, each with a random heading."""

    weights: np.ndarray  # float64 [D]
    bias: float
    # classify: added to the log-odds, times each candidate's calibrated top-1 probability (the key the
    # gateway ranks by); fitted on turned validation shapes. 0 for a model without logits.
    confidence_weight: float = 0.0

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "weights": self.weights.astype(np.float64),
            "bias": np.array(self.bias, dtype=np.float64),
            "confidence_weight": np.array(self.confidence_weight, dtype=np.float64),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> UpSelector:
        weights = np.asarray(arrays["weights"], dtype=np.float64)
        if weights.ndim != 1 or not np.isfinite(weights).all():
            raise TrustError(f"up-axis selector weights of shape {weights.shape} or not finite")
        return cls(weights, float(arrays["bias"]), float(arrays.get("confidence_weight", 0.0)))

    def keys(self, embeddings: np.ndarray, confidence: np.ndarray | None = None) -> np.ndarray:
        """What auto ranks the candidates by (higher = keep): the log-odds, plus confidence_weight x
        the calibrated top-1 probability when the model has logits."""
        keys = self.logits(embeddings)
        if confidence is not None and self.confidence_weight:
            keys = keys + self.confidence_weight * np.asarray(confidence, dtype=np.float64)
        return keys

    def logits(self, embeddings: np.ndarray) -> np.ndarray:
        """Log-odds that each row is its shape upright (higher = more upright)."""
        x = np.asarray(embeddings, dtype=np.float64)
        if x.shape[-1] != len(self.weights):
            raise TrustError(f"up-axis selector of {len(self.weights)} features for embeddings {x.shape}")
        return x @ self.weights + self.bias


@dataclass(frozen=True)
class Trust:
    """What a version's answers need beyond the graph: temperature, OOD statistics and threshold."""

    temperature: float | None  # classify only
    threshold: float  # ood_score <= threshold -> in distribution
    stats: OodStats
    document: dict[str, Any]
    up: UpSelector | None = (
        None  # None: calibrated before the selector existed (auto then ranks by ood_score)
    )

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """Softmax of logits / T (plain softmax when this version has no temperature)."""
        scaled = np.asarray(logits, dtype=np.float64) / (self.temperature or 1.0)
        scaled -= scaled.max(axis=-1, keepdims=True)
        exp = np.exp(scaled)
        return exp / exp.sum(axis=-1, keepdims=True)

    def ood_scores(self, embeddings: np.ndarray) -> np.ndarray:
        return self.stats.score(embeddings)

    def in_distribution(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores) <= self.threshold


def load_trust(version_dir: str | os.PathLike[str]) -> Trust | None:
    """The version's calibration, or None when it has none (an uncalibrated version still serves).

    Raises TrustError when the files exist but do not belong together: ood.npz must be the file the
    document names, so a half-copied version is never scored with someone else's statistics.
    """
    directory = Path(version_dir)
    path = directory / CALIBRATION_FILE
    if not path.is_file():
        return None
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrustError(f"{path}: not valid JSON ({exc})") from exc
    if document.get("format") != CALIBRATION_FORMAT:
        raise TrustError(f"{path}: format {document.get('format')!r}, expected {CALIBRATION_FORMAT!r}")
    ood = document.get("ood") or {}
    if ood.get("method") != OOD_METHOD:
        raise TrustError(f"{path}: unknown OOD method {ood.get('method')!r}")
    stats_path = directory / str(ood.get("file", OOD_FILE))
    if not stats_path.is_file():
        raise TrustError(f"{stats_path}: missing (named by {path.name})")
    if ood.get("sha256") != file_sha256(stats_path):
        raise TrustError(f"{stats_path}: sha256 differs from the one {path.name} records")
    with np.load(stats_path) as f:
        stats = OodStats.from_arrays({name: f[name] for name in f.files})
    temperature = document.get("temperature")
    return Trust(
        temperature=float(temperature) if temperature is not None else None,
        threshold=float(ood["threshold"]),
        stats=stats,
        document=document,
        up=_load_up_selector(directory, path, document.get("up_axis")),
    )


def _load_up_selector(directory: Path, path: Path, section: dict[str, Any] | None) -> UpSelector | None:
    if section is None:
        return None
    if section.get("method") != UP_METHOD:
        raise TrustError(f"{path}: unknown up-axis method {section.get('method')!r}")
    file = directory / str(section.get("file", UP_FILE))
    if not file.is_file():
        raise TrustError(f"{file}: missing (named by {path.name})")
    if section.get("sha256") != file_sha256(file):
        raise TrustError(f"{file}: sha256 differs from the one {path.name} records")
    with np.load(file) as f:
        return UpSelector.from_arrays({name: f[name] for name in f.files})


AUTO_UP_AXES: tuple[str, ...] = ("+x", "-x", "+y", "-y", "+z", "-z")
"""The candidates of up_axis=auto, in the order of their rows in the batch."""


def auto_candidates(points: np.ndarray) -> np.ndarray:
    """Model-frame clouds [M, N, 3] (prepared with up_axis y) -> [M * 6, N, 3]: row m * 6 + a is cloud m
    as `prepare(..., up_axis=AUTO_UP_AXES[a])` frames it (the same rotation, applied after centring)."""
    rotations = np.stack([up_axis_rotation(a) for a in AUTO_UP_AXES]).astype(np.float32)
    clouds = np.asarray(points, dtype=np.float32)
    return np.einsum("mnj,aij->mani", clouds, rotations).reshape(-1, *clouds.shape[1:])


def signed_permutations() -> list[np.ndarray]:
    """The 48 signed axis permutations (24 rotations and their mirror images): the turns up_axis=auto
    is fitted and measured on."""
    out = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[np.arange(3), perm] = signs
            out.append(m)
    return out


def true_up_index(turn: np.ndarray) -> int:
    """The AUTO_UP_AXES candidate that brings a shape turned by `turn` (3x3) upright again (its +y)."""
    up = np.asarray(turn) @ np.array([0.0, 1.0, 0.0])
    return next(i for i, a in enumerate(AUTO_UP_AXES) if np.allclose(up_axis_rotation(a) @ up, [0, 1, 0]))


def turn_randomly(points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each cloud of `points [M, N, 3]` turned by its own random signed axis permutation drawn from `rng`
    (a new up axis AND a new heading about it, mirror images included) -> (turned clouds, index of the
    true up axis in AUTO_UP_AXES per cloud, the turns [M, 3, 3])."""
    perms = signed_permutations()
    which = rng.integers(len(perms), size=len(points))
    turns = np.stack([perms[i] for i in which])
    turned = np.einsum("mnj,mij->mni", np.asarray(points, dtype=np.float32), turns).astype(np.float32)
    return turned, np.array([true_up_index(perms[i]) for i in which], dtype=np.int64), turns


def auto_choice(
    trust: Trust | None, embeddings: np.ndarray, confidence: np.ndarray | None = None
) -> tuple[int, np.ndarray] | None:
    """up_axis=auto's rule, given the 6 candidates' embeddings (and, for classify, their top-1
    probabilities): (index into AUTO_UP_AXES of the one kept, per-axis scores for the receipt), or None
    when the version has nothing to choose with (no calibration and no logits).

    With the version's up-axis selector: the most upright candidate (for classify, uprightness plus a
    fitted weight x confidence: UpSelector.keys), exact ties to the lowest ood_score; the scores are
    the softmax of those keys over the 6 (the share of belief that each axis is the shape's up).
    Versions calibrated before the selector: the most confident (classify) or most in-distribution
    (embed) candidate, scores = ood_score."""
    if trust is not None and trust.up is not None:
        keys = trust.up.keys(embeddings, confidence)
        share = np.exp(keys - keys.max())
        return choose_up_axis(-keys, trust.ood_scores(embeddings)), share / share.sum()
    if trust is not None:
        scores = trust.ood_scores(embeddings)
        return choose_up_axis(-confidence, scores) if confidence is not None else choose_up_axis(
            scores
        ), scores
    if confidence is not None:
        return choose_up_axis(-confidence), -np.asarray(confidence, dtype=np.float64)
    return None


def choose_up_axis(keys: np.ndarray, tiebreak: np.ndarray | None = None) -> int:
    """Index into AUTO_UP_AXES of the orientation to keep: the lowest `keys` (OOD scores, or minus the
    confidences), exact ties to the lowest `tiebreak`, then to the earlier axis."""
    first = np.asarray(keys, dtype=np.float64)
    second = np.asarray(tiebreak, dtype=np.float64) if tiebreak is not None else np.zeros_like(first)
    return int(np.lexsort((np.arange(len(first)), second, first))[0])
