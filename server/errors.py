"""One error shape for every failure, `{"error": {"code": ..., "message": ...}}`, and one code -> status map.

Services, backends and the parse workers raise `ServingError(code, message)`: they say which failure it
is, not how HTTP spells it; `STATUS` is the one place a code becomes an HTTP status. The API layer raises
`ApiError` (a `ServingError` with its status named) for failures that are about HTTP itself: the API key,
query validation, the body size. `server.api.errors` answers both. No web framework is imported here.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Any

# Every code services, backends and the parse workers use. Codes not listed (a new crosspoint.geometry
# error) are a problem with the input: 422.
STATUS: dict[str, int] = {
    # the upload could not be read
    "parse_error": 400,
    "invalid_json": 400,
    "invalid_multipart": 400,
    "missing_file": 400,
    # too large
    "limit_exceeded": 413,
    "memory_limit_exceeded": 413,
    "too_many_items": 413,
    "request_too_costly": 413,
    "metadata_too_large": 413,
    "unsupported_format": 415,
    "unsupported_media_type": 415,
    # readable but unusable input or options
    "empty_geometry": 422,
    "degenerate_geometry": 422,
    "too_few_points": 422,
    "external_reference": 422,
    "unsupported_extension": 422,
    "invalid_argument": 422,
    "invalid_request": 422,
    "invalid_points": 422,
    "parse_failed": 422,
    "parse_timeout": 422,
    "num_points_out_of_range": 422,
    "unknown_category": 422,
    "up_axis_auto_unavailable": 422,
    "validation_error": 422,
    "invalid_collection_name": 422,
    "invalid_item_id": 422,
    "missing_item_id": 422,
    "invalid_item": 422,
    "invalid_label": 422,
    "invalid_metadata": 422,
    "invalid_embedding": 422,
    "invalid_query": 422,
    "no_labels": 422,
    # collections
    "collection_not_found": 404,
    "item_not_found": 404,
    "collection_exists": 409,
    "collection_full": 409,
    "collection_busy": 409,
    "collection_changed": 409,
    "collection_version_mismatch": 409,
    "dimension_mismatch": 409,
    "cannot_reembed": 409,
    # the server, not the input (Retry-After where trying again helps)
    "internal_error": 500,
    "backend_error": 502,
    "overloaded": 503,
    "shutting_down": 503,
    "model_unavailable": 503,
    "backend_unavailable": 503,
    "parse_unavailable": 503,
    "parse_crashed": 503,
    # nobody reads it, but the logs and metrics do
    "client_closed_request": 499,
}


# An absolute path (two or more components) or a host:port that a message might carry from a library
# (ONNX Runtime names the file it failed to load, gRPC the address it could not reach).
_PATH = re.compile(r"(?<![\w.:/~-])/[^\s'\"`,;()\[\]{}<>/]+(?:/[^\s'\"`,;()\[\]{}<>/]*)+")
_ADDRESS = re.compile(
    r"(?<![\w.:\[])(?:ipv[46]:)?(?:localhost|\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\])(?::\d{1,5})?(?![\w.])"
)


@functools.cache
def _top_directories() -> frozenset[str]:
    try:
        return frozenset(name for name in os.listdir("/") if os.path.isdir(os.path.join("/", name)))
    except OSError:
        return frozenset()


def _short_path(match: re.Match[str]) -> str:
    path = match.group(0)
    top = path[1:].split("/", 1)[0]
    if top not in _top_directories():
        return path  # not a path on this machine (an API path such as /v1/models/embed)
    return path.rstrip("/").rsplit("/", 1)[-1] or "..."


def scrub(message: str) -> str:
    """`message` without this machine's absolute paths (kept: the file name) or network addresses."""
    return _ADDRESS.sub("<address>", _PATH.sub(_short_path, message))


class ServingError(Exception):
    """A failure with a stable machine-readable `code`; its HTTP status comes from `STATUS`."""

    def __init__(
        self, code: str, message: str, *, details: Any = None, retry_after: int | None = None
    ) -> None:
        message = scrub(message)
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.retry_after = retry_after  # seconds after which trying again may succeed (overload, restart)
        self.status = STATUS.get(code, 422)

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


class ApiError(ServingError):
    """A failure of the HTTP exchange itself (API key, query, body size), with the status it answers."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(code, message, details=details)
        self.status = status
        self.headers = headers or {}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": scrub(message)}
    if details is not None:
        error["details"] = details
    return {"error": error}
