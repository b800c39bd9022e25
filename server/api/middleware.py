"""Pure ASGI middleware: request ids, access logs and metrics, the body-size limit, the last-resort 500.

Pure ASGI (not BaseHTTPMiddleware) so request bodies stream through untouched: the size limit counts
bytes as they arrive and refuses a body as soon as it is too large, before it is buffered whole.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.errors import error_response
from server.core.logging import request_id
from server.errors import ApiError, ServingError
from server.metrics import Metrics

logger = logging.getLogger("server.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "body_too_large", f"the request body is larger than the limit of {limit} bytes")


class BodyLimitMiddleware:
    """413 for a declared Content-Length over the limit (before reading), or as soon as a stream passes it."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                too_big = False
            if too_big:
                exc = BodyTooLarge(self.limit)
                scope.setdefault("state", {})["error_code"] = exc.code
                response = error_response(exc.status, exc.code, exc.message, headers={"Connection": "close"})
                await response(scope, receive, send)
                return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, limited_receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestContextMiddleware:
    """Request id (X-Request-ID echoed or made), one access-log line, metrics, and the catch-all 500."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        rid = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        state = scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = int(message["status"])
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            if _has_dot_segment(scope.get("path", "")):
                # /v1/models/%2e%2e%2f was answered 307 to /v1/models/..: no route has dot segments.
                state["error_code"] = "not_found"
                await error_response(404, "not_found", "no such path")(scope, receive, send_with_id)
                return
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            status = status if response_started else 499  # the client went away
            raise
        except Exception as exc:
            code = exc.code if isinstance(exc, ServingError) else "internal_error"
            if isinstance(exc, ServingError):
                status, message = exc.status, exc.message
            else:
                status, message = 500, f"internal error; quote request id {rid} when reporting it"
                logger.exception("unhandled error", extra={"fields": {"path": scope.get("path")}})
            state["error_code"] = code
            if not response_started:
                await error_response(status, code, message, headers={"x-request-id": rid})(
                    scope, receive, send
                )
        finally:
            elapsed = time.perf_counter() - started
            endpoint = _endpoint(scope)
            self.metrics.requests.labels(
                endpoint=endpoint, method=scope.get("method", ""), status=str(status)
            ).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(elapsed)
            error_code = state.get("error_code")
            if status >= 400:
                self.metrics.errors.labels(code=str(error_code or status)).inc()
            fields: dict[str, Any] = {
                "request_id": rid,
                "method": scope.get("method"),
                "path": scope.get("path"),
                "status": status,
                "duration_ms": round(elapsed * 1000, 1),
            }
            if error_code:
                fields["error_code"] = error_code
            logger.info("request", extra={"fields": fields})
            request_id.reset(token)


def _has_dot_segment(path: str) -> bool:
    """A `.` or `..` path segment (after percent-decoding, which the server has done), or a backslash."""
    return "\\" in path or any(segment in (".", "..") for segment in path.split("/"))


def _endpoint(scope: Scope) -> str:
    """The route's path template (bounded label cardinality); unknown paths share one label."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"
