"""Calibration and out-of-distribution statistics of a served version, read and applied without torch.

Written by `crosspoint calibrate` (export/calibrate.py) beside the graph, versioned with it:

    <repository>/<model>/<version>/calibration.json   temperature (classify), OOD method, threshold,
                                                      provenance, sha256 of ood.npz and model.onnx
    <repository>/<model>/<version>/ood.npz            the statistics the OOD score needs

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
"""

from __future__ import annotations

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
class Trust:
    """What a version's answers need beyond the graph: temperature, OOD statistics and threshold."""

    temperature: float | None  # classify only
    threshold: float  # ood_score <= threshold -> in distribution
    stats: OodStats
    document: dict[str, Any]

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
    )


AUTO_UP_AXES: tuple[str, ...] = ("+x", "-x", "+y", "-y", "+z", "-z")
"""The candidates of up_axis=auto, in the order of their rows in the batch."""


def auto_candidates(points: np.ndarray) -> np.ndarray:
    """Model-frame clouds [M, N, 3] (prepared with up_axis y) -> [M * 6, N, 3]: row m * 6 + a is cloud m
    as `prepare(..., up_axis=AUTO_UP_AXES[a])` frames it (the same rotation, applied after centring)."""
    rotations = np.stack([up_axis_rotation(a) for a in AUTO_UP_AXES]).astype(np.float32)
    clouds = np.asarray(points, dtype=np.float32)
    return np.einsum("mnj,aij->mani", clouds, rotations).reshape(-1, *clouds.shape[1:])


def choose_up_axis(keys: np.ndarray, tiebreak: np.ndarray | None = None) -> int:
    """Index into AUTO_UP_AXES of the orientation to keep: the lowest `keys` (OOD scores, or minus the
    confidences), exact ties to the lowest `tiebreak`, then to the earlier axis."""
    first = np.asarray(keys, dtype=np.float64)
    second = np.asarray(tiebreak, dtype=np.float64) if tiebreak is not None else np.zeros_like(first)
    return int(np.lexsort((np.arange(len(first)), second, first))[0])
