"""A Triton outage against the real tritonserver: while it is down the gateway answers 503 with
Retry-After within a second (no address in the body), and serves again within 2 s of Triton being ready."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.server.helpers import gateway_settings

pytestmark = pytest.mark.triton


def test_triton_killed_then_restarted(repository: Path, tmp_path: Path, shapes: tuple) -> None:
    from crosspoint.triton.server import TritonServer
    from crosspoint.triton.testing import require_tritonserver

    require_tritonserver()
    repo = tmp_path / "repo"
    shutil.copytree(repository / "embed", repo / "embed")
    first = TritonServer.start(repo, timeout=180)
    ports = [
        int(url.rsplit(":", 1)[1].split("/")[0])
        for url in (first.urls.http, first.urls.grpc, first.urls.metrics)
    ]
    settings = gateway_settings(
        repo, backend="triton", triton_url=first.urls.grpc, parse_workers=1, models=["embed"]
    )
    body = {"points": np.asarray(shapes[0][0]).tolist()}
    second = None
    try:
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            assert client.post("/v1/embed", json=body).status_code == 200
            os.killpg(first.process.pid, signal.SIGKILL)
            first.process.wait(30)
            first.stop(timeout=1)
            for _ in range(3):
                started = time.monotonic()
                response = client.post("/v1/embed", json=body)
                elapsed = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "backend_unavailable"
                assert response.headers["Retry-After"] == "1" and elapsed < 1.0, elapsed
                assert "127.0.0.1" not in response.text and str(ports[1]) not in response.text
            ready = client.get("/readyz")
            assert ready.status_code == 503 and "127.0.0.1" not in ready.text

            second = TritonServer.start(
                repo, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2], timeout=180
            )
            ready_at = time.monotonic()  # start() returns once Triton reports its models ready
            statuses = []
            while time.monotonic() - ready_at < 2.0:
                statuses.append(client.post("/v1/embed", json=body).status_code)
                if statuses[-1] == 200:
                    break
                time.sleep(0.05)
            assert statuses[-1] == 200, f"still {statuses[-1]} 2 s after Triton was ready"
            print(
                f"triton outage: 503 in {elapsed:.3f} s; 200 again {time.monotonic() - ready_at:.2f} s after ready"
            )
            assert [client.post("/v1/embed", json=body).status_code for _ in range(3)] == [200] * 3
            assert client.get("/readyz").status_code == 200
    finally:
        if second is not None:
            second.stop()
        first.stop(timeout=1)
