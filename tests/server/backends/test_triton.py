"""The Triton backend against a real tritonserver (nvidia-pytriton's binary with the shim backends)
serving the same exported repository: same answers as the embedded backend within the export's
parity tolerance (max |diff| <= 1e-4 * max(1, max |reference|), export/parity.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.server.helpers import MESHES, gateway_settings, require

pytestmark = pytest.mark.triton
ATOL = 1e-4


def close(a: list[float], b: list[float]) -> bool:
    x, y = np.asarray(a), np.asarray(b)
    return bool(np.abs(x - y).max() <= ATOL * max(1.0, float(np.abs(y).max())))


@pytest.fixture(scope="module")
def triton_client(repository: Path) -> Iterator[TestClient]:
    from crosspoint.triton.testing import running_triton

    with running_triton(repository, timeout=180) as triton:
        settings = gateway_settings(
            repository, backend="triton", triton_url=triton.urls.grpc, parse_workers=1
        )
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield client


def test_triton_backend_matches_embedded(
    triton_client: TestClient, client: TestClient, shapes: tuple
) -> None:
    ready = triton_client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["checks"]["backend"]["kind"] == "triton"
    assert {m["backend"] for m in triton_client.get("/v1/models").json()["models"]} == {"triton"}
    for points in shapes[0][:2]:
        body = {"points": points.tolist()}
        ours = client.post("/v1/embed?include_projection=true", json=body).json()
        theirs = triton_client.post("/v1/embed?include_projection=true", json=body).json()
        assert theirs["version"] == ours["version"] and theirs["receipt"] == ours["receipt"]
        assert close(theirs["embedding"], ours["embedding"]) and close(
            theirs["projection"], ours["projection"]
        )
        ours_c = client.post("/v1/classify?top_k=40", json=body).json()["predictions"]
        theirs_c = triton_client.post("/v1/classify?top_k=40", json=body).json()["predictions"]
        by_label = {p["label"]: p["probability"] for p in theirs_c}
        assert max(abs(p["probability"] - by_label[p["label"]]) for p in ours_c) < 1e-4


def test_triton_segment_and_batch(triton_client: TestClient, client: TestClient) -> None:
    data = require(MESHES / "chair_model.obj").read_bytes()
    ours = client.post("/v1/segment?num_points=128", files={"file": ("c.obj", data)}).json()
    theirs = triton_client.post("/v1/segment?num_points=128", files={"file": ("c.obj", data)}).json()
    assert theirs["category"] == ours["category"]  # 16 category rows, split to Triton's max_batch_size 8
    agree = np.mean(np.asarray(theirs["point_labels"]) == np.asarray(ours["point_labels"]))
    assert agree >= 0.98  # labels may differ only at near-ties
    files = [("files", (n, require(MESHES / n).read_bytes())) for n in ("cube.glb", "TestScene.gltf")]
    batch = triton_client.post("/v1/embed:batch", files=files).json()
    assert [i["status"] for i in batch["items"]] == [200, 422]
