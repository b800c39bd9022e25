"""Config writing and the repository validator: broken configs and graph/config mismatches are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from export import validate_repository
from export.contract import model_spec
from export.onnx_export import ExportError, check_dynamic_axes
from export.triton_config import ConfigError, ServingOptions, build_config, parse_config


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


def _messages(repository: Path) -> str:
    return "\n".join(str(problem) for problem in validate_repository(repository))


def test_exported_repository_validates_with_torchscript(repository_copy: Path) -> None:
    assert validate_repository(repository_copy, torchscript=True) == []


def test_empty_or_missing_repository(tmp_path: Path) -> None:
    assert validate_repository(tmp_path) == []
    assert "not a directory" in _messages(tmp_path / "absent")


def test_written_configs_parse_with_tritons_schema() -> None:
    text = build_config(
        model_spec("segment"), ServingOptions(max_batch_size=8), {"k": 40, "num_points": 2048}
    )
    config = parse_config(text)
    assert (config.backend, config.max_batch_size, config.default_model_filename) == (
        "onnxruntime",
        8,
        "model.onnx",
    )
    assert [list(t.dims) for t in config.input] == [[-1, 3], [16]]
    assert list(config.output[0].dims) == [-1, 50]
    assert config.instance_group[0].kind == config.instance_group[0].KIND_CPU
    assert config.version_policy.latest.num_versions == 1
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8]
    assert config.parameters["k"].string_value == "40"
    with pytest.raises(ConfigError, match="max_batch_size"):
        build_config(model_spec("embed"), ServingOptions(max_batch_size=0), {})


def test_a_broken_config_is_reported_with_its_line_and_field(repository_copy: Path) -> None:
    _edit(repository_copy / "embed" / "config.pbtxt", "dims: [ -1, 3 ]", "dimz: [ -1, 3 ]")
    messages = _messages(repository_copy)
    assert (
        "embed/config.pbtxt" in messages
        and "dimz" in messages
        and "not a valid Triton ModelConfig" in messages
    )


def test_a_config_that_does_not_match_the_graph_is_reported(repository_copy: Path) -> None:
    _edit(repository_copy / "embed" / "config.pbtxt", "dims: [ 2048 ]", "dims: [ 1024 ]")
    messages = _messages(repository_copy)
    assert "embed/1/model.onnx: config.pbtxt vs graph: output 'embedding': dims [1024]" in messages
    assert "axis 1: 1024 vs 2048" in messages


@pytest.mark.parametrize(
    ("model", "old", "new", "expected"),
    [
        (
            "embed",
            "TYPE_FP32, dims: [ 256 ]",
            "TYPE_FP16, dims: [ 256 ]",
            "data_type TYPE_FP16, graph has TYPE_FP32",
        ),
        ("embed", 'name: "projection"', 'name: "proj"', "output: names ['embedding', 'proj']"),
        ("segment", "dims: [ -1, 50 ]", "dims: [ 2048, 50 ]", "fix axis 1 to 2048"),
        ("segment", "dims: [ 16 ]", "dims: [ 1, 16 ]", "have 2 axes"),
        ("classify", "max_batch_size: 32", "max_batch_size: 0", "max_batch_size: 0; must be > 0"),
        ("classify", 'backend: "onnxruntime"', 'backend: "tensorflow"', "backend: 'tensorflow'"),
        ("classify", 'name: "classify"', 'name: "classifier"', "differs from the directory name"),
    ],
)
def test_each_mismatch_names_its_field(
    repository_copy: Path, model: str, old: str, new: str, expected: str
) -> None:
    _edit(repository_copy / model / "config.pbtxt", old, new)
    assert expected in _messages(repository_copy)


def test_missing_or_wrong_files_are_reported(repository_copy: Path) -> None:
    labels = repository_copy / "classify" / "labels.txt"
    labels.write_text("\n".join(labels.read_text().splitlines()[:-1]) + "\n")
    (repository_copy / "embed" / "1" / "crosspoint.json").unlink()
    (repository_copy / "segment" / "1" / "model.onnx").write_bytes(b"not onnx")
    _edit(repository_copy / "segment" / "configs" / "gpu.pbtxt", "dims: [ 16 ]", "dims: [ 15 ]")
    messages = _messages(repository_copy)
    assert "classify/labels.txt: 39 labels for output 'logits' dims [40]" in messages
    assert "embed/1/crosspoint.json" in messages and "missing" in messages
    assert "segment/1/model.onnx: ONNX Runtime cannot load it" in messages
    assert "segment/configs/gpu.pbtxt: input/output differ" in messages


def test_a_graph_with_a_fixed_batch_axis_is_refused(tmp_path: Path) -> None:
    import onnx

    from crosspoint.models import create_model
    from export.graphs import build_graph

    model = create_model("pointnet").eval()
    path = tmp_path / "fixed.onnx"
    torch.onnx.export(
        build_graph(model, "embed"),
        (torch.randn(2, 64, 3),),
        str(path),
        input_names=["points"],
        output_names=["embedding", "projection"],
        dynamo=False,
    )
    with pytest.raises(ExportError, match="axis 0 \\(batch\\) was exported fixed as 2"):
        check_dynamic_axes(onnx.load(str(path)), model_spec("embed", embedding_dim=1024))
