"""Small random-weight checkpoints and one exported repository shared by the export tests.

Built by `tests.model_repositories` (k=10, 512 points, emb_dims 256 for the part-seg net) with
trained-looking BN (statistics and scales moved away from their init, some scales negative), so
folding is really exercised; parity runs on real ModelNet40 / ShapeNetPart shapes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.model_repositories import export_repository, save_classifier, save_segmenter

PARITY_SHAPES = 4
NUM_POINTS = 512


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "classifier": save_classifier(
            root / "cls.safetensors", num_points=NUM_POINTS, seed=0, trained_looking=True
        ),
        "partseg": save_segmenter(
            root / "seg.safetensors", num_points=NUM_POINTS, seed=1, trained_looking=True, emb_dims=256
        ),
    }


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path]) -> object:
    """One export of both checkpoints (embed, classify, segment v1); tests copy it before changing it."""
    repository = tmp_path_factory.mktemp("exported") / "model_repository"
    return export_repository(
        [checkpoints["classifier"], checkpoints["partseg"]], repository, parity_shapes=PARITY_SHAPES
    )


@pytest.fixture
def repository_copy(exported: object, tmp_path: Path) -> Path:
    """A private copy of the exported repository, free to break."""
    target = tmp_path / "model_repository"
    shutil.copytree(exported.repository, target)  # type: ignore[attr-defined]
    return target
