"""The embedded backend under concurrency: micro-batching, batch-independent answers, backpressure."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from server.app import create_app
from server.backends.onnxruntime import providers
from tests.server.helpers import gateway_settings

Shapes = tuple[list[np.ndarray], list[str]]


async def with_app(settings: Any, scenario: Any) -> Any:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=120) as client:
            return await scenario(client)


def histogram_count(metrics: str, name: str, model: str) -> tuple[float, float]:
    count = re.search(rf'{name}_count{{model="{model}"}} ([0-9.e+]+)', metrics)
    total = re.search(rf'{name}_sum{{model="{model}"}} ([0-9.e+]+)', metrics)
    assert count and total, metrics
    return float(count.group(1)), float(total.group(1))


def test_cpu_provider_here() -> None:
    assert providers(None)[-1] == "CPUExecutionProvider"


def test_concurrent_requests_are_batched_and_answers_do_not_depend_on_it(
    repository: Path, shapes: Shapes
) -> None:
    rows = [r.tolist() for r in shapes[0]]
    settings = gateway_settings(repository, max_batch_delay_ms=200, max_batch_size=8)

    async def scenario(client: httpx.AsyncClient) -> tuple[list[Any], list[Any], str]:
        alone = [(await client.post("/v1/embed", json={"points": r})).json()["embedding"] for r in rows]
        together = await asyncio.gather(*(client.post("/v1/embed", json={"points": r}) for r in rows * 2))
        metrics = (await client.get("/metrics")).text
        return alone, [t.json()["embedding"] for t in together], metrics

    alone, together, metrics = asyncio.run(with_app(settings, scenario))
    count, rows_run = histogram_count(metrics, "crosspoint_batch_size", "embed")
    assert rows_run == 12 and count < 12  # 12 requests, fewer ONNX Runtime calls
    assert together == alone + alone  # bit-identical whatever a request was batched with


def test_full_queue_answers_503_with_retry_after(repository: Path, shapes: Shapes) -> None:
    points = shapes[0][0].tolist()
    settings = gateway_settings(
        repository, max_queue=2, max_batch_size=1, max_batch_delay_ms=0, retry_after_s=3
    )

    async def scenario(client: httpx.AsyncClient) -> list[httpx.Response]:
        return list(
            await asyncio.gather(*(client.post("/v1/segment", json={"points": points}) for _ in range(8)))
        )

    responses = asyncio.run(with_app(settings, scenario))
    refused = [r for r in responses if r.status_code == 503]
    assert refused and any(r.status_code == 200 for r in responses)
    for r in refused:
        assert r.json()["error"]["code"] == "overloaded" and r.headers["retry-after"] == "3"
