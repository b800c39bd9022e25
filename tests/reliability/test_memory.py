"""Memory and CPU per request: no request inside the documented limits grows the gateway for good,
and model work over the per-request budget is refused before any of it is done."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient

from server.app import create_app
from server.backends.onnxruntime import call_row_limit
from server.core.config import Settings
from tests.server.api.routes.test_inference import assert_error
from tests.server.helpers import gateway_settings

Shapes = tuple[list[np.ndarray], list[str]]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_a_large_segment_call_gives_its_memory_back(repository: Path) -> None:
    # With ONNX Runtime's arena (its default) the high-water mark of this call stayed in the process for good;
    # without it, glibc's dynamic mmap threshold kept 49-169 MB of the call's freed blocks in its heaps (more
    # on a loaded machine). With the threshold pinned (server/core/memory.py) 4-5 MB stay, at load 7-12.
    cloud = np.random.default_rng(0).standard_normal((4096, 3)).tolist()
    with TestClient(create_app(gateway_settings(repository, parse_workers=1))) as client:
        url = "/v1/segment?num_points=4096&category=Chair&include_vertex_labels=false"
        assert client.post(url, json={"points": cloud[:300]}).status_code == 200  # warm the route
        before = rss_mb()
        for _ in range(2):
            response = client.post(url, json={"points": cloud})
            assert response.status_code == 200, response.text
        grown = rss_mb() - before
    assert grown < 40, f"the gateway kept {grown:.0f} MB after two 4096-point segment calls"


def test_rows_per_call_shrink_with_points_squared() -> None:
    settings = Settings(max_batch_size=16, max_batch_point_pairs=2 * 4096 * 4096)
    assert call_row_limit(8, 1024, settings) == 8  # the model's own limit
    assert call_row_limit(32, 1024, settings) == 16  # the batcher's
    assert call_row_limit(8, 2048, settings) == 8
    assert call_row_limit(8, 4096, settings) == 2  # kNN memory: 2 x 4096^2 pairs
    assert call_row_limit(0, 8192, settings) == 1  # a lone row always runs


def test_segment_batch_without_category_is_priced_as_16_rows(client: TestClient, shapes: Shapes) -> None:
    # 64 items of 500 points without a category is 64 x 16 x 500 rows x points: 78 s of CPU before this.
    items = [{"points": shapes[0][0][:500].tolist()}] * 17
    body = assert_error(
        client.post("/v1/segment:batch?num_points=500", json={"items": items}), 413, "request_too_costly"
    )["error"]
    assert body["details"] == {
        "cost": 17 * 16 * 500,
        "limit": 131_072,
        "rows": 16,
        "num_points": 500,
        "items": 17,
    }
    assert "category" in body["message"]
    # The same items with a category cost one row each and run.
    ok = client.post("/v1/segment:batch?num_points=64&category=Chair", json={"items": items[:2]})
    assert ok.status_code == 200, ok.text


def test_single_request_cost_refused_before_the_upload_is_read(repository: Path, shapes: Shapes) -> None:
    settings = gateway_settings(repository, parse_workers=1, max_request_cost=16 * 1024 - 1)
    with TestClient(create_app(settings)) as client:
        points = {"points": shapes[0][0].tolist()}
        error = assert_error(
            client.post("/v1/segment?num_points=1024", json=points), 413, "request_too_costly"
        )
        assert error["error"]["details"]["rows"] == 16
        # Not parsed: a body that is not even JSON gets the same answer.
        bad = client.post(
            "/v1/segment?num_points=1024", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert_error(bad, 413, "request_too_costly")
        assert client.post("/v1/segment?num_points=1024&category=Chair", json=points).status_code == 200
        assert client.post("/v1/embed?num_points=1024", json=points).status_code == 200
