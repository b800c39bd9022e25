"""Model reload: a new version exported while requests run is swapped in with no failed request."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient

from server.app import create_app
from tests.model_repositories import make_checkpoints
from tests.server.helpers import REPO_ROOT, gateway_settings


def test_new_version_swaps_in_without_failures(repository: Path, tmp_path: Path, shapes: tuple) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(repository, repo)
    (new_checkpoint, _) = make_checkpoints(tmp_path / "v2", seed=1)
    points = {"points": shapes[0][0].tolist()}
    app = create_app(gateway_settings(repo, reload_interval_s=0.2, parse_workers=1))
    seen: list[tuple[int, str, float]] = []
    stop = threading.Event()
    with TestClient(app, raise_server_exceptions=False) as client:

        def loop() -> None:
            while not stop.is_set():
                response = client.post("/v1/embed", json=points)
                body = response.json()
                seen.append(
                    (response.status_code, body.get("version", ""), (body.get("embedding") or [0.0])[0])
                )

        worker = threading.Thread(target=loop)
        worker.start()
        try:
            code = (
                "from export import export_checkpoint; "
                f"export_checkpoint({str(new_checkpoint)!r}, {str(repo)!r}, models=['embed'], parity_shapes=1)"
            )
            subprocess.run(
                [sys.executable, "-c", code], check=True, cwd=REPO_ROOT, timeout=300, capture_output=True
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                versions = {m["name"]: m["version"] for m in client.get("/v1/models").json()["models"]}
                if versions["embed"] == "2":
                    break
                time.sleep(0.1)
            count = len(seen)
            while len(seen) < count + 3:  # a few more requests on the new version
                time.sleep(0.05)
        finally:
            stop.set()
            worker.join(60)
        assert versions == {"embed": "2", "classify": "1", "segment": "1"}
        card = client.get("/v1/models/embed").json()
        assert card["versions"] == ["1", "2"]
        assert 'crosspoint_model_reloads_total{model="embed"} 1.0' in client.get("/metrics").text
    assert all(status == 200 for status, _, _ in seen), [s for s in seen if s[0] != 200]
    order = [version for _, version, _ in seen]
    assert order[0] == "1" and order[-1] == "2"
    assert order == sorted(order)  # never back to the old version once the new one served
    v1 = {value for _, version, value in seen if version == "1"}
    v2 = {value for _, version, value in seen if version == "2"}
    assert len(v1) == len(v2) == 1 and v1 != v2  # other weights, and each version answers the same every time
