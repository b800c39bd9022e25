"""`crosspoint export` and `crosspoint validate-repository` (a PointNet checkpoint: no kNN, fast)."""

from __future__ import annotations

from pathlib import Path

import torch
from typer.testing import CliRunner

from crosspoint import checkpoint
from crosspoint.cli import app
from crosspoint.models import create_model
from export import repository


def test_export_then_validate(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "pointnet.safetensors"
    checkpoint.save(path, create_model("pointnet").eval(), {"preprocess": {"num_points": 256}})
    target = tmp_path / "repo"
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["export", str(path), "--repository", str(target), "--parity-shapes", "2", "--max-batch-size", "4"],
    )
    assert result.exit_code == 0, result.output
    assert "embed v1" in result.output
    metadata = repository.read_model_metadata(target, "embed")
    assert (metadata.embedding_dim, metadata.k, metadata.min_points) == (1024, 0, 1)
    assert "max_batch_size: 4" in (target / "embed" / "config.pbtxt").read_text()

    result = runner.invoke(app, ["validate-repository", str(target)])
    assert result.exit_code == 0 and "valid (embed)" in result.output, result.output

    (target / "embed" / "config.pbtxt").write_text("name: [")
    result = runner.invoke(app, ["validate-repository", str(target)])
    assert result.exit_code == 1 and "embed/config.pbtxt" in result.output

    result = runner.invoke(app, ["export", str(path), "--repository", str(target), "--models", "segment"])
    assert result.exit_code == 1 and "can serve" in result.output
