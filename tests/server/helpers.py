"""Builders for the gateway tests: settings, shared data, and real servers (TestClient with the
lifespan, or uvicorn on a loopback port). The tiny repositories come from tests.model_repositories."""

from __future__ import annotations

import io
import os
import tempfile
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from server.core.config import Settings
from tests.live_server import serve_in_thread
from tests.model_repositories import NUM_POINTS as NUM_POINTS  # the gateway tests assert on it

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("CROSSPOINT_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
MESHES = SHARED_DATA / "meshes"
MODELNET = SHARED_DATA / "modelnet40_partial" / "modelnet40_partial_2048.npz"
# Collections' data dirs of the apps built here; removed when the test process ends.
_DATA_ROOT = tempfile.TemporaryDirectory(prefix="crosspoint-collections-")


def require(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data {path} is not here (set CROSSPOINT_SHARED_DATA)")
    return path


def gateway_settings(repository: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_repository": repository,
        "reload_interval_s": 0,
        "parse_workers": 2,
        "log_level": "WARNING",
        "ort_intra_op_threads": 1,
        "data_dir": tempfile.mkdtemp(dir=_DATA_ROOT.name),  # never the checkout's data/
    }
    values.update(overrides)
    return Settings(**values)


def modelnet_rows(count: int = 4) -> tuple[list[np.ndarray], list[str]]:
    """The first `count` test-split shapes (distinct points only), float32, with their class names."""
    with np.load(require(MODELNET)) as data:
        test_rows = np.flatnonzero(data["split"] == 1)[::600][:count]
        n_points = data["n_points"][test_rows]
        points = data["points"][test_rows]
        names = [str(data["class_names"][label]) for label in data["labels"][test_rows]]
    return [points[i, : n_points[i]].astype(np.float32) for i in range(len(test_rows))], names


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def live_server(app: Any, timeout: float = 60.0) -> AbstractContextManager[str]:
    """The app under a real uvicorn on a loopback port (lifespan included); yields the base URL."""
    return serve_in_thread(app, timeout=timeout, lifespan="on")
