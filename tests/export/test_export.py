"""export_checkpoint(s): layout, symbolic axes, reload parity on real shapes, versioning, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from crosspoint import checkpoint
from crosspoint.data import shapenetpart_meta as meta
from export import export_checkpoint, export_checkpoints, repository
from export.graphs import build_graph
from export.onnx_export import ExportError
from export.parity import ParityError, compare, parity_inputs
from tests.export.conftest import NUM_POINTS
from tests.model_repositories import save_classifier

EXPECTED_FILES = {"model.onnx", "model.pt", "crosspoint.json", "parity.json"}


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_export_writes_the_documented_layout(exported: Any) -> None:
    root = exported.repository
    assert set(exported.models) == {"embed", "classify", "segment"}
    for name, model in exported.models.items():
        assert model.version == 1
        assert model.directory == root / name / "1"
        assert {f.name for f in model.files} == EXPECTED_FILES
        assert {p.name for p in model.directory.iterdir()} == EXPECTED_FILES
        assert (root / name / "config.pbtxt").is_file() and (root / name / "configs" / "gpu.pbtxt").is_file()
        assert model.parity["passed"] and json.loads((model.directory / "parity.json").read_text())["passed"]
        assert set(model.parity["forms"]) == {"onnxruntime", "torchscript", "pytorch_rewrite"}
        assert model.seconds["onnx"] > 0 and model.seconds["parity"] > 0
    assert not [p for p in root.parent.iterdir() if "staging" in p.name]  # scratch removed


def test_onnx_batch_and_point_axes_are_symbolic(exported: Any) -> None:
    for name in ("embed", "classify", "segment"):
        graph = onnx.load(str(exported.repository / name / "1" / "model.onnx")).graph
        shapes = {
            v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*graph.input, *graph.output)
        }
        assert shapes["points"] == ["batch", "num_points", 3]
        for value in graph.output:
            assert shapes[value.name][0] == "batch"
    graph = onnx.load(str(exported.repository / "segment" / "1" / "model.onnx")).graph
    assert [d.dim_param or d.dim_value for d in graph.output[0].type.tensor_type.shape.dim] == [
        "batch",
        "num_points",
        50,
    ]
    ops = {node.op_type for node in graph.node}
    assert "TopK" in ops  # the kNN is matmul + topk with a constant k


def test_reloaded_files_match_the_training_form_on_real_shapes(
    exported: Any, checkpoints: dict[str, Path]
) -> None:
    """Other batch sizes and point counts than both the trace and the export's own parity run."""
    model = checkpoint.load(checkpoints["classifier"]).model
    inputs = parity_inputs("classify", 384, 3).arrays
    reference = build_graph(model, "classify", "reference")
    with torch.no_grad():
        logits, embedding = (t.numpy() for t in reference(torch.from_numpy(inputs["points"])))
    session = ort.InferenceSession(
        str(exported.repository / "classify" / "1" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    got = dict(zip(["logits", "embedding"], session.run(["logits", "embedding"], inputs), strict=True))
    report = compare({"logits": logits, "embedding": embedding}, got, {})
    assert report["passed"] and report["top1_agreement"] == 1.0, report
    scripted = torch.jit.load(str(exported.repository / "classify" / "1" / "model.pt"))
    with torch.no_grad():
        one = scripted(torch.from_numpy(inputs["points"][:1]))
    assert np.abs(one[0].numpy() - logits[:1]).max() < 1e-4


def test_metadata_carries_preprocessing_names_and_provenance(
    exported: Any, checkpoints: dict[str, Path]
) -> None:
    root = exported.repository
    classify = repository.read_model_metadata(root, "classify")
    assert classify.version == 1 and classify.model == "classify"
    assert (classify.num_points, classify.k, classify.min_points, classify.up_axis) == (
        512,
        10,
        10,
        "y",
    )
    assert classify.class_names[:2] == ["airplane", "bathtub"] and len(classify.class_names) == 40
    assert (root / "classify" / "labels.txt").read_text().splitlines() == classify.class_names
    assert classify.checkpoint["sha256"] == hashlib.sha256(checkpoints["classifier"].read_bytes()).hexdigest()
    assert classify.parity["passed"] and classify.files["model.onnx"]["bytes"] > 0
    assert classify.embedding_dim == 2048 and classify.outputs[0].to_dict() == {
        "name": "logits",
        "data_type": "TYPE_FP32",
        "dims": [40],
    }
    segment = repository.read_model_metadata(root, "segment", version=1)
    assert segment.category_names == list(meta.CATEGORY_NAMES) and len(segment.part_names) == 50
    assert segment.category_parts["Chair"] == [12, 13, 14, 15]
    assert segment.class_names is None
    config = (root / "classify" / "config.pbtxt").read_text()
    assert 'key: "k", value: { string_value: "10" }' in config and 'label_filename: "labels.txt"' in config


def test_a_new_export_adds_a_version_and_leaves_the_served_one_alone(
    repository_copy: Path, checkpoints: dict[str, Path]
) -> None:
    before = _tree(repository_copy / "embed" / "1")
    result = export_checkpoint(checkpoints["classifier"], repository_copy, models=["embed"], parity_shapes=2)
    assert result["embed"].version == 2 and set(result.models) == {"embed"}
    assert _tree(repository_copy / "embed" / "1") == before
    assert repository.versions(repository_copy, "embed") == [1, 2]
    assert repository.latest_version(repository_copy, "embed") == 2
    assert repository.read_model_metadata(repository_copy, "embed").version == 2
    assert repository.latest_version(repository_copy, "classify") == 1


def test_an_existing_version_is_never_rewritten(repository_copy: Path, checkpoints: dict[str, Path]) -> None:
    before = _tree(repository_copy)
    with pytest.raises(repository.RepositoryError, match="never rewritten"):
        export_checkpoint(
            checkpoints["classifier"], repository_copy, version=1, models=["embed"], parity_shapes=2
        )
    assert _tree(repository_copy) == before


def test_failed_parity_raises_and_writes_nothing(
    repository_copy: Path, checkpoints: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import export.parity

    monkeypatch.setattr(export.parity, "ATOL", 1e-15)  # no fp32 computation meets this
    monkeypatch.setattr(export.parity, "LOOSE_FACTOR", 1.0)
    before = _tree(repository_copy)
    with pytest.raises(ParityError, match="parity failed") as caught:
        export_checkpoints(
            [checkpoints["classifier"], checkpoints["partseg"]], repository_copy, parity_shapes=2
        )
    assert caught.value.report["passed"] is False
    assert _tree(repository_copy) == before
    assert not [p for p in repository_copy.parent.iterdir() if "staging" in p.name]


def test_a_config_change_that_would_break_served_versions_is_refused(
    repository_copy: Path, tmp_path: Path
) -> None:
    other = save_classifier(
        tmp_path / "ten.safetensors", num_points=NUM_POINTS, trained_looking=True, num_classes=10
    )
    with pytest.raises(ExportError, match="allow_config_change"):
        export_checkpoint(other, repository_copy, models=["classify"], parity_shapes=2)


def test_model_selection_is_checked(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    from export.exporter import _plan

    all_three = ("embed", "classify", "segment")
    assert _plan([checkpoints["classifier"]], all_three) == [
        (checkpoints["classifier"], ("embed", "classify"))
    ]
    assert _plan([checkpoints["classifier"], checkpoints["partseg"]], ["segment"])[1][1] == ("segment",)
    with pytest.raises(ExportError, match="unknown model names"):
        _plan([checkpoints["classifier"]], ["embedding"])
    with pytest.raises(ExportError, match="can serve"):
        export_checkpoint(checkpoints["partseg"], tmp_path / "repo", models=["embed"])
    with pytest.raises(ExportError, match="both"):
        export_checkpoints([checkpoints["classifier"], checkpoints["classifier"]], tmp_path / "repo")
    assert not (tmp_path / "repo").exists() or not any((tmp_path / "repo").iterdir())
