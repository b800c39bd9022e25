"""Helpers for tests that need a real Triton (gateway, batch client, the harness's own tests).

    from crosspoint.triton.testing import running_triton

    @pytest.fixture(scope="session")
    def triton():
        with running_triton("model_repository") as server:
            yield server          # server.urls.grpc / .http, server.log_tail()

Tests using it should carry `@pytest.mark.triton`; without nvidia-pytriton they are skipped.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crosspoint.triton.server import TritonServer, TritonStartError, find_distribution


def tritonserver_available() -> bool:
    if importlib.util.find_spec("pytriton") is None:
        return False
    try:
        find_distribution()
    except TritonStartError:
        return False
    return True


def require_tritonserver() -> None:
    """Skip the calling test when this environment has no tritonserver binary."""
    if not tritonserver_available():
        import pytest

        pytest.skip(
            "needs the tritonserver binary from nvidia-pytriton (pip install 'crosspoint-serve[triton]')"
        )


@contextmanager
def running_triton(model_repository: str | Path, **options: Any) -> Iterator[TritonServer]:
    """A started server on `model_repository` for the duration of the block; stopped (no orphans) after.

    `options` go to `TritonServer.start` (ports, timeout, model_control_mode, poll_seconds, ...).
    """
    require_tritonserver()
    server = TritonServer.start(model_repository, **options)
    try:
        yield server
    finally:
        server.stop()
