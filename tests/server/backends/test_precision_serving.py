"""The embedded backend serves each shipped model at the precision its precision.json passed, says so
in /v1/models, and CROSSPOINT_PRECISION=fp32 brings back ONNX Runtime fp32 (the reference)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from export.precision import PRECISION_FILE, cpu_precisions, serving_choice
from export.repository import latest_version, version_dir
from server.app import create_app
from tests.server.helpers import REPO_ROOT, gateway_settings, modelnet_rows

COMMITTED = REPO_ROOT / "model_repository"
MODELS = ["embed", "segment"]  # ONNX Runtime int8 and OpenVINO bf16 on the shipped versions


def _cards_and_embedding(precision: str, points: list[list[float]]) -> tuple[dict[str, dict], np.ndarray]:
    settings = gateway_settings(COMMITTED, models=MODELS, precision=precision)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        cards = {card["name"]: card for card in client.get("/v1/models").json()["models"]}
        answer = client.post("/v1/embed", json={"points": points})
        assert answer.status_code == 200, answer.text
        return cards, np.asarray(answer.json()["embedding"])


def test_models_say_their_precision_and_answers_stay_within_budget() -> None:
    for model in MODELS:
        if latest_version(COMMITTED, model) is None:
            pytest.skip(f"no committed {model} model")
    points, _ = modelnet_rows(1)
    fast, fast_embedding = _cards_and_embedding("auto", points[0].tolist())
    reference, reference_embedding = _cards_and_embedding("fp32", points[0].tolist())
    for model in MODELS:
        assert (reference[model]["runtime"], reference[model]["precision"]) == ("onnxruntime", "fp32")
        chosen = json.loads((version_dir(COMMITTED, model) / PRECISION_FILE).read_text())["chosen"]
        expected = serving_choice(version_dir(COMMITTED, model))  # the verdict, less what this host lacks
        assert (fast[model]["runtime"], fast[model]["precision"]) == (expected.runtime, expected.precision)
        if chosen["runtime"] == "onnxruntime" or chosen["precision"] in cpu_precisions():
            assert (expected.runtime, expected.precision) == (chosen["runtime"], chosen["precision"])
    cosine = float(
        fast_embedding
        @ reference_embedding
        / np.linalg.norm(fast_embedding)
        / np.linalg.norm(reference_embedding)
    )
    assert cosine >= 0.999
