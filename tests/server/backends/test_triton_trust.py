"""Both backends give the same trust answers: ood_score, in_distribution, calibrated probabilities and
the axis up_axis=auto keeps, from a real tritonserver serving the calibrated test repository."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.server.helpers import MESHES, gateway_settings, require

pytestmark = pytest.mark.triton
RTOL = 1e-4  # the export's parity tolerance, relative


@pytest.fixture(scope="module")
def pair(calibrated_repository: Path) -> Iterator[tuple[TestClient, TestClient]]:
    from crosspoint.triton.testing import running_triton

    with running_triton(calibrated_repository, timeout=180) as triton:
        settings = gateway_settings(
            calibrated_repository, backend="triton", triton_url=triton.urls.grpc, parse_workers=1
        )
        with (
            TestClient(create_app(settings), raise_server_exceptions=False) as theirs,
            TestClient(
                create_app(gateway_settings(calibrated_repository)), raise_server_exceptions=False
            ) as ours,
        ):
            yield ours, theirs


def test_backends_agree_on_trust(pair: tuple[TestClient, TestClient], shapes: tuple) -> None:
    ours, theirs = pair
    assert theirs.get("/readyz").json()["checks"]["backend"]["kind"] == "triton"
    data = require(MESHES / "bunny.ply").read_bytes()
    for query in ("", "?up_axis=auto"):
        for model in ("embed", "classify"):
            a = ours.post(f"/v1/{model}{query}", files={"file": ("b.ply", data)}).json()
            b = theirs.post(f"/v1/{model}{query}", files={"file": ("b.ply", data)}).json()
            assert b["ood_score"] == pytest.approx(a["ood_score"], rel=RTOL)
            assert b["in_distribution"] == a["in_distribution"]
            assert b["receipt"].get("up_axis") == a["receipt"].get("up_axis")
            if query:
                for axis, score in a["receipt"]["up_axis_scores"].items():
                    assert b["receipt"]["up_axis_scores"][axis] == pytest.approx(score, rel=RTOL, abs=1e-6)
            if model == "classify":
                pa = {p["label"]: p["probability"] for p in a["predictions"]}
                pb = {p["label"]: p["probability"] for p in b["predictions"]}
                assert pa.keys() == pb.keys() and max(abs(pa[k] - pb[k]) for k in pa) < 1e-4
    body = {"items": [{"points": p.tolist()} for p in shapes[0][:2]]}
    a_items = ours.post("/v1/classify:batch", json=body).json()["items"]
    b_items = theirs.post("/v1/classify:batch", json=body).json()["items"]
    for x, y in zip(a_items, b_items, strict=True):
        assert y["result"]["ood_score"] == pytest.approx(x["result"]["ood_score"], rel=RTOL)
