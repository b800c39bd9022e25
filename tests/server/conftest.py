"""Session fixtures: one real model repository exported from tiny random-weight checkpoints, and
one running app (lifespan, parse workers, ONNX Runtime backend) on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from tests.model_repositories import export_repository, make_checkpoints
from tests.server.helpers import gateway_settings, modelnet_rows


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_checkpoints(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="session")
def repository(tmp_path_factory: pytest.TempPathFactory, checkpoints: list[Path]) -> Path:
    """embed, classify and segment, version 1 each, written by the real exporter."""
    root = tmp_path_factory.mktemp("model_repository") / "repo"
    export_repository(checkpoints, root)
    return root


@pytest.fixture(scope="session")
def calibrated_repository(tmp_path_factory: pytest.TempPathFactory, repository: Path) -> Path:
    """The same versions with calibration.json + ood.npz (fitted on a small ModelNet40 slice)."""
    from tests.server.trust_helpers import calibrated_copy

    return calibrated_copy(repository, tmp_path_factory.mktemp("calibrated") / "repo")


@pytest.fixture(scope="session")
def client(repository: Path) -> Iterator[TestClient]:
    with TestClient(create_app(gateway_settings(repository)), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="session")
def shapes() -> tuple[list[np.ndarray], list[str]]:
    return modelnet_rows(4)
