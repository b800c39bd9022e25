"""The body is read by a dependency before the service runs, yet a request with two faults is refused
for the same one as when the service read the body itself (its own checks first)."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

PLAIN = {"content": b"not a shape", "headers": {"content-type": "text/plain"}}


def code_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


def test_the_services_checks_come_before_an_unreadable_body(client: TestClient) -> None:
    assert code_of(client.post("/v1/embed", **PLAIN)) == (415, "unsupported_media_type")
    assert code_of(client.post("/v1/embed?num_points=5", **PLAIN)) == (422, "num_points_out_of_range")
    assert code_of(client.post("/v1/segment?category=teapot", **PLAIN)) == (422, "unknown_category")
    assert code_of(client.post("/v1/collections/nope/items", **PLAIN)) == (404, "collection_not_found")
    assert code_of(client.post("/v1/collections/Bad!/search", **PLAIN)) == (422, "invalid_collection_name")


def test_a_bad_query_option_is_reported_once(client: TestClient) -> None:
    for path in ("/v1/embed?seed=-1", "/v1/embed:batch?seed=-1", "/v1/collections/c/items?seed=-1"):
        response = client.post(path, **PLAIN)
        assert code_of(response) == (422, "validation_error"), path
        assert [d["loc"] for d in response.json()["error"]["details"]] == ["query.seed"], path
