"""Reload follows the repository both ways: a new version swaps in, a deleted or broken newest version
falls back to the newest one that loads, and a failed load shows in /readyz, /metrics and /v1/models
(without paths), all while requests keep being answered."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from server.app import create_app
from tests.server.helpers import gateway_settings

Shapes = tuple[list[np.ndarray], list[str]]


def publish(repo: Path, version: str, source: str = "1", corrupt: bool = False) -> None:
    """A version published as export does: written beside the model, then renamed into place."""
    staging = repo / "embed" / f".staging-{version}"
    shutil.copytree(repo / "embed" / source, staging)
    if corrupt:
        (staging / "model.onnx").write_bytes(b"\x08\x07not a protobuf" * 100)
    os.rename(staging, repo / "embed" / version)


def test_reload_follows_the_repository_both_ways(repository: Path, tmp_path: Path, shapes: Shapes) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(repository, repo)
    app = create_app(gateway_settings(repo, parse_workers=1, models=["embed"]))
    points = {"points": shapes[0][0].tolist()}
    answers: list[tuple[int, str]] = []
    stop = threading.Event()
    with TestClient(app, raise_server_exceptions=False) as client:

        def reload() -> None:
            client.portal.call(app.state.backend.reload)  # what the poller does every reload_interval_s

        def card() -> dict[str, Any]:
            body: dict[str, Any] = client.get("/v1/models/embed").json()
            return body

        def traffic() -> None:
            while not stop.is_set():
                response = client.post("/v1/embed", json=points)
                answers.append((response.status_code, response.json().get("version", response.text)))

        load = threading.Thread(target=traffic)
        load.start()
        try:
            publish(repo, "2")
            reload()
            assert card()["version"] == "2"

            publish(repo, "3", corrupt=True)  # the newest version is broken: 2 keeps serving
            reload()
            reload()  # the same broken files are not retried (nor counted) again
            body = card()
            assert body["version"] == "2"
            assert [s["status"] for s in body["version_status"]] == ["available", "serving", "failed"]
            ready = client.get("/readyz")
            assert ready.status_code == 200
            failure = ready.json()["checks"]["load_failures"]["embed"]["3"]
            assert (
                "failed to load" in failure
                and str(repo) not in ready.text
                and "/model.onnx" not in ready.text
            )
            metrics = client.get("/metrics").text
            assert 'crosspoint_model_load_failures_total{model="embed"} 1.0' in metrics

            shutil.rmtree(repo / "embed" / "2")  # the served version is deleted: back to 1
            reload()
            body = card()
            assert (body["version"], body["versions"]) == ("1", ["1", "3"])

            shutil.rmtree(repo / "embed" / "3")  # the failure goes with its files
            reload()
            assert "embed" not in client.get("/readyz").json()["checks"]["load_failures"]

            publish(repo, "4")
            reload()
            assert card()["version_status"] == [
                {"version": "1", "status": "available", "error": None},
                {"version": "4", "status": "serving", "error": None},
            ]
            seen = len(answers)
            while len(answers) < seen + 2:
                stop.wait(0.05)
        finally:
            stop.set()
            load.join(60)
    assert answers and all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200]
    order = [version for _, version in answers]
    assert set(order) <= {"1", "2", "4"} and order[-1] == "4"


def test_a_broken_newest_version_at_start_falls_back(repository: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(repository, repo)
    publish(repo, "2", corrupt=True)
    with TestClient(create_app(gateway_settings(repo, parse_workers=1, models=["embed"]))) as client:
        assert client.get("/readyz").status_code == 200
        models = client.get("/v1/models").json()["models"]
        assert [(m["name"], m["version"]) for m in models] == [("embed", "1")]
        shutil.rmtree(repo / "embed" / "1")  # nothing left that loads: not ready, and says why
        client.portal.call(client.app.state.backend.reload)  # type: ignore[attr-defined]
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "embed" in ready.json()["checks"]["missing_models"]
        assert str(repo) not in ready.text
        error = client.post("/v1/embed", json={"points": [[0, 0, 0]] * 40}).json()["error"]
        assert error["code"] == "model_unavailable" and str(repo) not in error["message"]
