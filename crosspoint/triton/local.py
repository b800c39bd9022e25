"""`crosspoint triton up|down|status`: a foreground Triton for local use, and its handle.

`up` writes a small state file (keyed by the HTTP port) so `down` from another terminal can ask the
foreground process to stop, which then stops tritonserver the graceful way.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crosspoint.triton.server import TritonServer


def state_path(http_port: int) -> Path:
    return Path(tempfile.gettempdir()) / f"crosspoint-triton-{http_port}.json"


def serve_foreground(
    model_repository: Path,
    http_port: int,
    grpc_port: int,
    metrics_port: int,
    timeout: float,
    poll_seconds: int,
    echo: Callable[[str], None],
) -> int:
    """Run until Ctrl-C, SIGTERM (`down`) or the server's own exit; returns a process exit code."""
    server = TritonServer.start(
        model_repository,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        timeout=timeout,
        poll_seconds=poll_seconds,
    )
    state = state_path(http_port)
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        state.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "server_pid": server.pid,
                    "grpc": server.urls.grpc,
                    "http": server.urls.http,
                    "repository": str(model_repository),
                }
            )
        )
        echo(f"Triton ready: grpc {server.urls.grpc}  http {server.urls.http}  metrics {server.urls.metrics}")
        echo(f"log {server.log_path}; Ctrl-C or `crosspoint triton down --http-port {http_port}` stops it")
        while server.is_running():
            time.sleep(0.5)
        echo(f"tritonserver exited on its own ({server.process.returncode}):\n{server.log_tail()}")
        return 1
    except KeyboardInterrupt:
        echo("stopping Triton ...")
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second `down` must not cut the shutdown short
        try:
            server.stop()
        finally:
            signal.signal(signal.SIGTERM, previous)
            with contextlib.suppress(OSError):
                state.unlink()


def stop_foreground(http_port: int, timeout: float = 60.0) -> str:
    """Signal the `up` process serving `http_port` and wait for it to finish stopping."""
    state = state_path(http_port)
    try:
        pid = int(json.loads(state.read_text())["pid"])
    except (OSError, ValueError, KeyError) as error:
        raise RuntimeError(
            f"no `crosspoint triton up` recorded for HTTP port {http_port} ({state})"
        ) from error
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        state.unlink(missing_ok=True)
        return f"process {pid} was already gone; removed {state}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return f"stopped Triton (process {pid})"
        time.sleep(0.2)
    raise RuntimeError(f"process {pid} still running after {timeout:.0f} s")


def server_status(http_url: str) -> dict[str, Any]:
    """Liveness, readiness and each model's state, from the server's HTTP endpoint."""
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(http_url, connection_timeout=2.0, network_timeout=5.0)
    try:
        try:
            live = bool(client.is_server_live())
        except Exception as error:
            return {"url": http_url, "live": False, "ready": False, "models": [], "error": str(error)}
        return {
            "url": http_url,
            "live": live,
            "ready": bool(client.is_server_ready()),
            "models": [
                {
                    "name": m["name"],
                    "version": m.get("version", ""),
                    "state": m.get("state", ""),
                    "reason": m.get("reason", ""),
                }
                for m in client.get_model_repository_index()
            ],
        }
    finally:
        client.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An exited `up` whose parent has not reaped it yet is a zombie: finished, as far as we care.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
