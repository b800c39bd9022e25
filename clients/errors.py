"""Exceptions the SDK raises: one base class, so callers (and the CLI) catch a single type."""

from __future__ import annotations

from typing import Any


class CrossPointError(Exception):
    """Anything the client could not turn into a result."""


class CrossPointConnectionError(CrossPointError):
    """The gateway could not be reached (after the configured retries)."""


class CrossPointAPIError(CrossPointError):
    """The gateway answered with an error; carries its `{"error": {"code", "message"}}` body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None = None,
        body: Any = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.body = body
        suffix = f" (request {request_id})" if request_id else ""
        super().__init__(f"{status} {code}: {message}{suffix}")

    @classmethod
    def from_response(
        cls, status: int, body: Any, request_id: str | None, text: str = ""
    ) -> CrossPointAPIError:
        """Read the gateway's error shape; anything else (a proxy's HTML page) keeps its text."""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(
                status,
                str(error.get("code", "error")),
                str(error.get("message", "")),
                request_id or _str_or_none(error.get("request_id")),
                body,
            )
        # FastAPI's own validation errors use {"detail": ...}; keep them readable too.
        if isinstance(body, dict) and "detail" in body:
            return cls(status, "http_error", str(body["detail"]), request_id, body)
        return cls(status, "http_error", text.strip()[:500] or f"HTTP {status}", request_id, body)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)
