"""`crosspoint serve`: options, and a real server process that shuts down gracefully on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from crosspoint.cli import app as cli
from tests.live_server import free_port
from tests.server.helpers import MESHES, REPO_ROOT, require


def test_serve_help_lists_the_options() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for option in ("--host", "--port", "--backend", "--triton-url", "--model-repository", "--workers"):
        assert option in result.output


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
def test_serve_finishes_in_flight_requests_on_sigterm(repository: Path) -> None:
    port = free_port()
    env = {**os.environ, "CROSSPOINT_RELOAD_INTERVAL_S": "0"}
    command = [sys.executable, "-m", "crosspoint.cli", "serve", "--port", str(port), "--parse-workers", "1",
               "--model-repository", str(repository)]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("the server never became ready")
        workers = children(process.pid)
        assert workers
        data = require(MESHES / "chair_model.obj").read_bytes()
        answers: list[httpx.Response] = []
        slow = threading.Thread(
            target=lambda: answers.append(
                httpx.post(f"{url}/v1/segment?num_points=1024", files={"file": ("c.obj", data)}, timeout=120)
            )
        )
        slow.start()
        time.sleep(0.5)  # in flight: parsed or being run 16 times
        process.send_signal(signal.SIGTERM)
        slow.join(120)
        assert answers and answers[0].status_code == 200, answers
        # uvicorn re-raises the signal once it has shut down gracefully: exit by SIGTERM is the normal end
        assert process.wait(60) in (0, -signal.SIGTERM)
        assert not any(running(pid) for pid in workers)
        log = process.stdout.read().decode() if process.stdout else ""
        lines = log.splitlines()
        shutting = next(i for i, line in enumerate(lines) if '"Shutting down"' in line)
        finished = next(
            i for i, line in enumerate(lines) if '"/v1/segment"' in line and '"status": 200' in line
        )
        stopped = next(i for i, line in enumerate(lines) if '"gateway stopped"' in line)
        assert shutting < finished < stopped  # the request was in flight when SIGTERM came, and it finished
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
