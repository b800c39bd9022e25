"""ood_score / in_distribution, calibrated probabilities and up_axis=auto through the gateway (ONNX
Runtime backend), on the tiny test models calibrated by `crosspoint calibrate`'s code."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from export.calibrate import run_graph
from export.repository import ONNX_FILE
from export.trust import AUTO_UP_AXES, auto_candidates, load_trust
from server.app import create_app
from tests.server.helpers import MESHES, gateway_settings, require


@pytest.fixture(scope="module")
def trusted(calibrated_repository: Path) -> Iterator[TestClient]:
    with TestClient(create_app(gateway_settings(calibrated_repository)), raise_server_exceptions=False) as c:
        yield c


def _graph_answer(repository: Path, model: str, points: list[list[float]]) -> dict[str, np.ndarray]:
    graph = repository / model / "1" / ONNX_FILE
    return run_graph(graph, np.asarray(points, dtype=np.float32)[None])


def test_answers_carry_the_score_of_their_own_embedding(
    trusted: TestClient, calibrated_repository: Path, shapes: tuple
) -> None:
    body = {"points": shapes[0][0].tolist()}
    seg = trusted.post("/v1/segment?category=Chair", json=body).json()  # the sampled points, same seed
    for model in ("embed", "classify"):
        answer = trusted.post(f"/v1/{model}?top_k=40", json=body).json()
        trust = load_trust(calibrated_repository / model / "1")
        assert trust is not None
        out = _graph_answer(calibrated_repository, model, seg["points"])
        expected = float(trust.ood_scores(out["embedding"])[0])
        assert isinstance(answer["ood_score"], float) and isinstance(answer["in_distribution"], bool)
        assert answer["ood_score"] == pytest.approx(expected, rel=1e-4)
        assert answer["in_distribution"] == (answer["ood_score"] <= trust.threshold)
        if model == "classify":
            # Probabilities are softmax(logits / T) with the version's fitted temperature.
            probabilities = trust.probabilities(out["logits"])[0]
            got = {p["index"]: p["probability"] for p in answer["predictions"]}
            assert trust.temperature is not None and trust.temperature != 1.0
            assert max(abs(got[i] - probabilities[i]) for i in range(40)) < 1e-5


def test_identical_uploads_get_identical_scores(trusted: TestClient) -> None:
    data = require(MESHES / "teapot.stl").read_bytes()
    answers = [trusted.post("/v1/classify", files={"file": ("t.stl", data)}).json() for _ in range(2)]
    batch = trusted.post(
        "/v1/classify:batch", files=[("files", ("a.stl", data)), ("files", ("b.stl", data))]
    ).json()
    scores = {a["ood_score"] for a in answers} | {i["result"]["ood_score"] for i in batch["items"]}
    assert len(scores) == 1
    auto = [trusted.post("/v1/embed?up_axis=auto", files={"file": ("t.stl", data)}).json() for _ in range(2)]
    assert auto[0]["receipt"] == auto[1]["receipt"] and auto[0]["ood_score"] == auto[1]["ood_score"]


def test_up_axis_auto_keeps_the_most_upright_axis(
    trusted: TestClient, calibrated_repository: Path, shapes: tuple
) -> None:
    """auto keeps the candidate the version's up-axis selector finds most upright; the receipt's scores
    are the selector's shares over the 6 and ood_score is the kept candidate's own."""
    body = {"points": shapes[0][0].tolist()}
    seg = trusted.post("/v1/segment?category=Chair", json=body).json()  # the sampled points, same seed
    candidates = auto_candidates(np.asarray(seg["points"], dtype=np.float32)[None])
    for model in ("embed", "classify"):
        auto = trusted.post(f"/v1/{model}?up_axis=auto", json=body).json()
        trust = load_trust(calibrated_repository / model / "1")
        assert trust is not None and trust.up is not None
        out = run_graph(calibrated_repository / model / "1" / ONNX_FILE, candidates)
        embedding = out["embedding"]
        # classify ranks by uprightness + its fitted weight x the calibrated top-1 probability.
        confidence = trust.probabilities(out["logits"]).max(-1) if model == "classify" else None
        logits = trust.up.keys(embedding, confidence)
        shares = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        scores = auto["receipt"]["up_axis_scores"]
        assert list(scores) == list(AUTO_UP_AXES)
        assert [scores[a] for a in AUTO_UP_AXES] == pytest.approx(shares, rel=1e-4, abs=1e-7)
        chosen = auto["receipt"]["up_axis"]
        assert chosen == AUTO_UP_AXES[int(np.argmax(logits))]
        kept = trust.ood_scores(embedding)[AUTO_UP_AXES.index(chosen)]
        assert auto["ood_score"] == pytest.approx(float(kept), rel=1e-4)
        assert auto["in_distribution"] == (auto["ood_score"] <= trust.threshold)
    batch = trusted.post("/v1/classify:batch?up_axis=auto", json={"items": [body]}).json()
    assert batch["items"][0]["result"]["receipt"]["up_axis"] == chosen
    seg_auto = trusted.post("/v1/segment?up_axis=auto&category=Chair", json=body).json()
    embed_auto = trusted.post("/v1/embed?up_axis=auto", json=body).json()
    assert seg_auto["receipt"]["up_axis_scores"] == embed_auto["receipt"]["up_axis_scores"]


def test_uncalibrated_versions_say_so(client: TestClient, shapes: tuple) -> None:
    body = {"points": shapes[0][0].tolist()}
    answer = client.post("/v1/classify", json=body).json()
    assert answer["ood_score"] is None and answer["in_distribution"] is None
    refused = client.post("/v1/embed?up_axis=auto", json=body)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "up_axis_auto_unavailable"
    # classify can still choose by confidence.
    assert client.post("/v1/classify?up_axis=auto", json=body).json()["receipt"]["up_axis_scores"]
    assert client.post("/v1/classify?up_axis=sideways", json=body).status_code == 422


def test_model_cards_show_the_calibration(trusted: TestClient, client: TestClient) -> None:
    cards = {m["name"]: m for m in trusted.get("/v1/models").json()["models"]}
    assert cards["classify"]["calibration"]["temperature"] > 0
    assert cards["embed"]["calibration"]["temperature"] is None
    assert cards["embed"]["calibration"]["ood_method"] == "mahalanobis_ppca"
    assert cards["segment"]["calibration"] is None
    assert all(m["calibration"] is None for m in client.get("/v1/models").json()["models"])
