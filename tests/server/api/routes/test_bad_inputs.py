"""Every bad input gets a 4xx JSON error naming the problem (never a 500, never a traceback)."""

from __future__ import annotations

import json
import struct

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.server.api.routes.test_inference import assert_error
from tests.server.helpers import MESHES, npy_bytes, require


def upload(client: TestClient, name: str, data: bytes, endpoint: str = "embed") -> httpx.Response:
    return client.post(f"/v1/{endpoint}", files={"file": (name, data, "application/octet-stream")})


def test_empty_files(client: TestClient) -> None:
    for name in ("empty.ply", "empty.obj", "empty.stl", "empty.npy", "empty.glb"):
        response = upload(client, name, b"")
        assert response.status_code in (400, 422), (name, response.text)
        assert response.json()["error"]["code"] in ("parse_error", "empty_geometry")


def test_truncated_files(client: TestClient) -> None:
    ply = require(MESHES / "fuze.ply").read_bytes()
    assert_error(upload(client, "fuze.ply", ply[: len(ply) // 2]), 400, "parse_error")
    glb = require(MESHES / "monkey.glb").read_bytes()
    assert_error(upload(client, "monkey.glb", glb[:5000]), 400, "parse_error")
    stl = require(MESHES / "teapot.stl").read_bytes()
    assert_error(upload(client, "teapot.stl", stl[:1000]), 400, "parse_error")
    npy = npy_bytes(np.random.default_rng(0).random((500, 3)))
    assert_error(upload(client, "cloud.npy", npy[:300]), 400, "parse_error")


def test_nan_points(client: TestClient) -> None:
    all_nan = np.full((100, 3), np.nan)
    assert_error(client.post("/v1/embed", content=npy_bytes(all_nan), headers={"Content-Type": "application/x-npy"}),
                 422, "empty_geometry")  # fmt: skip
    body = json.dumps({"points": [[float("nan")] * 3] * 20})  # Python's json writes NaN literals
    assert_error(client.post("/v1/embed", content=body, headers={"Content-Type": "application/json"}), 422,
                 "empty_geometry")  # fmt: skip
    some = np.random.default_rng(1).random((300, 3))
    some[::10] = np.inf
    ok = client.post("/v1/embed", content=npy_bytes(some), headers={"Content-Type": "application/x-npy"})
    assert ok.status_code == 200 and ok.json()["receipt"]["dropped_nonfinite"] == 30


def test_wrong_extension(client: TestClient) -> None:
    stl = require(MESHES / "teapot.stl").read_bytes()
    assert_error(upload(client, "teapot.ply", stl), 400, "parse_error")  # STL bytes named .ply
    assert_error(upload(client, "teapot.docx", stl), 415, "unsupported_format")
    assert_error(upload(client, "teapot", stl), 415, "unsupported_format")
    glb = require(MESHES / "cube.glb").read_bytes()
    as_obj = upload(client, "cube.obj", glb)  # OBJ readers skip lines they do not know: nothing is left
    assert as_obj.status_code in (400, 422) and as_obj.json()["error"]["code"] in (
        "parse_error",
        "empty_geometry",
    )


def test_huge_declared_counts(client: TestClient) -> None:
    ply = b"ply\nformat binary_little_endian 1.0\nelement vertex 1000000000\nproperty float x\nproperty float y\n"
    ply += b"property float z\nend_header\n" + b"\0" * 64
    response = upload(client, "huge.ply", ply)
    assert response.status_code in (400, 413)
    assert response.json()["error"]["code"] in ("parse_error", "limit_exceeded")
    ascii_ply = b"ply\nformat ascii 1.0\nelement vertex 99999999999\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n"
    assert upload(client, "huge_ascii.ply", ascii_ply).status_code in (400, 413)
    stl = b"\0" * 80 + struct.pack("<I", 2_000_000_000) + b"\0" * 100  # binary STL claiming 2e9 triangles
    assert upload(client, "huge.stl", stl).status_code in (400, 413)
    off = b"OFF\n900000000 900000000 0\n0 0 0\n"
    assert upload(client, "huge.off", off).status_code in (400, 413)
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (10000000000, 3), }"
    npy = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header) + 1) + header.encode() + b"\n" + b"\0" * 48
    assert upload(client, "huge.npy", npy).status_code in (400, 413)


def test_external_gltf_uri(client: TestClient) -> None:
    gltf = require(MESHES / "TestScene.gltf").read_text()
    for uri in ("http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "../../../../etc/passwd"):
        doc = json.loads(gltf)
        doc["buffers"][0]["uri"] = uri
        assert_error(upload(client, "scene.gltf", json.dumps(doc).encode()), 422, "external_reference")


def test_bad_json_bodies(client: TestClient) -> None:
    headers = {"Content-Type": "application/json"}
    assert_error(client.post("/v1/embed", content=b"{not json", headers=headers), 400, "invalid_json")
    assert_error(client.post("/v1/embed", content=b"", headers=headers), 400, "invalid_json")
    assert_error(client.post("/v1/embed", json=[1, 2, 3]), 422, "invalid_request")
    assert_error(client.post("/v1/embed", json={"points": [[1, 2, 3], [4, 5]]}), 422, "invalid_points")
    assert_error(client.post("/v1/embed", json={"points": [["1", "2", "3"]] * 20}), 422, "invalid_points")
    assert_error(client.post("/v1/embed", json={"points": []}), 422, "empty_geometry")
    assert_error(client.post("/v1/embed", json={"points": [[0, 0, 0]] * 50}), 422, "degenerate_geometry")
    deep = "[" * 100_000 + "]" * 100_000
    response = client.post("/v1/embed", content=deep.encode(), headers=headers)
    assert response.status_code in (400, 422)


def test_bad_requests(client: TestClient) -> None:
    assert_error(client.post("/v1/embed", content=b"x y z", headers={"Content-Type": "text/plain"}), 415,
                 "unsupported_media_type")  # fmt: skip
    assert_error(client.post("/v1/embed", content=b"abc", headers={"Content-Type": "application/octet-stream"}), 415,
                 "unsupported_format")  # fmt: skip
    assert_error(client.post("/v1/embed", files={"other": ("a.ply", b"ply")}), 400, "missing_file")
    assert_error(
        client.post("/v1/embed?num_points=5", json={"points": [[0, 0, 1]]}), 422, "num_points_out_of_range"
    )
    assert_error(client.post("/v1/embed?num_points=100000", json={"points": [[0, 0, 1]]}), 422,
                 "num_points_out_of_range")  # fmt: skip
    assert_error(client.post("/v1/embed?up_axis=w", json={"points": [[0, 0, 1]]}), 422, "validation_error")
    assert_error(client.post("/v1/embed?seed=-1", json={"points": [[0, 0, 1]]}), 422, "validation_error")
    assert_error(client.get("/v1/nowhere"), 404, "not_found")
    assert_error(client.get("/v1/embed"), 405, "method_not_allowed")


@pytest.mark.parametrize("endpoint", ["embed", "classify", "segment"])
def test_every_endpoint_refuses_the_same_way(client: TestClient, endpoint: str) -> None:
    assert_error(upload(client, "scene.gltf", require(MESHES / "TestScene.gltf").read_bytes(), endpoint), 422,
                 "external_reference")  # fmt: skip
