"""The Dockerfile and compose file, checked by reading (no Docker engine runs here)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
yaml = pytest.importorskip("yaml")
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(t for t in text.splitlines() if not t.lstrip().startswith("#")))
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
        for line in joined.splitlines()
        if line.strip()
    ]


INSTRUCTIONS = _instructions(DOCKERFILE)
FINAL_STAGE = INSTRUCTIONS[max(i for i, (op, _) in enumerate(INSTRUCTIONS) if op == "FROM") :]


def test_image_is_slim_python_311_and_runs_as_a_non_root_user() -> None:
    assert "python:3.11" in DOCKERFILE and "slim" in re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE)[1]
    users = [args for op, args in FINAL_STAGE if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    last_run = max(i for i, (op, _) in enumerate(FINAL_STAGE) if op == "RUN")
    assert FINAL_STAGE.index(("USER", users[-1])) > last_run  # nothing runs as root after the switch


def test_healthcheck_port_and_command() -> None:
    health = [args for op, args in FINAL_STAGE if op == "HEALTHCHECK"]
    assert health and "/healthz" in health[0] and ":8000" in health[0]
    assert ("EXPOSE", "8000") in FINAL_STAGE
    cmd = [args for op, args in FINAL_STAGE if op == "CMD"][-1]
    assert cmd.replace('"', "").replace(",", "") == "[crosspoint serve --host 0.0.0.0 --port 8000]"


def test_installs_only_the_serving_set() -> None:
    for op, args in INSTRUCTIONS:
        if op == "RUN" and "pip" in args:
            assert "[" not in args.split("pip", 1)[1].split("&&")[0], f"extras installed: {args}"
            words = args.replace("&&", " ").split()
            torch_words = [w for w in words if "torch" in w]
            # The only mention allowed is the check that torch is absent.
            assert not torch_words or (torch_words == ["torch"] and "! pip show torch" in args), args
    assert any("! pip show torch" in args for op, args in FINAL_STAGE if op == "RUN")


def test_image_installs_the_serving_lock_and_nothing_else() -> None:
    """Same bytes as the tested environment: the serving lock with hashes, then our package without deps."""
    runs = [args for op, args in INSTRUCTIONS if op == "RUN" and "pip install" in args]
    assert any(
        "--require-hashes" in r and "--no-deps" in r and "-r requirements/serve.lock" in r for r in runs
    )
    for run in runs:
        for command in run.split("&&"):
            if "pip install" in command:
                assert "--no-deps" in command and "--index-url" not in command, command
    assert ("COPY", "requirements/serve.lock ./requirements/serve.lock") in INSTRUCTIONS
    assert "/constraints.txt" not in DOCKERFILE  # the old hand-refreshed pins are gone


def test_serve_starts_without_torch() -> None:
    """The image has no torch: the CLI and the app factory must not import it."""
    script = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'torchvision'):\n"
        "            raise ImportError('torch is not in the image')\n"
        "sys.meta_path.insert(0, Block())\n"
        "from crosspoint.cli import app\n"
        "import server.app\n"
        "app(['serve', '--help'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--host" in done.stdout


def test_compose_triton_service() -> None:
    triton = COMPOSE["services"]["triton"]
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d{2}\.\d{2}-py3", triton["image"])
    command = triton["command"] if isinstance(triton["command"], list) else shlex.split(triton["command"])
    assert command[0] == "tritonserver" and "--model-repository=/models" in command
    assert any(v.endswith(":/models:ro") for v in triton["volumes"])
    device = triton["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1
    test = " ".join(triton["healthcheck"]["test"])
    assert "/v2/health/ready" in test and "localhost:8000" in test


def test_compose_gateway_service() -> None:
    gateway = COMPOSE["services"]["gateway"]
    assert gateway["build"] == "."
    env = gateway["environment"]
    assert env["CROSSPOINT_BACKEND"] == "triton" and env["CROSSPOINT_TRITON_URL"] == "triton:8001"
    assert gateway["depends_on"]["triton"]["condition"] == "service_healthy"
    assert "8000:8000" in gateway["ports"]
    assert "/healthz" in " ".join(gateway["healthcheck"]["test"])
    assert any(v.endswith(":/models:ro") for v in gateway["volumes"])


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignore = (ROOT / ".dockerignore").read_text().split()
    for op, args in INSTRUCTIONS:
        if op == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert f"!{source}" in ignore, source
