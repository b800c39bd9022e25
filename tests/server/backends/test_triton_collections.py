"""Both backends give the same collection answers: the same shapes added through a gateway on ONNX Runtime
and one on a real tritonserver (same repository) find the same matches with the same scores and labels."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.server.helpers import MESHES, gateway_settings, require

pytestmark = pytest.mark.triton


@pytest.fixture(scope="module")
def pair(
    repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[TestClient, TestClient]]:
    from crosspoint.triton.testing import running_triton

    with running_triton(repository, timeout=180) as triton:
        theirs_settings = gateway_settings(
            repository,
            backend="triton",
            triton_url=triton.urls.grpc,
            parse_workers=1,
            data_dir=tmp_path_factory.mktemp("triton-data"),
        )
        ours_settings = gateway_settings(
            repository, parse_workers=1, data_dir=tmp_path_factory.mktemp("ort-data")
        )
        with (
            TestClient(create_app(theirs_settings), raise_server_exceptions=False) as theirs,
            TestClient(create_app(ours_settings), raise_server_exceptions=False) as ours,
        ):
            yield ours, theirs


def test_backends_agree_on_matches(pair: tuple[TestClient, TestClient], shapes: tuple) -> None:
    ours, theirs = pair
    assert theirs.get("/readyz").json()["checks"]["backend"]["kind"] == "triton"
    points, names = shapes
    bunny = require(MESHES / "bunny.ply").read_bytes()
    for client in pair:
        assert client.post("/v1/collections", json={"name": "same"}).status_code == 201
        items = [{"id": f"s{i}", "points": p.tolist(), "label": names[i]} for i, p in enumerate(points)]
        batch = client.post("/v1/collections/same/items:batch", json={"items": items}).json()
        assert [e["status"] for e in batch["items"]] == [201] * len(points)
        added = client.post(
            "/v1/collections/same/items", files={"file": ("bunny.ply", bunny)}, data={"label": "bunny"}
        )
        assert added.status_code == 201
    queries = [{"json": {"points": p.tolist()}} for p in points] + [{"files": {"file": ("q.ply", bunny)}}]
    for query in queries:
        a = ours.post("/v1/collections/same/search", params={"k": 5, "seed": 1}, **query).json()
        b = theirs.post("/v1/collections/same/search", params={"k": 5, "seed": 1}, **query).json()
        assert [m["id"] for m in b["matches"]] == [m["id"] for m in a["matches"]]
        for x, y in zip(a["matches"], b["matches"], strict=True):
            assert y["score"] == pytest.approx(x["score"], abs=1e-4)
        ca = ours.post("/v1/collections/same/classify", params={"top_k": 3}, **query).json()
        cb = theirs.post("/v1/collections/same/classify", params={"top_k": 3}, **query).json()
        assert [p["label"] for p in cb["predictions"]] == [p["label"] for p in ca["predictions"]]
        for x, y in zip(ca["predictions"], cb["predictions"], strict=True):
            assert y["probability"] == pytest.approx(x["probability"], abs=1e-4)
