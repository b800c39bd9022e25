"""The checkpoint format: bit-exact round trip, self-describing JSON, no pickle, tamper detection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from crosspoint import checkpoint
from crosspoint.models import create_model


def test_round_trip_is_bit_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("dgcnn", k=15, num_classes=40)
    model.train()
    model(torch.randn(4, 64, 3))  # move BN running stats away from their init
    path = tmp_path / "ckpt.safetensors"
    doc = checkpoint.save(
        path, model, {"class_names": [f"c{i}" for i in range(40)], "training": {"epochs": 1}}
    )
    loaded = checkpoint.load(path)
    assert loaded.model_name == "dgcnn"
    assert loaded.model.config == model.config
    assert loaded.class_names == [f"c{i}" for i in range(40)]
    assert loaded.config["weights_sha256"] == doc["weights_sha256"]
    original = model.state_dict()
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, original[name]), name
        assert tensor.dtype == original[name].dtype
    model.eval()
    x = torch.randn(2, 128, 3)
    with torch.no_grad():
        assert torch.equal(model(x), loaded.model(x))


def test_config_readable_without_torch_model(tmp_path: Path) -> None:
    model = create_model("pointnet")
    path = tmp_path / "p.safetensors"
    checkpoint.save(path, model, {"preprocess": {"num_points": 2048, "up_axis": "z"}})
    doc = checkpoint.read_config(path)
    assert doc["format"] == checkpoint.FORMAT
    assert doc["model"] == {
        "name": "pointnet",
        "args": {"emb_dims": 1024, "proj_dim": 256, "num_classes": 0, "head": "linear", "dropout": 0.5},
    }
    assert doc["preprocess"]["num_points"] == 2048
    json.dumps(doc)  # the whole document is plain JSON


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    model = create_model("pointnet")
    path = tmp_path / "p.safetensors"
    checkpoint.save(path, model)
    metadata = {checkpoint.METADATA_KEY: json.dumps(checkpoint.read_config(path))}
    state = load_file(str(path))
    state["mlp.0.0.weight"][0, 0] += 1.0
    save_file(state, str(path), metadata=metadata)
    with pytest.raises(checkpoint.CheckpointError, match="sha256"):
        checkpoint.load(path)


def test_foreign_files_are_refused_without_unpickling(tmp_path: Path) -> None:
    pickled = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(1)}, pickled)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(pickled)
    from safetensors.torch import save_file

    bare = tmp_path / "bare.safetensors"
    save_file({"a": torch.zeros(1)}, str(bare))
    with pytest.raises(checkpoint.CheckpointError, match="document"):
        checkpoint.read_config(bare)


def test_model_not_from_registry_is_refused(tmp_path: Path) -> None:
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.save(tmp_path / "x.safetensors", torch.nn.Linear(2, 2))
