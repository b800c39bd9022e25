"""`crosspoint embed|classify|segment` through typer's runner against the real gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crosspoint.cli import app
from tests.live_server import free_port

from .conftest import MESHES

runner = CliRunner()


def test_embed_json_for_machines(gateway_url: str) -> None:
    result = runner.invoke(
        app,
        [
            "embed",
            str(MESHES / "bunny.ply"),
            str(MESHES / "cube.glb"),
            "--url",
            gateway_url,
            "--json",
            "--num-points",
            "256",
        ],
    )
    assert result.exit_code == 0, result.output
    documents = json.loads(result.stdout)
    assert [Path(d["file"]).name for d in documents] == ["bunny.ply", "cube.glb"]
    assert all(len(d["embedding"]) == 2048 and d["receipt"]["num_points"] == 256 for d in documents)


def test_classify_table_for_people(gateway_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CROSSPOINT_URL", gateway_url)  # the default URL comes from the environment
    result = runner.invoke(app, ["classify", str(MESHES / "teapot.stl"), "--top-k", "2", "--up-axis", "z"])
    assert result.exit_code == 0, result.output
    assert "teapot.stl" in result.stdout and "probability" in result.stdout
    assert result.stdout.count("0.") >= 2  # two probabilities printed


def test_segment_table_names_the_category(gateway_url: str) -> None:
    result = runner.invoke(
        app, ["segment", str(MESHES / "cube.glb"), "--category", "Table", "--url", gateway_url]
    )
    assert result.exit_code == 0, result.output
    assert "Table" in result.stdout and "256" in result.stdout


def test_a_failed_file_prints_the_servers_message_and_exits_1(gateway_url: str) -> None:
    result = runner.invoke(
        app, ["embed", str(MESHES / "empty.obj"), str(MESHES / "cube.glb"), "--url", gateway_url, "--json"]
    )
    assert result.exit_code == 1
    assert "empty.obj" in result.stderr and "422 empty_geometry" in result.stderr
    documents = json.loads(result.stdout)  # the good file is still answered
    assert documents[0]["error"]["code"] == "empty_geometry" and len(documents[1]["embedding"]) == 2048


def test_unreachable_gateway_exits_2() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["classify", str(MESHES / "cube.glb"), "--url", url])
    assert result.exit_code == 2 and "cannot reach" in result.stderr


def test_missing_file_is_a_usage_error() -> None:
    result = runner.invoke(app, ["embed", "/nonexistent/shape.ply"])
    assert result.exit_code == 2


def test_registering_the_commands_imports_nothing_heavy() -> None:
    """The root CLI imports clients.cli on every start: the SDK, gRPC, numpy and torch wait for a command."""
    import subprocess
    import sys

    script = (
        "import sys, typer\n"
        "from clients.cli import register\n"
        "register(typer.Typer())\n"
        "print(sorted(m for m in ('httpx', 'numpy', 'tritonclient', 'grpc', 'torch', 'pyarrow', 'trimesh')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
