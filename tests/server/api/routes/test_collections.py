"""/v1/collections on the real app (parse workers, ONNX Runtime, SQLite + usearch under a temp data dir)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.server.helpers import MESHES, gateway_settings, npy_bytes, require


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("collections")


@pytest.fixture(scope="module")
def api(repository: Path, data_dir: Path) -> Iterator[TestClient]:
    settings = gateway_settings(repository, data_dir=data_dir, collection_max_items=6, collection_max_k=20)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _add(api: TestClient, name: str, item_id: str, points: np.ndarray, label: str | None, **params: object):
    body: dict[str, object] = {"id": item_id, "points": points.tolist()}
    if label:
        body["label"] = label
    return api.post(f"/v1/collections/{name}/items", json=body, params=params)


def test_collection_lifecycle(api: TestClient, shapes: tuple) -> None:
    points, names = shapes
    created = api.post("/v1/collections", json={"name": "mine", "description": "four shapes"})
    assert created.status_code == 201, created.text
    assert created.json()["count"] == 0 and created.json()["version"] == "1"
    assert api.post("/v1/collections", json={"name": "mine"}).json()["error"]["code"] == "collection_exists"
    bad = api.post("/v1/collections", json={"name": "Bad Name!"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (422, "invalid_collection_name")

    for i, (p, label) in enumerate(zip(points, names, strict=True)):
        answer = _add(api, "mine", f"shape{i}", p, label)
        assert answer.status_code == 201, answer.text
        assert answer.json()["version"] == "1" and answer.json()["receipt"]["seed"] == 0
    # the same id again replaces
    again = _add(api, "mine", "shape0", points[0], names[0])
    assert again.status_code == 200 and again.json()["created"] is False

    info = api.get("/v1/collections/mine").json()
    assert info["count"] == 4
    assert sum(info["labels"].values()) == 4 and set(info["labels"]) == set(names)
    assert [c["name"] for c in api.get("/v1/collections").json()["collections"]] == ["mine"]

    # a shape sent again with the same seed finds itself first, with similarity ~1
    for i, p in enumerate(points):
        found = api.post("/v1/collections/mine/search", json={"points": p.tolist()}, params={"k": 3}).json()
        assert found["matches"][0]["id"] == f"shape{i}"
        assert found["matches"][0]["score"] == pytest.approx(1.0, abs=1e-3)
        assert found["version"] == "1" and found["collection"] == "mine"
        assert len(found["matches"]) == 3
    # by stored id: the item itself is left out
    by_id = api.post("/v1/collections/mine/search", json={"id": "shape1"}, params={"k": 10}).json()
    assert "shape1" not in {m["id"] for m in by_id["matches"]} and len(by_id["matches"]) == 3
    scores = [m["score"] for m in by_id["matches"]]
    assert scores == sorted(scores, reverse=True)
    # by embedding, the same answer as by the item's stored embedding
    item = api.get("/v1/collections/mine/items/shape2", params={"include_embedding": True}).json()
    assert item["num_points"] == 256 and len(item["embedding"]) == 2048 and item["label"] == names[2]
    by_vec = api.post(
        "/v1/collections/mine/search", json={"embedding": item["embedding"]}, params={"k": 1}
    ).json()
    assert by_vec["matches"][0]["id"] == "shape2"
    # label filter: exact search among that label only
    only = api.post("/v1/collections/mine/search", json={"id": "shape0"}, params={"label": names[3]}).json()
    assert {m["label"] for m in only["matches"]} == {names[3]}

    # few-shot: every stored shape classified as its own label (nearest class mean)
    for i, p in enumerate(points):
        answer = api.post(
            "/v1/collections/mine/classify", json={"points": p.tolist()}, params={"top_k": 2}
        ).json()
        assert answer["predictions"][0]["label"] == names[i], answer
        assert answer["method"] == "logistic" and len(answer["predictions"]) == 2
        assert sum(p["probability"] for p in answer["predictions"]) <= 1.0 + 1e-6
    for method in ("knn", "mean"):
        answer = api.post("/v1/collections/mine/classify", json={"id": "shape3"}, params={"method": method})
        assert answer.status_code == 200 and answer.json()["method"] == method

    assert api.delete("/v1/collections/mine/items/shape3").status_code == 204
    gone = api.get("/v1/collections/mine/items/shape3")
    assert (gone.status_code, gone.json()["error"]["code"]) == (404, "item_not_found")
    assert api.get("/v1/collections/mine").json()["count"] == 3
    assert api.delete("/v1/collections/mine").status_code == 204
    missing = api.get("/v1/collections/mine")
    assert (missing.status_code, missing.json()["error"]["code"]) == (404, "collection_not_found")


def test_files_batches_and_limits(api: TestClient, shapes: tuple) -> None:
    points, names = shapes
    assert api.post("/v1/collections", json={"name": "files"}).status_code == 201
    bunny = require(MESHES / "bunny.ply").read_bytes()
    one = api.post(
        "/v1/collections/files/items",
        files={"file": ("bunny.ply", bunny)},
        data={"label": "animal", "metadata": json.dumps({"source": "stanford"})},
        params={"num_points": 256, "seed": 3},
    )
    assert one.status_code == 201, one.text
    assert one.json()["id"] == "bunny" and one.json()["metadata"] == {"source": "stanford"}
    assert one.json()["receipt"]["seed"] == 3

    batch = api.post(
        "/v1/collections/files/items:batch",
        files=[("files", (f"s{i}.npy", npy_bytes(p))) for i, p in enumerate(points[:2])]
        + [("files", ("broken.ply", b"ply\nnot really"))],
        data={"labels": [names[0], names[1], "x"]},
    )
    assert batch.status_code == 200, batch.text
    statuses = [(e["id"], e["status"]) for e in batch.json()["items"]]
    assert statuses[:2] == [("s0", 201), ("s1", 201)] and statuses[2][1] >= 400
    assert api.get("/v1/collections/files").json()["count"] == 3

    found = api.post(
        "/v1/collections/files/search",
        files={"file": ("q.ply", bunny)},
        params={"num_points": 256, "seed": 3, "k": 1},
    ).json()
    assert found["matches"][0]["id"] == "bunny" and found["receipt"]["seed"] == 3

    def code(response) -> tuple[int, str]:  # type: ignore[no-untyped-def]
        return response.status_code, response.json()["error"]["code"]

    big = {"id": "big", "points": points[0].tolist(), "metadata": {"x": "y" * 5000}}
    assert code(api.post("/v1/collections/files/items", json=big)) == (413, "metadata_too_large")
    assert code(api.post("/v1/collections/files/items", json={"id": "bad/id", "points": [[0, 0, 0]]}))[1] == (
        "invalid_item_id"
    )
    assert code(api.post("/v1/collections/files/search", json={"id": "s0"}, params={"k": 21}))[0] == 422
    assert code(api.post("/v1/collections/files/search", json={"id": "nope"})) == (404, "item_not_found")
    assert code(api.post("/v1/collections/nope/search", json={"id": "s0"})) == (404, "collection_not_found")
    assert code(api.post("/v1/collections/files/items", json={"id": "e", "embedding": [0.1] * 7}))[1] == (
        "invalid_embedding"
    )
    assert api.post("/v1/collections/files/classify", json={"id": "s0"}).status_code == 200
    # collection_max_items is 6 here: 3 stored, 3 more fit, the next is refused
    for i in range(3):
        assert _add(api, "files", f"extra{i}", points[i], None).status_code == 201
    assert code(_add(api, "files", "one-too-many", points[3], None)) == (409, "collection_full")
    assert _add(api, "files", "extra0", points[3], None).status_code == 200  # replacing still works


def test_requires_the_api_key(repository: Path, tmp_path: Path) -> None:
    settings = gateway_settings(repository, data_dir=tmp_path, api_key="s3cret", parse_workers=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        assert c.get("/v1/collections").status_code == 401
        assert c.get("/v1/collections", headers={"X-API-Key": "s3cret"}).status_code == 200
        assert "/v1/collections/{name}/search" in c.get("/openapi.json").json()["paths"]
