"""Faults a client or the machine brings: a client that goes away mid-batch, paths that try to climb
out of the API, and the docs page fetching nothing from a third party."""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import httpx
import numpy as np
from fastapi.testclient import TestClient

from server.app import create_app
from tests.server.api.routes.test_inference import assert_error
from tests.server.helpers import gateway_settings, live_server


def test_dot_segments_are_not_found_not_redirected(client: TestClient) -> None:
    for path in (
        "/v1/models/%2e%2e%2f",
        "/v1/models/..%2f",
        "/v1/models/%2E%2E",
        "/static/%2e%2e/app.py",
    ):
        response = client.get(path, follow_redirects=False)
        assert_error(response, 404, "not_found")
        assert "location" not in response.headers
    # A plain trailing slash is redirected as before.
    assert client.get("/v1/models/", follow_redirects=False).status_code == 307


def test_swagger_ui_is_served_from_local_files(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert assets and all(url.startswith("/static/vendor/swagger-ui/") for url in assets), assets
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200 and len(response.content) > 500, url
    assert client.get("/openapi.json").status_code == 200


def metric(base: str, name: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))


def test_batch_work_stops_when_the_client_goes_away(repository: Path) -> None:
    # 64 category-less segment items used to run for 78 s after the client had given up.
    settings = gateway_settings(repository, parse_workers=1, max_request_cost=10**9)
    cloud = np.random.default_rng(0).standard_normal((1024, 3)).round(4).tolist()
    body = json.dumps({"items": [{"points": cloud}] * 24}).encode()
    with live_server(create_app(settings)) as base:
        host, port = base.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as sock:
            head = (
                f"POST /v1/segment:batch?num_points=1024&include_vertex_labels=false HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            sock.sendall(head.encode() + body)
            deadline = time.monotonic() + 30
            while metric(base, "crosspoint_batch_size_count") < 2:  # the model is at work on it
                assert time.monotonic() < deadline
                time.sleep(0.1)
        gone = time.monotonic()
        while (
            metric(base, 'crosspoint_requests_total{endpoint="/v1/segment:batch",method="POST",status="499"}')
            < 1
        ):
            assert time.monotonic() - gone < 5, "the batch kept running after its client left"
            time.sleep(0.1)
        calls = metric(base, "crosspoint_batch_size_count")
        time.sleep(1.0)
        assert metric(base, "crosspoint_batch_size_count") <= calls + 1  # nothing more runs for it
        assert metric(base, "crosspoint_queue_depth") == 0
        assert httpx.post(f"{base}/v1/embed", json={"points": cloud[:300]}, timeout=60).status_code == 200
