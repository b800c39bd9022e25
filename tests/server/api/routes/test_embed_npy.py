"""`Accept: application/x-npy` on /v1/embed: the same embedding as the JSON answer, as a float32 .npy."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.api.npy import wants_npy

Shapes = tuple[list[np.ndarray], list[str]]


@pytest.mark.parametrize(
    ("accept", "npy"),
    [
        (None, False),
        ("application/json", False),
        ("*/*", False),
        ("application/x-npy", True),
        ("application/x-npy, application/json;q=0.5", True),
        ("application/json, application/x-npy;q=0.9", False),
        ("application/x-npy, */*", False),  # a tie keeps JSON
        ("application/x-npy;q=0", False),
        ("application/x-npy;q=oops", False),
    ],
)
def test_accept_negotiation(accept: str | None, npy: bool) -> None:
    assert wants_npy(accept) is npy


def test_embed_answers_npy_when_asked(client: TestClient, shapes: Shapes) -> None:
    points = shapes[0][0].tolist()
    as_json = client.post("/v1/embed", json={"points": points})
    as_npy = client.post("/v1/embed", json={"points": points}, headers={"Accept": "application/x-npy"})
    assert as_json.status_code == 200 and as_npy.status_code == 200, as_npy.text
    assert as_npy.headers["content-type"] == "application/x-npy"
    embedding = np.load(io.BytesIO(as_npy.content), allow_pickle=False)
    assert embedding.dtype == np.float32 and embedding.ndim == 1
    np.testing.assert_array_equal(embedding, np.asarray(as_json.json()["embedding"], dtype=np.float32))
    assert as_npy.headers["x-crosspoint-model"] == "embed"
    assert as_npy.headers["x-crosspoint-version"] == as_json.json()["version"]
    assert len(as_npy.content) < len(as_json.content) / 3


def test_npy_errors_stay_json(client: TestClient) -> None:
    answer = client.post("/v1/embed", json={"points": [[0, 0, 0]]}, headers={"Accept": "application/x-npy"})
    assert answer.status_code == 422
    assert answer.json()["error"]["code"]
