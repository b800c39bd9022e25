"""Python SDK for the CrossPoint gateway (HTTP, httpx): a sync and an async client.

    from clients import CrossPointClient

    with CrossPointClient("http://127.0.0.1:8000") as client:
        result = client.embed("chair.obj")            # a path, an [N,3] array, or a trimesh mesh
        print(result.embedding.shape, result.receipt)
        top = client.classify(points, top_k=3).predictions

Errors from the gateway raise `CrossPointAPIError` (status, code, message, request_id); 503/429
answers and refused connections are retried per `RetryPolicy`, honouring Retry-After. Batch
methods return one entry per input, a `CrossPointAPIError` in place of each input that failed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import httpx

from clients.calls import Call, RetryPolicy, Source, build_batch_call, build_call, options_to_params
from clients.collections import AsyncCollectionsMixin, CollectionsMixin
from clients.errors import CrossPointAPIError, CrossPointConnectionError
from clients.results import (
    PARSERS,
    ClassifyResult,
    EmbedResult,
    ModelInfo,
    SegmentResult,
    parse_classify,
    parse_embed,
    parse_models,
    parse_segment,
)

DEFAULT_URL = "http://127.0.0.1:8000"
API_KEY_HEADER = "X-API-Key"
REQUEST_ID_HEADER = "X-Request-ID"


def _result(response: httpx.Response) -> Any:
    """The JSON body of a success, or the gateway's error raised as CrossPointAPIError."""
    if response.status_code == 204:  # a DELETE: success without a body
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success and body is not None:
        return body
    raise CrossPointAPIError.from_response(
        response.status_code, body, response.headers.get(REQUEST_ID_HEADER), response.text
    )


def _batch_results(task: str, body: Any) -> list[Any]:
    """`{"items": [{"index", "status", "result" | "error"}, ...]}` -> results in input order."""
    results: list[Any] = []
    for item in sorted(body.get("items", []), key=lambda item: item.get("index", 0)):
        if item.get("result") is not None:
            results.append(PARSERS[task](item["result"]))
        else:
            results.append(CrossPointAPIError.from_response(int(item.get("status", 500)), item, None))
    return results


def _embed(
    source: Source,
    up_axis: str | None,
    num_points: int | None,
    seed: int | None,
    projection: bool,
    fmt: str | None,
) -> Call:
    params = options_to_params(
        up_axis=up_axis, num_points=num_points, seed=seed, include_projection="true" if projection else None
    )
    return build_call("embed", source, params, fmt)


def _classify(
    source: Source,
    up_axis: str | None,
    num_points: int | None,
    seed: int | None,
    top_k: int | None,
    fmt: str | None,
) -> Call:
    params = options_to_params(up_axis=up_axis, num_points=num_points, seed=seed, top_k=top_k)
    return build_call("classify", source, params, fmt)


def _segment(
    source: Source,
    up_axis: str | None,
    num_points: int | None,
    seed: int | None,
    category: str | None,
    vertex_labels: bool,
    fmt: str | None,
) -> Call:
    params = options_to_params(
        up_axis=up_axis,
        num_points=num_points,
        seed=seed,
        category=category,
        include_vertex_labels=None if vertex_labels else "false",
    )
    return build_call("segment", source, params, fmt)


BATCH_OPTIONS = {
    "embed": {"up_axis", "num_points", "seed", "format", "projection"},
    "classify": {"up_axis", "num_points", "seed", "format", "top_k"},
    "segment": {"up_axis", "num_points", "seed", "format", "category", "vertex_labels"},
}


def _batch(task: str, sources: Sequence[Source], **options: Any) -> Call:
    unknown = set(options) - BATCH_OPTIONS[task]
    if unknown:
        # The gateway ignores unknown query parameters; a typo must not pass silently.
        raise TypeError(
            f"{task}_batch() got unknown options {sorted(unknown)}; known: {sorted(BATCH_OPTIONS[task])}"
        )
    flags = {"projection": "include_projection", "vertex_labels": "include_vertex_labels"}
    params = {flags.get(k, k): (str(v).lower() if isinstance(v, bool) else v) for k, v in options.items()}
    return build_batch_call(task, list(sources), options_to_params(**params))


class _Base:
    def __init__(self, base_url: str, api_key: str | None, retries: int | RetryPolicy) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retries if isinstance(retries, RetryPolicy) else RetryPolicy(retries=retries)
        self.headers = {API_KEY_HEADER: api_key} if api_key else {}

    def _next_delay(self, attempt: int, outcome: httpx.Response | httpx.ConnectError) -> float | None:
        """Seconds to wait before trying again, or None to stop here."""
        if attempt >= self.retry.retries:
            return None
        if isinstance(outcome, httpx.ConnectError):
            # Nothing reached the server, so trying again cannot run the request twice.
            return self.retry.delay(attempt, None)
        if outcome.status_code in self.retry.statuses:
            return self.retry.delay(attempt, outcome.headers.get("Retry-After"))
        return None

    def _give_up(self, outcome: httpx.Response | httpx.ConnectError) -> Any:
        if isinstance(outcome, httpx.ConnectError):
            raise CrossPointConnectionError(f"cannot reach {self.base_url}: {outcome}") from outcome
        return _result(outcome)


class CrossPointClient(_Base, CollectionsMixin):
    """Blocking client; use as a context manager (or call `close()`) to release its connections."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int | RetryPolicy = 3,
    ) -> None:
        super().__init__(base_url, api_key, retries)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout)

    def __enter__(self) -> CrossPointClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.ConnectError
            try:
                outcome = self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    files=call.files,
                    data=call.data,
                )
            except httpx.ConnectError as exc:
                outcome = exc
            except httpx.TimeoutException as exc:
                raise CrossPointConnectionError(f"{call.path} timed out: {exc}") from exc
            delay = self._next_delay(attempt, outcome)
            if delay is None:
                return self._give_up(outcome)
            time.sleep(delay)
            attempt += 1

    def embed(
        self,
        source: Source,
        *,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        projection: bool = False,
        format: str | None = None,
    ) -> EmbedResult:
        """The 2048-d embedding of a path, [N,3] points, a trimesh object or (filename, bytes)."""
        return parse_embed(self._send(_embed(source, up_axis, num_points, seed, projection, format)))

    def classify(
        self,
        source: Source,
        *,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        top_k: int | None = None,
        format: str | None = None,
    ) -> ClassifyResult:
        """Top-k classes, most probable first."""
        return parse_classify(self._send(_classify(source, up_axis, num_points, seed, top_k, format)))

    def segment(
        self,
        source: Source,
        *,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        category: str | None = None,
        vertex_labels: bool = True,
        format: str | None = None,
    ) -> SegmentResult:
        """Part labels per sampled point and (by default) per original vertex."""
        return parse_segment(
            self._send(_segment(source, up_axis, num_points, seed, category, vertex_labels, format))
        )

    def embed_batch(
        self, sources: Sequence[Source], **options: Any
    ) -> list[EmbedResult | CrossPointAPIError]:
        """One request for many shapes; options as for `embed`."""
        return _batch_results("embed", self._send(_batch("embed", sources, **options)))

    def classify_batch(
        self, sources: Sequence[Source], **options: Any
    ) -> list[ClassifyResult | CrossPointAPIError]:
        return _batch_results("classify", self._send(_batch("classify", sources, **options)))

    def segment_batch(
        self, sources: Sequence[Source], **options: Any
    ) -> list[SegmentResult | CrossPointAPIError]:
        return _batch_results("segment", self._send(_batch("segment", sources, **options)))

    def models(self) -> list[ModelInfo]:
        return parse_models(self._send(Call("GET", "/v1/models")))

    def health(self) -> dict[str, Any]:
        return dict(self._send(Call("GET", "/healthz")))

    def ready(self) -> dict[str, Any]:
        """The readiness report, ready or not (a not-ready gateway answers 503 with the same shape)."""
        try:
            return dict(self._send(Call("GET", "/readyz")))
        except CrossPointAPIError as exc:
            if exc.status == 503 and isinstance(exc.body, dict):
                return exc.body
            raise


class AsyncCrossPointClient(_Base, AsyncCollectionsMixin):
    """The same API as `CrossPointClient`, awaitable; one instance can serve many tasks at once."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        retries: int | RetryPolicy = 3,
    ) -> None:
        super().__init__(base_url, api_key, retries)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=timeout)

    async def __aenter__(self) -> AsyncCrossPointClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call) -> Any:
        attempt = 0
        while True:
            outcome: httpx.Response | httpx.ConnectError
            try:
                outcome = await self._http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    files=call.files,
                    data=call.data,
                )
            except httpx.ConnectError as exc:
                outcome = exc
            except httpx.TimeoutException as exc:
                raise CrossPointConnectionError(f"{call.path} timed out: {exc}") from exc
            delay = self._next_delay(attempt, outcome)
            if delay is None:
                return self._give_up(outcome)
            await asyncio.sleep(delay)
            attempt += 1

    async def embed(
        self,
        source: Source,
        *,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        projection: bool = False,
        format: str | None = None,
    ) -> EmbedResult:
        return parse_embed(await self._send(_embed(source, up_axis, num_points, seed, projection, format)))

    async def classify(
        self,
        source: Source,
        *,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        top_k: int | None = None,
        format: str | None = None,
    ) -> ClassifyResult:
        return parse_classify(await self._send(_classify(source, up_axis, num_points, seed, top_k, format)))

    async def segment(
        self,
        source: Source,
        *,
        up_axis: str | None = None,
        num_points: int | None = None,
        seed: int | None = None,
        category: str | None = None,
        vertex_labels: bool = True,
        format: str | None = None,
    ) -> SegmentResult:
        call = _segment(source, up_axis, num_points, seed, category, vertex_labels, format)
        return parse_segment(await self._send(call))

    async def embed_batch(
        self, sources: Sequence[Source], **options: Any
    ) -> list[EmbedResult | CrossPointAPIError]:
        return _batch_results("embed", await self._send(_batch("embed", sources, **options)))

    async def classify_batch(
        self, sources: Sequence[Source], **options: Any
    ) -> list[ClassifyResult | CrossPointAPIError]:
        return _batch_results("classify", await self._send(_batch("classify", sources, **options)))

    async def segment_batch(
        self, sources: Sequence[Source], **options: Any
    ) -> list[SegmentResult | CrossPointAPIError]:
        return _batch_results("segment", await self._send(_batch("segment", sources, **options)))

    async def models(self) -> list[ModelInfo]:
        return parse_models(await self._send(Call("GET", "/v1/models")))

    async def health(self) -> dict[str, Any]:
        return dict(await self._send(Call("GET", "/healthz")))

    async def ready(self) -> dict[str, Any]:
        try:
            return dict(await self._send(Call("GET", "/readyz")))
        except CrossPointAPIError as exc:
            if exc.status == 503 and isinstance(exc.body, dict):
                return exc.body
            raise
