"""A closed-loop HTTP load driver on httpx's async client (loopback only, bounded in requests and time).

`concurrency` workers each send a request, wait for the answer, and send the next, until
`max_requests` have been sent or `max_seconds` have passed; requests in flight then finish (a server
keeps working on them anyway, so they are waited for and counted). Throughput = answered OK / wall
time from the first send to the last answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.measure import summarize


@dataclass(frozen=True)
class Call:
    """One prebuilt request: path (with query), body bytes and content type."""

    path: str
    content: bytes
    content_type: str


def json_call(path: str, body: bytes) -> Call:
    return Call(path, body, "application/json")


def multipart_call(path: str, filename: str, data: bytes) -> Call:
    """A multipart/form-data body with `data` in the field `file`, built once by httpx."""
    request = httpx.Request("POST", "http://x" + path, files={"file": (filename, data)})
    return Call(path, request.read(), request.headers["content-type"])


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)  # seconds, OK answers only
    statuses: Counter[int] = field(default_factory=Counter)
    wall: float = 0.0
    sent: int = 0

    def summary(self) -> dict[str, Any]:
        ok = len(self.latencies)
        stats = summarize(self.latencies)
        return {
            "requests": self.sent,
            "ok": ok,
            "errors": {str(k): v for k, v in sorted(self.statuses.items()) if not 200 <= k < 300},
            "wall_s": self.wall,
            "req_per_s": ok / self.wall if self.wall > 0 else 0.0,
            "p50_ms": stats["p50_ms"],
            "p99_ms": stats["p99_ms"],
        }


Send = Callable[[int], Awaitable[int]]  # request number -> status (HTTP status; 200 = OK)


async def drive(send: Send, concurrency: int, max_requests: int, max_seconds: float) -> Phase:
    """`concurrency` workers calling `send(i)` for i = 0, 1, ... (bounded as the module doc says)."""
    phase = Phase()
    started = time.perf_counter()
    deadline = started + max_seconds

    async def worker() -> None:
        while phase.sent < max_requests and time.perf_counter() < deadline:
            number = phase.sent
            phase.sent += 1
            sent = time.perf_counter()
            status = await send(number)
            phase.statuses[status] += 1
            if 200 <= status < 300:
                phase.latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    phase.wall = time.perf_counter() - started
    return phase


async def closed_loop(
    base_url: str, calls: list[Call], concurrency: int, max_requests: int, max_seconds: float
) -> Phase:
    """HTTP: call i = calls[i % len(calls)], over one keep-alive connection per worker."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=httpx.Timeout(600.0)) as client:

        async def send(number: int) -> int:
            call = calls[number % len(calls)]
            try:
                response = await client.post(
                    call.path, content=call.content, headers={"content-type": call.content_type}
                )
                await response.aread()
            except httpx.HTTPError:
                return 599
            return response.status_code

        return await drive(send, concurrency, max_requests, max_seconds)


def run_phase(
    base_url: str, calls: list[Call], concurrency: int, max_requests: int, max_seconds: float
) -> Phase:
    return asyncio.run(closed_loop(base_url, calls, concurrency, max_requests, max_seconds))
