"""The one code -> HTTP status map covers every code the gateway raises, with the statuses it always had."""

from __future__ import annotations

import ast
from pathlib import Path

import crosspoint.geometry.errors as geometry_errors
from crosspoint.geometry import GeometryError
from server.errors import STATUS, ApiError, ServingError

SERVER = Path(__file__).resolve().parents[2] / "server"
# Constructors whose first argument is an error code that ends up in an answer.
RAISERS = {"ServingError", "StoreError", "_BodyError", "_error"}


def raised_codes() -> set[str]:
    codes = set()
    for path in SERVER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in RAISERS and isinstance(node.args[0].value, str):
                    codes.add(node.args[0].value)
            if isinstance(node, ast.Dict):  # the parse worker's error entries {"ok": False, "code": ...}
                for key, value in zip(node.keys, node.values, strict=True):
                    if (
                        isinstance(key, ast.Constant)
                        and key.value == "code"
                        and isinstance(value, ast.Constant)
                    ):
                        codes.add(value.value)
    return codes


def test_every_raised_code_has_its_status() -> None:
    codes = raised_codes()
    assert {"overloaded", "client_closed_request", "collection_not_found", "invalid_json"} <= codes
    geometry = {
        cls.code
        for cls in vars(geometry_errors).values()
        if isinstance(cls, type) and issubclass(cls, GeometryError) and cls is not GeometryError
    }
    assert len(geometry) >= 8
    assert sorted((codes | geometry) - set(STATUS)) == []


def test_statuses_are_the_ones_answered_before_the_maps_were_merged() -> None:
    # The geometry map, the parse worker's map and the collection store's map, as they were.
    before = {
        "unsupported_format": 415, "parse_error": 400, "empty_geometry": 422, "degenerate_geometry": 422,
        "too_few_points": 422, "external_reference": 422, "unsupported_extension": 422, "limit_exceeded": 413,
        "invalid_argument": 422, "invalid_json": 400, "invalid_request": 422, "invalid_points": 422,
        "too_many_items": 413, "memory_limit_exceeded": 413, "parse_failed": 422,
        "collection_not_found": 404, "item_not_found": 404, "collection_exists": 409, "collection_full": 409,
        "collection_busy": 409, "collection_changed": 409, "invalid_embedding": 422,
        "overloaded": 503, "shutting_down": 503, "model_unavailable": 503, "backend_unavailable": 503,
        "backend_error": 502, "parse_crashed": 503, "parse_unavailable": 503, "parse_timeout": 422,
        "client_closed_request": 499, "request_too_costly": 413, "internal_error": 500,
    }  # fmt: skip
    assert {code: STATUS[code] for code in before} == before
    assert ServingError("a_new_geometry_code", "x").status == 422  # unknown input problems stay 422


def test_retry_after_and_api_errors() -> None:
    error = ServingError("overloaded", "busy", retry_after=2)
    assert (error.status, error.retry_after, error.body()) == (
        503,
        2,
        {"error": {"code": "overloaded", "message": "busy"}},
    )
    auth = ApiError(401, "unauthorized", "no", headers={"WWW-Authenticate": "Bearer"})
    assert (
        isinstance(auth, ServingError)
        and auth.status == 401
        and auth.headers == {"WWW-Authenticate": "Bearer"}
    )
