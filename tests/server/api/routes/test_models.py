"""GET /v1/models and /v1/models/{name}."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.server.api.routes.test_inference import assert_error
from tests.server.helpers import NUM_POINTS


def test_models_lists_every_model_with_its_settings(client: TestClient) -> None:
    models = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert set(models) == {"embed", "classify", "segment"}
    for card in models.values():
        assert card["version"] == "1" and card["versions"] == ["1"] and card["backend"] == "onnxruntime"
        assert card["inputs"] == {
            "num_points": NUM_POINTS,
            "min_points": 10,
            "max_points": 4096,
            "k": 10,
            "up_axis": "y",
            "normalization": "unit_sphere",
        }
        assert len(card["checkpoint_sha256"]) == 64
    assert models["embed"]["outputs"] == ["embedding", "projection"]
    assert len(models["classify"]["class_names"]) == 40 and models["classify"]["class_names"][0] == "airplane"
    segment = models["segment"]
    assert len(segment["category_names"]) == 16 and len(segment["part_names"]) == 50
    assert segment["category_parts"]["Chair"] == [12, 13, 14, 15]


def test_one_model(client: TestClient) -> None:
    assert client.get("/v1/models/classify").json()["name"] == "classify"
    assert_error(client.get("/v1/models/nope"), 404, "not_found")
