"""The inference endpoints on real shapes (ModelNet40 rows, the shared mesh files) and real models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.server.helpers import MESHES, NUM_POINTS, npy_bytes, require

Shapes = tuple[list[np.ndarray], list[str]]

UPLOADS = (
    sorted(p for p in MESHES.glob("*") if p.suffix.lower() not in (".mtl", ".bin")) if MESHES.is_dir() else []
)
REFUSED = {
    "TestScene.gltf": (422, "external_reference"),  # buffers in a .bin beside it: never opened
    "Mesh_PrimitiveMode_04.gltf": (422, "external_reference"),
    "empty.obj": (422, "empty_geometry"),
    "empty.stl": (422, "empty_geometry"),
    "points_ascii.ply": (422, "too_few_points"),  # 5 points; the model's kNN needs at least k=10
    "points_bin.ply": (422, "too_few_points"),
}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert body["error"]["message"] and "Traceback" not in body["error"]["message"]
    return body


# --- embed ---


def test_embed_json_npy_and_file_agree(client: TestClient, shapes: Shapes) -> None:
    points = shapes[0][0]
    as_json = client.post("/v1/embed", json={"points": points.tolist()})
    as_npy = client.post(
        "/v1/embed", content=npy_bytes(points), headers={"Content-Type": "application/x-npy"}
    )
    as_file = client.post(
        "/v1/embed", files={"file": ("cloud.npy", npy_bytes(points), "application/octet-stream")}
    )
    as_raw = client.post(
        "/v1/embed?format=npy",
        content=npy_bytes(points),
        headers={"Content-Type": "application/octet-stream"},
    )
    for response in (as_json, as_npy, as_file, as_raw):
        assert response.status_code == 200, response.text
    body = as_json.json()
    assert len(body["embedding"]) == 2048
    assert "projection" not in body
    assert (body["model"], body["version"]) == ("embed", "1")
    assert body["receipt"]["num_points"] == NUM_POINTS and body["receipt"]["seed"] == 0
    for other in (as_npy, as_file, as_raw):
        assert other.json()["embedding"] == body["embedding"]


def test_same_upload_twice_gives_identical_embedding(client: TestClient) -> None:
    data = require(MESHES / "bunny.ply").read_bytes()
    first = client.post("/v1/embed", files={"file": ("bunny.ply", data)}).json()
    second = client.post("/v1/embed", files={"file": ("bunny.ply", data)}).json()
    assert first["embedding"] == second["embedding"]
    assert first["receipt"] == second["receipt"]
    other_seed = client.post("/v1/embed?seed=7", files={"file": ("bunny.ply", data)}).json()
    assert other_seed["receipt"]["seed"] == 7 and other_seed["embedding"] != first["embedding"]


def test_embed_projection_and_options(client: TestClient, shapes: Shapes) -> None:
    points = shapes[0][1].tolist()
    body = client.post(
        "/v1/embed?include_projection=true&num_points=128&up_axis=z", json={"points": points}
    ).json()
    assert len(body["projection"]) == 256 and len(body["embedding"]) == 2048
    assert body["receipt"]["num_points"] == 128 and body["receipt"]["up_axis"] == "+z"


@pytest.mark.parametrize("path", UPLOADS, ids=lambda p: p.name)
def test_each_shared_file_uploads(client: TestClient, path: Path) -> None:
    response = client.post("/v1/embed", files={"file": (path.name, path.read_bytes())})
    if path.name in REFUSED:
        assert_error(response, *REFUSED[path.name])
    else:
        assert response.status_code == 200, response.text
        assert len(response.json()["embedding"]) == 2048
        assert response.json()["receipt"]["source_format"] == path.suffix.lower().lstrip(".")


def test_format_field_names_a_file_without_extension(client: TestClient) -> None:
    data = require(MESHES / "teapot.stl").read_bytes()
    assert (
        client.post("/v1/embed", files={"file": ("teapot", data)}, data={"format": "stl"}).status_code == 200
    )
    assert_error(client.post("/v1/embed", files={"file": ("teapot", data)}), 415, "unsupported_format")


# --- classify ---


def test_classify_top_k(client: TestClient, shapes: Shapes) -> None:
    response = client.post("/v1/classify", json={"points": shapes[0][2].tolist()})
    assert response.status_code == 200
    body = response.json()
    predictions = body["predictions"]
    assert len(predictions) == 5 and (body["model"], body["version"]) == ("classify", "1")
    probabilities = [p["probability"] for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-9
    names = client.get("/v1/models/classify").json()["class_names"]
    assert all(names[p["index"]] == p["label"] for p in predictions)
    three = client.post("/v1/classify?top_k=3", json={"points": shapes[0][2].tolist()}).json()["predictions"]
    assert three == predictions[:3]
    assert_error(client.post("/v1/classify?top_k=0", json={"points": [[0, 0, 0]]}), 422, "validation_error")


# --- segment ---


def test_segment_given_category(client: TestClient, shapes: Shapes) -> None:
    points = shapes[0][3]
    response = client.post("/v1/segment?category=chair&num_points=128", json={"points": points.tolist()})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["category"] == "Chair" and body["category_source"] == "given"
    assert body["part_names"] == ["back", "seat", "leg", "arm"] and body["part_ids"] == [12, 13, 14, 15]
    assert len(body["point_labels"]) == len(body["points"]) == 128
    assert set(body["point_labels"]) <= set(range(4))
    assert len(body["vertex_labels"]) == len(points) and set(body["vertex_labels"]) <= set(range(4))
    # a sampled point is one of the original points: its vertex label is its own label
    sampled = np.asarray(body["points"], dtype=np.float32)
    assert sampled.shape == (128, 3) and np.abs(np.linalg.norm(sampled, axis=1).max() - 1) < 1e-5


def test_segment_predicts_category_from_the_part_model(client: TestClient) -> None:
    data = require(MESHES / "chair_model.obj").read_bytes()
    body = client.post("/v1/segment", files={"file": ("chair_model.obj", data)}).json()
    assert body["category_source"] == "predicted"
    scores = body["category_scores"]
    assert len(scores) == 16 and body["category"] == max(scores, key=scores.get)
    assert len(body["vertex_labels"]) == body["receipt"]["source_vertices"] == 11250
    assert max(body["vertex_labels"]) < len(body["part_names"])
    given = client.post(
        f"/v1/segment?category={body['category']}", files={"file": ("chair_model.obj", data)}
    ).json()
    assert given["point_labels"] == body["point_labels"]  # same logits: the chosen row is the answer


def test_segment_without_vertex_labels_and_bad_category(client: TestClient, shapes: Shapes) -> None:
    points = shapes[0][0].tolist()
    body = client.post("/v1/segment?category=Mug&include_vertex_labels=false", json={"points": points}).json()
    assert body["vertex_labels"] is None and body["part_names"] == ["handle", "body"]
    error = assert_error(
        client.post("/v1/segment?category=teapot", json={"points": points}), 422, "unknown_category"
    )
    assert "Chair" in error["error"]["message"]


def test_vertex_labels_mark_non_finite_points(client: TestClient, shapes: Shapes) -> None:
    points = shapes[0][0][:300].astype(np.float64)
    points[5] = np.nan
    body = client.post(
        "/v1/segment?category=Table", content=npy_bytes(points), headers={"Content-Type": "application/x-npy"}
    ).json()
    assert body["receipt"]["dropped_nonfinite"] == 1
    # a raw NPY body is a file: labels follow its finite vertices; JSON points keep every row
    assert len(body["vertex_labels"]) == 299
    as_json = client.post("/v1/segment?category=Table", content=json.dumps({"points": points.tolist()}),
                          headers={"Content-Type": "application/json"}).json()  # fmt: skip
    assert len(as_json["vertex_labels"]) == 300 and as_json["vertex_labels"][5] == -1


# --- batch forms ---


def test_embed_batch_json_with_a_bad_item(client: TestClient, shapes: Shapes) -> None:
    rows = shapes[0]
    items = [{"points": rows[0].tolist()}, {"points": [[1, 2]]}, {"points": rows[1].tolist()}, {"nothing": 1}]
    response = client.post("/v1/embed:batch", json={"items": items})
    assert response.status_code == 200
    body = response.json()
    assert (body["model"], body["version"]) == ("embed", "1")
    statuses = [(i["index"], i["status"], (i["error"] or {}).get("code")) for i in body["items"]]
    assert statuses == [
        (0, 200, None),
        (1, 422, "invalid_points"),
        (2, 200, None),
        (3, 422, "invalid_request"),
    ]
    single = client.post("/v1/embed", json={"points": rows[1].tolist()}).json()
    assert body["items"][2]["result"]["embedding"] == single["embedding"]


def test_classify_batch_files(client: TestClient) -> None:
    names = ["teapot.stl", "TestScene.gltf", "cube.glb", "suzanne.ply"]
    files = [("files", (n, require(MESHES / n).read_bytes())) for n in names]
    files.append(("files", ("notes.docx", b"PK\x03\x04")))
    body = client.post("/v1/classify:batch?top_k=2", files=files).json()
    assert [i["name"] for i in body["items"]] == [*names, "notes.docx"]
    assert [i["status"] for i in body["items"]] == [200, 422, 200, 200, 415]
    assert body["items"][1]["error"]["code"] == "external_reference"
    assert body["items"][4]["error"]["code"] == "unsupported_format" and body["items"][4]["result"] is None
    assert all(len(i["result"]["predictions"]) == 2 for i in body["items"] if i["status"] == 200)


def test_segment_batch(client: TestClient, shapes: Shapes) -> None:
    items = [{"points": r.tolist()} for r in shapes[0][:2]]
    body = client.post("/v1/segment:batch?category=Airplane&num_points=64", json={"items": items}).json()
    assert [i["status"] for i in body["items"]] == [200, 200]
    assert all(len(i["result"]["point_labels"]) == 64 for i in body["items"])
    predicted = client.post("/v1/segment:batch?num_points=64", json={"items": items[:1]}).json()
    assert predicted["items"][0]["result"]["category_source"] == "predicted"


def test_batch_limits(client: TestClient) -> None:
    too_many = {"items": [{"points": [[0, 0, 0]]}] * 65}
    assert_error(client.post("/v1/embed:batch", json=too_many), 413, "too_many_items")
    assert_error(client.post("/v1/embed:batch", json={"items": []}), 422, "invalid_request")
    npy = npy_bytes(np.zeros((3, 3), np.float32))
    assert_error(client.post("/v1/embed:batch", content=npy, headers={"Content-Type": "application/x-npy"}), 415,
                 "unsupported_media_type")  # fmt: skip
