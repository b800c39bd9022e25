"""One parse-worker trip per upload: a JSON body (one shape, or a batch's items) is decoded and prepared
in the same trip; each file of a multipart batch is its own trip. Counted on the gateway's own metric."""

from __future__ import annotations

import re

import numpy as np
from fastapi.testclient import TestClient

from tests.server.helpers import npy_bytes

SMALL_POINTS = np.random.default_rng(0).random((60, 3)).tolist()


def parse_trips(client: TestClient) -> float:
    metrics = client.get("/metrics").text
    match = re.search(r"^crosspoint_parse_seconds_count (\S+)$", metrics, re.MULTILINE)
    assert match is not None
    return float(match.group(1))


def test_a_json_body_is_one_trip(client: TestClient) -> None:
    before = parse_trips(client)
    assert client.post("/v1/embed", json={"points": SMALL_POINTS}).status_code == 200
    assert parse_trips(client) == before + 1

    items = [{"points": SMALL_POINTS}, {"points": [[0, 0]]}, {"points": SMALL_POINTS}]
    response = client.post("/v1/embed:batch", json={"items": items})
    assert parse_trips(client) == before + 2
    answers = response.json()["items"]
    assert [a["status"] for a in answers] == [200, 422, 200]
    assert [a["index"] for a in answers] == [0, 1, 2]
    assert answers[1]["error"]["code"] == "invalid_points"
    assert answers[0]["result"]["embedding"] == answers[2]["result"]["embedding"]


def test_each_file_of_a_batch_is_one_trip(client: TestClient) -> None:
    before = parse_trips(client)
    data = npy_bytes(np.asarray(SMALL_POINTS, dtype=np.float32))
    files = [("files", ("a.npy", data)), ("files", ("b.npy", data))]
    response = client.post("/v1/embed:batch", files=files)
    assert response.status_code == 200
    assert [a["name"] for a in response.json()["items"]] == ["a.npy", "b.npy"]
    assert parse_trips(client) == before + 2
