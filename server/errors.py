"""One error shape for every failure: `{"error": {"code": ..., "message": ...}}`.

`ApiError` carries an HTTP status and a stable `code`; handlers registered by `install_error_handlers`
turn it, FastAPI's validation errors and Starlette's HTTP errors into that shape. Unexpected exceptions
are answered by the request middleware (500, no traceback, logged with the request id).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

# crosspoint.geometry error codes -> HTTP status (unknown codes answer 422)
GEOMETRY_STATUS = {
    "unsupported_format": 415,
    "parse_error": 400,
    "empty_geometry": 422,
    "degenerate_geometry": 422,
    "too_few_points": 422,
    "external_reference": 422,
    "unsupported_extension": 422,
    "limit_exceeded": 413,
    "invalid_argument": 422,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    411: "length_required",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
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


class ApiError(Exception):
    """An answer other than success, with a stable machine-readable `code`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        details: Any = None,
    ) -> None:
        message = scrub(message)
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.details = details

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.details)


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": scrub(message)}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def geometry_error(code: str, message: str) -> ApiError:
    return ApiError(GEOMETRY_STATUS.get(code, 422), code, message)


def _format_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        details.append({"loc": loc, "message": msg})
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request", details


async def _api_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    request.state.error_code = exc.code
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message, details = _format_validation(exc)
    request.state.error_code = "validation_error"
    return JSONResponse(error_body("validation_error", message, details), status_code=422)


async def _http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    request.state.error_code = code
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
