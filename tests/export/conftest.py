"""Small random-weight checkpoints and one exported repository shared by the export tests.

The checkpoints are small where it does not matter (k=10, 512 points, emb_dims 256 for the part-seg
net) and real where it does (ModelNet40 / ShapeNetPart shapes, BN statistics and scales moved away
from their init, some BN scales negative, so folding is really exercised).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from crosspoint import checkpoint
from crosspoint.models import create_model
from export.parity import MODELNET, data_root

PARITY_SHAPES = 4


def randomize_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Trained-looking BN: running stats off their init, scales of both signs."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            assert module.running_mean is not None and module.running_var is not None
            with torch.no_grad():
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=generator) * 1.5 + 0.5)
                module.weight.copy_(torch.randn(n, generator=generator))
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)


def modelnet_class_names() -> list[str]:
    with np.load(data_root() / MODELNET) as data:
        return [str(name) for name in data["class_names"]]


def make_classifier(path: Path, **overrides: object) -> Path:
    torch.manual_seed(0)
    args = {"k": 10, "num_classes": 40, **overrides}
    model: Any = create_model("dgcnn", **args)
    randomize_batchnorm(model)
    checkpoint.save(
        path,
        model,
        {
            "class_names": modelnet_class_names(),
            "preprocess": {"num_points": 512, "up_axis": "y", "normalization": "unit_sphere"},
        },
    )
    return path


def make_partseg(path: Path) -> Path:
    torch.manual_seed(1)
    model: Any = create_model("dgcnn_partseg", k=10, emb_dims=256)
    randomize_batchnorm(model, seed=1)
    with torch.no_grad():  # a transform that is not the identity, so the bmm path matters
        model.transform_net.transform.weight.normal_(0, 0.01)
    checkpoint.save(
        path, model, {"preprocess": {"num_points": 512, "up_axis": "y", "normalization": "unit_sphere"}}
    )
    return path


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {
        "classifier": make_classifier(root / "cls.safetensors"),
        "partseg": make_partseg(root / "seg.safetensors"),
    }


@pytest.fixture(scope="session")
def exported(tmp_path_factory: pytest.TempPathFactory, checkpoints: dict[str, Path]) -> object:
    """One export of both checkpoints (embed, classify, segment v1); tests copy it before changing it."""
    from export import export_checkpoints

    repository = tmp_path_factory.mktemp("exported") / "model_repository"
    return export_checkpoints(
        [checkpoints["classifier"], checkpoints["partseg"]], repository, parity_shapes=PARITY_SHAPES
    )


@pytest.fixture
def repository_copy(exported: object, tmp_path: Path) -> Path:
    """A private copy of the exported repository, free to break."""
    target = tmp_path / "model_repository"
    shutil.copytree(exported.repository, target)  # type: ignore[attr-defined]
    return target
