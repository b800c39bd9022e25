"""The HTTP answer of every failure: `ServingError` (and `ApiError`), FastAPI's validation errors and
Starlette's HTTP errors become `{"error": {"code": ..., "message": ...}}` with their status. Unexpected
exceptions are answered by the request middleware (500, no traceback, logged with the request id)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.errors import ApiError, ServingError, error_body
from server.schemas import ErrorResponse

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


def documented_errors(texts: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a router: each status with the error body and what answers it."""
    return {status: {"model": ErrorResponse, "description": text} for status, text in texts.items()}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _format_validation(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid"))
        details.append({"loc": loc, "message": msg})
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request", details


async def _serving_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServingError)
    request.state.error_code = exc.code
    headers = dict(exc.headers) if isinstance(exc, ApiError) else {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(exc.retry_after)
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


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
    app.add_exception_handler(ServingError, _serving_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
