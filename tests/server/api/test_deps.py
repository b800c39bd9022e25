"""The optional API key: X-API-Key or Authorization: Bearer on /v1; health and metrics stay open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.server.api.routes.test_inference import assert_error
from tests.server.helpers import gateway_settings

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def keyed(repository: Path) -> Iterator[TestClient]:
    app = create_app(gateway_settings(repository, api_key=KEY, parse_workers=1))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_api_key_required_on_v1(keyed: TestClient) -> None:
    points = {"points": np.random.default_rng(0).random((50, 3)).tolist()}
    response = keyed.post("/v1/embed", json=points)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_error(keyed.get("/v1/models", headers={"X-API-Key": "wrong"}), 401, "unauthorized")
    assert_error(keyed.get("/v1/models", headers={"Authorization": "Basic " + KEY}), 401, "unauthorized")
    assert keyed.get("/v1/models", headers={"X-API-Key": KEY}).status_code == 200
    assert keyed.get("/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert keyed.post("/v1/embed?num_points=16", json=points, headers={"X-API-Key": KEY}).status_code == 200


def test_health_and_metrics_need_no_key(keyed: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert keyed.get(path).status_code == 200
