"""Request ids, structured access logs, the streaming body limit and the catch-all 500."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.core.logging import JsonFormatter
from tests.server.api.routes.test_inference import assert_error
from tests.server.helpers import gateway_settings, live_server


def test_request_id_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz").headers["x-request-id"]
    assert len(generated) == 32
    assert (
        client.get("/healthz", headers={"X-Request-ID": "bad id\tx"}).headers["x-request-id"] != "bad id\tx"
    )


def test_access_log_is_structured(client: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="server.access"):
        client.post("/v1/embed", json={"points": []}, headers={"X-Request-ID": "log-me"})
    record = next(
        r
        for r in caplog.records
        if r.name == "server.access" and getattr(r, "fields", {}).get("request_id") == "log-me"
    )
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "request" and line["status"] == 422 and line["error_code"] == "empty_geometry"
    assert line["path"] == "/v1/embed" and line["request_id"] == "log-me" and line["duration_ms"] >= 0


def test_declared_oversized_body_gets_413_before_reading(repository: Path) -> None:
    app = create_app(gateway_settings(repository, max_body_bytes=1000, parse_workers=1))
    with TestClient(app) as client:
        big = {"points": [[0.123456, 0.5, 0.25]] * 200}
        assert_error(client.post("/v1/embed", json=big), 413, "body_too_large")
        files = {"file": ("x.ply", b"x" * 5000)}
        assert_error(client.post("/v1/embed:batch", files=files), 413, "body_too_large")
        assert client.get("/metrics").text.count('crosspoint_errors_total{code="body_too_large"} 2.0') == 1


def test_streamed_body_is_cut_off_at_the_limit(repository: Path) -> None:
    """A chunked upload with no Content-Length gets 413 as soon as it passes the limit, mid-stream."""
    app = create_app(gateway_settings(repository, max_body_bytes=64 * 1024, parse_workers=1))
    with live_server(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-npy\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"\0" * 16384
            sent = 0
            sock.settimeout(0.05)
            answer = b""
            while sent < 8 * 1024 * 1024:  # far more than the limit; the server must answer long before
                try:
                    sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
                try:
                    answer += sock.recv(65536)
                except TimeoutError:
                    continue
                if b"\r\n\r\n" in answer:
                    break
            sock.settimeout(5)
            deadline = time.monotonic() + 5
            while b"}" not in answer and time.monotonic() < deadline:
                try:
                    data = sock.recv(65536)
                except (TimeoutError, ConnectionResetError):
                    break
                if not data:
                    break
                answer += data
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert b'"body_too_large"' in answer
        assert sent < 1024 * 1024  # refused after ~64 KiB, not after the whole stream
        # the server is still fine
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_unexpected_error_is_a_json_500_without_traceback(
    repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(gateway_settings(repository, parse_workers=1))

    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        response = client.get("/boom", headers={"X-Request-ID": "rid-500"})
    body = assert_error(response, 500, "internal_error")
    assert "secret" not in response.text and "rid-500" in body["error"]["message"]
    assert response.headers["x-request-id"] == "rid-500"
    logged = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert logged and "secret internals" in str(logged[0].exc_info[1])  # type: ignore[index]
