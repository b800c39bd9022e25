"""Typed results of the gateway's answers (the contract of issue 5, `docs/interfaces.md`).

Each result keeps the full JSON answer in `raw`, so fields the gateway adds later are never lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EmbedResult:
    embedding: np.ndarray  # float32 [2048]
    projection: np.ndarray | None  # float32 [256] when the gateway sends it
    model: str
    version: str
    receipt: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)
    ood_score: float | None = None  # higher = less like the training data; None: uncalibrated version
    in_distribution: bool | None = None


@dataclass(frozen=True)
class Prediction:
    label: str
    probability: float
    index: int | None = None


@dataclass(frozen=True)
class ClassifyResult:
    predictions: list[Prediction]
    model: str
    version: str
    receipt: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)
    ood_score: float | None = None
    in_distribution: bool | None = None

    @property
    def label(self) -> str:
        """The top-1 label."""
        return self.predictions[0].label


@dataclass(frozen=True)
class SegmentResult:
    point_labels: np.ndarray  # int64 [N]: index into part_names, per sampled point
    points: np.ndarray  # float32 [N, 3]: the sampled points, model frame
    vertex_labels: np.ndarray | None  # int64 [V]: per original vertex (-1: non-finite vertex)
    part_names: list[str]
    category: str
    category_source: str  # "given" or "predicted"
    model: str
    version: str
    receipt: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str  # the version being served
    versions: list[str]  # every complete version in the repository
    inputs: dict[str, Any]  # num_points, min_points, max_points, k, up_axis, ...
    class_names: list[str] | None
    raw: dict[str, Any] = field(repr=False)


def _common(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "model": str(body.get("model", "")),
        "version": str(body.get("version", "")),
        "receipt": dict(body.get("receipt") or {}),
        "raw": body,
    }


def _trust(body: dict[str, Any]) -> dict[str, Any]:
    score, verdict = body.get("ood_score"), body.get("in_distribution")
    return {
        "ood_score": None if score is None else float(score),
        "in_distribution": None if verdict is None else bool(verdict),
    }


def parse_embed(body: dict[str, Any]) -> EmbedResult:
    projection = body.get("projection")
    return EmbedResult(
        embedding=np.asarray(body["embedding"], dtype=np.float32),
        projection=None if projection is None else np.asarray(projection, dtype=np.float32),
        **_common(body),
        **_trust(body),
    )


def parse_classify(body: dict[str, Any]) -> ClassifyResult:
    predictions = [
        Prediction(str(p["label"]), float(p["probability"]), p.get("index"))
        for p in body.get("predictions", [])
    ]
    return ClassifyResult(predictions=predictions, **_common(body), **_trust(body))


def parse_segment(body: dict[str, Any]) -> SegmentResult:
    vertex_labels = body.get("vertex_labels")
    return SegmentResult(
        point_labels=np.asarray(body["point_labels"], dtype=np.int64),
        points=np.asarray(body.get("points", []), dtype=np.float32).reshape(-1, 3),
        vertex_labels=None if vertex_labels is None else np.asarray(vertex_labels, dtype=np.int64),
        part_names=[str(n) for n in body.get("part_names", [])],
        category=str(body.get("category", "")),
        category_source=str(body.get("category_source", "")),
        **_common(body),
    )


PARSERS = {"embed": parse_embed, "classify": parse_classify, "segment": parse_segment}


def parse_models(body: Any) -> list[ModelInfo]:
    """`GET /v1/models`: `{"models": [model card, ...]}`."""
    return [
        ModelInfo(
            name=str(card.get("name", "")),
            version=str(card.get("version", "")),
            versions=[str(v) for v in card.get("versions", [])],
            inputs=dict(card.get("inputs") or {}),
            class_names=card.get("class_names"),
            raw=card,
        )
        for card in body.get("models", [])
    ]
