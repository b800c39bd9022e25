"""Retries and error propagation against a real HTTP server (uvicorn) that sheds load on purpose.

The server is a tiny ASGI app, not our gateway: it answers 503/429 with Retry-After a set number
of times, then succeeds, so the client's waiting and counting can be checked exactly.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from clients import AsyncCrossPointClient, CrossPointAPIError, CrossPointClient, CrossPointConnectionError
from clients.calls import Call, RetryPolicy, parse_retry_after
from tests.live_server import free_port, serve_in_thread

EMBED_ANSWER = {"embedding": [0.5] * 2048, "model": "embed", "version": "1", "receipt": {"num_points": 3}}


class Flaky:
    """Answers `failures` times with `status` (+ Retry-After), then EMBED_ANSWER; records arrivals."""

    def __init__(self) -> None:
        self.failures = 0
        self.status = 503
        self.retry_after: str | None = "0"
        self.arrivals: list[float] = []
        self.bodies: list[bytes] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.arrivals.append(time.monotonic())
        self.bodies.append(body)
        if scope["path"] == "/v1/fail":
            await _json(
                send,
                422,
                {"error": {"code": "parse_error", "message": "the PLY header is truncated"}},
                [(b"x-request-id", b"req-42")],
            )
        elif len(self.arrivals) <= self.failures:
            headers = [(b"retry-after", self.retry_after.encode())] if self.retry_after is not None else []
            await _json(
                send, self.status, {"error": {"code": "overloaded", "message": "queue full"}}, headers
            )
        else:
            await _json(send, 200, EMBED_ANSWER, [])


async def _json(send: Any, status: int, body: Any, headers: list[tuple[bytes, bytes]]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *headers],
        }
    )
    await send({"type": "http.response.body", "body": payload})


@pytest.fixture(scope="module")
def flaky_server() -> Iterator[tuple[str, Flaky]]:
    app = Flaky()
    with serve_in_thread(app, lifespan="off") as url:
        yield url, app


@pytest.fixture
def flaky(flaky_server: tuple[str, Flaky]) -> tuple[str, Flaky]:
    url, app = flaky_server
    app.failures, app.status, app.retry_after = 0, 503, "0"
    app.arrivals.clear()
    app.bodies.clear()
    return url, app


def test_retries_503_then_succeeds_resending_the_same_body(flaky: tuple[str, Flaky]) -> None:
    url, app = flaky
    app.failures = 2
    with CrossPointClient(url, retries=RetryPolicy(retries=3, backoff=0.01)) as client:
        result = client.embed(np.eye(3))
    assert len(app.arrivals) == 3
    assert result.embedding.shape == (2048,) and result.embedding.dtype == np.float32
    assert app.bodies[0] == app.bodies[2] and json.loads(app.bodies[0]) == {"points": np.eye(3).tolist()}


def test_honours_retry_after_seconds_on_429(flaky: tuple[str, Flaky]) -> None:
    url, app = flaky
    app.failures, app.status, app.retry_after = 1, 429, "0.4"
    with CrossPointClient(url, retries=RetryPolicy(retries=2, backoff=0.0)) as client:
        client.embed([[0, 0, 0], [1, 0, 0], [0, 1, 0]])
    assert app.arrivals[1] - app.arrivals[0] >= 0.38


def test_retry_after_is_capped_by_max_backoff(flaky: tuple[str, Flaky]) -> None:
    url, app = flaky
    app.failures, app.retry_after = 1, "3600"
    start = time.monotonic()
    with CrossPointClient(url, retries=RetryPolicy(retries=1, max_backoff=0.2)) as client:
        client.embed(np.eye(3))
    assert time.monotonic() - start < 5


def test_gives_up_after_the_retries_with_the_servers_error(flaky: tuple[str, Flaky]) -> None:
    url, app = flaky
    app.failures, app.retry_after = 10, None
    with (
        CrossPointClient(url, retries=RetryPolicy(retries=2, backoff=0.01)) as client,
        pytest.raises(CrossPointAPIError) as info,
    ):
        client.embed(np.eye(3))
    assert len(app.arrivals) == 3
    assert (info.value.status, info.value.code, info.value.message) == (503, "overloaded", "queue full")


def test_no_retry_for_client_errors_and_request_id_is_kept(flaky: tuple[str, Flaky]) -> None:
    url, app = flaky
    with CrossPointClient(url) as client, pytest.raises(CrossPointAPIError) as info:
        client._send(Call("POST", "/v1/fail"))
    assert len(app.arrivals) == 1
    assert info.value.status == 422 and info.value.code == "parse_error"
    assert info.value.request_id == "req-42" and "truncated" in str(info.value)


def test_async_client_retries_too(flaky: tuple[str, Flaky]) -> None:
    url, app = flaky
    app.failures = 2

    async def main() -> Any:
        async with AsyncCrossPointClient(url, retries=RetryPolicy(retries=3, backoff=0.01)) as client:
            return await asyncio.gather(client.embed(np.eye(3)), client.embed(np.eye(3)))

    first, second = asyncio.run(main())
    assert first.model == second.model == "embed"
    assert len(app.arrivals) == 4


def test_refused_connection_is_retried_then_reported() -> None:
    port = free_port()  # nothing listens there
    start = time.monotonic()
    with (
        CrossPointClient(f"http://127.0.0.1:{port}", retries=RetryPolicy(retries=2, backoff=0.05)) as client,
        pytest.raises(CrossPointConnectionError, match="cannot reach"),
    ):
        client.health()
    assert time.monotonic() - start >= 0.05


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= (parse_retry_after(date, now=now) or 0) <= 31
