"""/healthz, /readyz and /metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from server.app import create_app
from tests.server.api.routes.test_inference import assert_error
from tests.server.helpers import gateway_settings


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready" and body["checks"]["models"] == {
        "embed": "1",
        "classify": "1",
        "segment": "1",
    }
    assert body["checks"]["backend"]["ok"] and body["checks"]["parse_workers"] == 2


def test_metrics_count_requests_batches_and_errors(client: TestClient) -> None:
    client.post("/v1/embed", json={"points": np.random.default_rng(0).random((50, 3)).tolist()})
    client.post("/v1/embed", json={"points": []})
    text = client.get("/metrics").text
    assert 'crosspoint_requests_total{endpoint="/v1/embed",method="POST",status="200"}' in text
    assert 'crosspoint_errors_total{code="empty_geometry"}' in text
    assert 'crosspoint_batch_size_count{model="embed"}' in text
    assert "crosspoint_request_seconds_bucket" in text and "crosspoint_queue_depth" in text
    assert 'crosspoint_model_info{model="segment",version="1"} 1.0' in text
    assert "crosspoint_parse_workers 2.0" in text


def test_not_ready_without_models(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    app = create_app(gateway_settings(tmp_path / "empty", parse_workers=1))
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not_ready" and body["error"]["code"] == "not_ready"
        assert set(body["checks"]["missing_models"]) == {"embed", "classify", "segment"}
        assert_error(client.post("/v1/embed", json={"points": [[0, 0, 0]]}), 503, "model_unavailable")
        assert client.get("/v1/models").json() == {"models": []}
