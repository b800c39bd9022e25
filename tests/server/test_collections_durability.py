"""Collections across restarts and crashes, and across embed model versions.

- kill -9 of a real `crosspoint serve` process (and its parse workers) while clients add concurrently:
  after a restart on the same data dir every acknowledged item is there and the collection works.
- A collection stays on the embed version it was built with when a newer one is served, says so in
  every answer, and moves only by `:reembed`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from fastapi.testclient import TestClient

from server.app import create_app
from tests.live_server import free_port
from tests.model_repositories import make_checkpoints
from tests.server.helpers import REPO_ROOT, gateway_settings


@contextmanager
def serve_process(repository: Path, data_dir: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {
        **os.environ,
        "CROSSPOINT_RELOAD_INTERVAL_S": "0",
        "CROSSPOINT_DATA_DIR": str(data_dir),
        "CROSSPOINT_MODELS": '["embed"]',
        "CROSSPOINT_LOG_LEVEL": "WARNING",
        "CROSSPOINT_ORT_INTRA_OP_THREADS": "1",
    }
    command = [sys.executable, "-m", "crosspoint.cli", "serve", "--port", str(port), "--parse-workers", "1",
               "--model-repository", str(repository)]  # fmt: skip
    # its own process group: SIGKILL reaches the parse workers too, as a machine crash would
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, "the server exited while starting"
            assert time.monotonic() < deadline, "the server never became ready"
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def test_kill_9_during_concurrent_adds_loses_only_unacknowledged(
    repository: Path, tmp_path: Path, shapes: tuple
) -> None:
    data_dir = tmp_path / "data"
    points = shapes[0]
    acknowledged: dict[str, list[float] | None] = {}
    lock = threading.Lock()
    with serve_process(repository, data_dir) as (url, process):
        dim = httpx.post(f"{url}/v1/collections", json={"name": "crash"}).json()["dim"]
        stop = threading.Event()

        def writer(worker: int) -> None:
            rng = np.random.default_rng(worker)
            with httpx.Client(base_url=url, timeout=30) as client:
                i = 0
                while not stop.is_set():
                    item_id = f"w{worker}-{i}"
                    body: dict[str, object] = {"id": item_id, "label": f"w{worker}"}
                    embedding = None
                    if i % 2:  # a shape through the parse worker and the model
                        body["points"] = points[i % len(points)].tolist()
                    else:  # an embedding: no model call, many more commits per second
                        embedding = rng.standard_normal(dim).tolist()
                        body["embedding"] = embedding
                    try:
                        response = client.post("/v1/collections/crash/items", json=body)
                    except httpx.TransportError:
                        return  # the server is gone
                    if response.status_code == 201:
                        with lock:
                            acknowledged[item_id] = embedding
                    i += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while len(acknowledged) < 40 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)  # mid-flight: requests are being parsed, embedded, committed
        process.wait(30)
        stop.set()
        for thread in threads:
            thread.join(30)
    assert len(acknowledged) >= 40

    with serve_process(repository, data_dir) as (url, _), httpx.Client(base_url=url, timeout=30) as client:
        info = client.get("/v1/collections/crash").json()
        assert info["count"] >= len(acknowledged)  # requests in flight may have committed unanswered
        for item_id in acknowledged:
            assert client.get(f"/v1/collections/crash/items/{item_id}").status_code == 200, item_id
        for item_id, embedding in list(acknowledged.items())[:20]:
            if embedding is not None:
                found = client.post(
                    "/v1/collections/crash/search", json={"embedding": embedding}, params={"k": 1}
                )
                assert found.json()["matches"][0]["id"] == item_id
        assert (
            client.post(
                "/v1/collections/crash/items", json={"id": "after", "points": points[0].tolist()}
            ).status_code
            == 201
        )
        assert client.get("/v1/collections/crash").json()["count"] == info["count"] + 1


def test_collection_keeps_its_version_until_reembed(repository: Path, tmp_path: Path, shapes: tuple) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(repository, repo)
    points = shapes[0]
    settings = gateway_settings(repo, data_dir=tmp_path / "data", reload_interval_s=0.2, parse_workers=1)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert client.post("/v1/collections", json={"name": "pinned"}).json()["version"] == "1"
        for i, p in enumerate(points):
            assert (
                client.post(
                    "/v1/collections/pinned/items", json={"id": f"s{i}", "points": p.tolist()}
                ).status_code
                == 201
            )
        before = client.get("/v1/collections/pinned/items/s0", params={"include_embedding": True}).json()

        from export import export_checkpoint

        (new_checkpoint, _) = make_checkpoints(tmp_path / "v2", seed=1)
        export_checkpoint(str(new_checkpoint), str(repo), models=["embed"], parity_shapes=1)
        deadline = time.monotonic() + 60
        while client.get("/v1/models/embed").json()["version"] != "2":
            assert time.monotonic() < deadline, "version 2 was never served"
            time.sleep(0.1)

        info = client.get("/v1/collections/pinned").json()
        assert (info["version"], info["served_version"]) == ("1", "2")
        # answers from its own vectors, saying which version
        by_id = client.post("/v1/collections/pinned/search", json={"id": "s0"}).json()
        assert by_id["version"] == "1" and len(by_id["matches"]) == len(points) - 1
        # a new embedding would come from version 2: refused, never mixed in
        refused = client.post("/v1/collections/pinned/search", json={"points": points[0].tolist()})
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "collection_version_mismatch")
        add = client.post("/v1/collections/pinned/items", json={"id": "new", "points": points[0].tolist()})
        assert add.status_code == 409

        moved = client.post("/v1/collections/pinned:reembed")
        assert moved.status_code == 200, moved.text
        assert (moved.json()["version"], moved.json()["count"]) == ("2", len(points))
        after = client.get("/v1/collections/pinned/items/s0", params={"include_embedding": True}).json()
        assert after["version"] == "2" and not np.allclose(after["embedding"], before["embedding"])
        for i, p in enumerate(points):
            found = client.post(
                "/v1/collections/pinned/search", json={"points": p.tolist()}, params={"k": 1}
            ).json()
            assert found["version"] == "2" and found["matches"][0]["id"] == f"s{i}"
