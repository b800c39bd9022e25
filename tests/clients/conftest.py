"""Real servers for the client tests: a tiny exported repository, the gateway on it, Triton on it.

The repository is exported by `tests.model_repositories` from random-weight checkpoints (DGCNN
k=10 at 512 points for embed/classify, the part-seg net k=10 at 256 points for segment): the real
graphs and metadata, small enough to serve on two shared cores.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from crosspoint.data.prepared import shared_data_dir
from tests.live_server import serve_in_thread
from tests.model_repositories import export_repository, make_checkpoints

DATA = shared_data_dir()
MODELNET = DATA / "modelnet40_partial" / "modelnet40_partial_2048.npz"
MESHES = DATA / "meshes"


def build_tiny_repository(root: Path) -> Path:
    repository = root / "model_repository"
    export_repository(
        make_checkpoints(root, classify_points=512, segment_points=256), repository, parity_shapes=2
    )
    return repository


@pytest.fixture(scope="session")
def client_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_repository(tmp_path_factory.mktemp("client_repo"))


@pytest.fixture(scope="session")
def gateway_url(client_repository: Path) -> Iterator[str]:
    """The real gateway app (ONNX Runtime in-process) under uvicorn on a free loopback port."""
    from server.app import create_app
    from server.core.config import Settings

    settings = Settings(
        model_repository=client_repository,
        parse_workers=1,
        reload_interval_s=0,
        log_format="text",
        log_level="WARNING",
        data_dir=client_repository.parent / "collections",
    )
    with serve_in_thread(create_app(settings), timeout=120) as url:
        yield url


@pytest.fixture(scope="session")
def triton_server(client_repository: Path) -> Iterator[object]:
    from crosspoint.triton.testing import running_triton

    with running_triton(client_repository, timeout=180) as server:
        yield server


def write_modelnet_files(out: Path, rows: np.ndarray | None = None) -> list[Path]:
    """ModelNet40 rows as `<class>/<shape_id>.npy` float32 files (distinct points only)."""
    data = np.load(MODELNET)
    points, counts, ids = data["points"], data["n_points"], data["shape_ids"]
    classes = data["class_names"][data["labels"]]
    written = []
    for i in range(len(ids)) if rows is None else rows:
        folder = out / str(classes[i])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{ids[i]}.npy"
        np.save(path, points[i, : counts[i]].astype(np.float32))
        written.append(path)
    return written


@pytest.fixture(scope="session")
def modelnet_subset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 40th shape (305 files over all 40 classes) for the default suite."""
    root = tmp_path_factory.mktemp("modelnet_subset")
    write_modelnet_files(root, np.arange(0, 12179, 40))
    return root
