"""The model_repository/ we ship is valid: every config parses and matches its graph, every model
loads in ONNX Runtime and answers with the documented shapes (docs/interfaces.md).

Passes on an empty repository; checks for real as soon as models are committed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from export import repository, validate_repository
from export.contract import MODEL_NAMES
from export.triton_config import parse_config
from export.validate import example_inputs

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository"
# docs/interfaces.md: the shapes of the default (DGCNN, ModelNet40, ShapeNetPart) models, batch axis first.
DOCUMENTED = {
    "embed": {"embedding": [2048], "projection": [256]},
    "classify": {"embedding": [2048]},  # logits: [C], C = len(class_names)
    "segment": {"part_logits": [-1, 50]},
}


def _models() -> list[str]:
    if not COMMITTED.is_dir():
        return []
    return sorted(p.name for p in COMMITTED.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_committed_repository_validates() -> None:
    torchscript = importlib.util.find_spec("torch") is not None
    problems = validate_repository(COMMITTED, torchscript=torchscript) if COMMITTED.exists() else []
    assert problems == [], "\n".join(map(str, problems))


@pytest.mark.parametrize(
    "model", _models() or [pytest.param(None, marks=pytest.mark.skip("no committed models"))]
)
def test_committed_model_answers_with_the_documented_shapes(model: str) -> None:
    assert model in MODEL_NAMES, f"model_repository/{model}: not one of {MODEL_NAMES}"
    config = parse_config((COMMITTED / model / "config.pbtxt").read_text())
    for version in repository.versions(COMMITTED, model):
        metadata = repository.read_model_metadata(COMMITTED, model, version)
        assert metadata.parity["passed"], f"{model}/{version}: shipped without passing parity"
        session = ort.InferenceSession(
            str(COMMITTED / model / str(version) / "model.onnx"), providers=["CPUExecutionProvider"]
        )
        inputs = example_inputs(config, metadata, batch=2)
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, session.run(names, inputs), strict=True))
        n = inputs["points"].shape[1]
        expected = dict(DOCUMENTED[model])
        if model == "classify":
            expected["logits"] = [len(metadata.class_names)]
        for name, dims in expected.items():
            assert list(outputs[name].shape) == [2, *(n if d == -1 else d for d in dims)], (
                model,
                version,
                name,
            )
            assert np.isfinite(outputs[name]).all()
