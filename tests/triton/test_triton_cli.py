"""`crosspoint triton up|down|status`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crosspoint.cli import app
from crosspoint.triton.local import state_path
from crosspoint.triton.server import TritonServer, free_port
from crosspoint.triton.testing import require_tritonserver

from .conftest import build_repository

pytestmark = pytest.mark.triton


def test_status_lists_the_models_of_a_running_server(triton: TritonServer) -> None:
    result = CliRunner().invoke(app, ["triton", "status", "--url", triton.urls.http, "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["live"] and status["ready"]
    assert {m["name"]: m["state"] for m in status["models"]}["embed"] == "READY"


def test_status_of_nothing_exits_1() -> None:
    result = CliRunner().invoke(app, ["triton", "status", "--url", f"127.0.0.1:{free_port()}"])
    assert result.exit_code == 1
    assert "live=False" in result.output


def test_up_serves_in_the_foreground_until_down(tmp_path: Path) -> None:
    require_tritonserver()
    repository = build_repository(tmp_path / "repo", ["embed"])
    http, grpc, metrics = free_port(), free_port(), free_port()
    command = [sys.executable, "-m", "crosspoint.cli", "triton", "up", "--model-repository", str(repository),
               "--http-port", str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)]  # fmt: skip
    up = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while not state_path(http).exists():
            assert up.poll() is None and time.monotonic() < deadline, up.stdout.read() if up.stdout else ""
            time.sleep(0.2)
        server_pid = json.loads(state_path(http).read_text())["server_pid"]
        runner = CliRunner()
        assert runner.invoke(app, ["triton", "status", "--url", f"127.0.0.1:{http}"]).exit_code == 0
        down = runner.invoke(app, ["triton", "down", "--http-port", str(http)])
        assert down.exit_code == 0, down.output
        assert up.wait(timeout=60) == 0
        assert f"grpc 127.0.0.1:{grpc}" in (up.stdout.read() if up.stdout else "")
        assert not state_path(http).exists()
        assert not Path(f"/proc/{server_pid}").exists()
    finally:
        if up.poll() is None:
            up.kill()
