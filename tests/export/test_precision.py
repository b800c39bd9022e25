"""The precision budget (issue 21) on the shipped models: every precision a version may be served at is
re-checked against ONNX Runtime fp32 on shapes of the shared test split, and the rules that pick it
(precision.json for this very graph, units on this CPU, CROSSPOINT_PRECISION=fp32) hold.

Fast by design: a few dozen shapes per model (export checks 256 and records them in precision.json).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from export.precision import (
    BUDGET,
    CANDIDATES,
    INT8_FILE,
    MIN_SPEEDUP,
    PRECISION_FILE,
    OpenVinoRunner,
    agreement,
    budget_inputs,
    cpu_precisions,
    ort_reference,
    quantize_after_knn,
    rowwise,
    run_batched,
    serving_choice,
)
from export.repository import ONNX_FILE, latest_version, read_model_metadata, version_dir

COMMITTED = Path(__file__).resolve().parents[2] / "model_repository"
SHAPES = 24  # segment: the 20 ShapeNetPart shapes here


def _shipped(model: str) -> Path:
    if latest_version(COMMITTED, model) is None:
        pytest.skip(f"no committed {model} model")
    directory = version_dir(COMMITTED, model)
    assert (directory / PRECISION_FILE).is_file(), (
        f"{directory} has no {PRECISION_FILE}: run `crosspoint precision --repository model_repository`"
    )
    return directory


def _document(directory: Path) -> dict[str, Any]:
    return dict(json.loads((directory / PRECISION_FILE).read_text()))


@pytest.fixture(scope="module")
def references() -> dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """Per model: test-split inputs and the fp32 ONNX Runtime outputs on them (computed once)."""
    out = {}
    for model in ("embed", "classify", "segment"):
        directory = _shipped(model)
        meta = read_model_metadata(COMMITTED, model, int(directory.name))
        inputs, _ = budget_inputs(model, int(meta.num_points), SHAPES)
        out[model] = (inputs, run_batched(ort_reference(directory / ONNX_FILE), inputs))
    return out


def _passed(model: str, runtime: str) -> list[str]:
    candidates = _document(_shipped(model))["candidates"]
    return [c["precision"] for c in candidates if c.get("passed") and c["runtime"] == runtime]


@pytest.mark.parametrize(
    ("model", "runtime", "precision"), [(m, *c) for m in ("embed", "classify", "segment") for c in CANDIDATES]
)
def test_each_precision_within_budget_stays_within_on_test_shapes(
    model: str, runtime: str, precision: str, references: dict[str, Any], tmp_path: Path
) -> None:
    """Every candidate precision.json passed is re-run here (the int8 graph re-derived when the
    version does not keep it) and must still be within budget on other test shapes."""
    directory = _shipped(model)
    if precision not in _passed(model, runtime):
        pytest.skip(f"{model}: {runtime} {precision} is outside budget in {PRECISION_FILE}")
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    if runtime == "openvino":
        if precision not in cpu_precisions():
            pytest.skip(f"this CPU cannot run openvino {precision}")
        run = OpenVinoRunner(directory / ONNX_FILE, precision).run
    else:
        derived = directory / INT8_FILE
        if not derived.is_file():
            pytest.importorskip("onnx")
            derived = tmp_path / INT8_FILE
            quantize_after_knn(directory / ONNX_FILE, derived)
        run = rowwise(ort_reference(derived))  # as served: one row per call
    inputs, reference = references[model]
    verdict = agreement(model, reference, run_batched(run, inputs))
    assert verdict["passed"], verdict["metrics"]


def test_shipped_choices_follow_the_budget() -> None:
    for model in ("embed", "classify", "segment"):
        document = _document(_shipped(model))
        assert document["reference"] == {"runtime": "onnxruntime", "precision": "fp32"}
        assert document["budget"] == BUDGET
        assert document["data"]["shapes"] >= 20
        served = next((c for c in document["candidates"] if c.get("passed") and c.get("faster")), None)
        if served is None:
            assert document["chosen"] == {"runtime": "onnxruntime", "precision": "fp32"}
        else:
            assert document["chosen"] == {"runtime": served["runtime"], "precision": served["precision"]}
            assert served["speed"]["x_fp32"] >= MIN_SPEEDUP
        # the derived int8 graph is kept exactly when it is what this version serves
        kept = (version_dir(COMMITTED, model) / INT8_FILE).is_file()
        assert kept == (document["chosen"]["precision"] == "int8"), model
        for candidate in document["candidates"]:
            if "metrics" in candidate:  # the verdict is the budget applied to the recorded numbers
                assert agreement_passes(candidate["metrics"]) == candidate["passed"], (model, candidate)


def agreement_passes(metrics: dict[str, Any]) -> bool:
    checks = []
    if "embedding_cosine_median" in metrics:
        checks += [
            metrics["embedding_cosine_median"] >= BUDGET["embedding_cosine_median"],
            metrics["embedding_cosine_min"] >= BUDGET["embedding_cosine_min"],
        ]
    if "top1_agreement" in metrics:
        checks.append(metrics["top1_agreement"] >= BUDGET["top1_agreement"])
    if "part_label_agreement" in metrics:
        checks.append(metrics["part_label_agreement"] >= BUDGET["part_label_agreement"])
    return bool(checks) and all(checks)


def test_agreement_applies_each_limit() -> None:
    rng = np.random.default_rng(0)
    embedding = rng.normal(size=(40, 64)).astype(np.float32)
    logits = rng.normal(size=(40, 5)).astype(np.float32)
    reference = {"embedding": embedding, "logits": logits}
    assert agreement("classify", reference, dict(reference))["passed"]
    one_off = embedding.copy()
    one_off[0] = rng.normal(size=64)  # one unrelated embedding: min cosine far below 0.995
    assert not agreement("classify", reference, {"embedding": one_off, "logits": logits})["passed"]
    flipped = logits.copy()
    flipped[0] = -flipped[0]  # one class of 40 changes: 97.5% < 99.5%
    assert not agreement("classify", reference, {"embedding": embedding, "logits": flipped})["passed"]
    parts = rng.normal(size=(2, 100, 50)).astype(np.float32)
    worse = parts.copy()
    worse[0, :3] = -worse[0, :3]  # 3 of 200 labels change: 98.5% < 99%
    assert not agreement("segment", {"part_logits": parts}, {"part_logits": worse})["passed"]


def test_fallbacks_to_fp32(tmp_path: Path) -> None:
    shipped = _shipped("segment")
    assert serving_choice(shipped, "fp32").runtime == "onnxruntime"
    directory = tmp_path / "1"
    directory.mkdir()
    shutil.copy(shipped / ONNX_FILE, directory / ONNX_FILE)
    assert serving_choice(directory).precision == "fp32"  # no precision.json
    document = _document(shipped)
    (directory / PRECISION_FILE).write_text(json.dumps({**document, "graph_sha256": "0" * 64}))
    assert serving_choice(directory).runtime == "onnxruntime"  # checked on another graph
    failed = [{**c, "passed": False} for c in document["candidates"]]
    (directory / PRECISION_FILE).write_text(json.dumps({**document, "candidates": failed}))
    assert serving_choice(directory).runtime == "onnxruntime"  # nothing within budget
    slower = [{**c, "faster": False} for c in document["candidates"]]
    (directory / PRECISION_FILE).write_text(json.dumps({**document, "candidates": slower}))
    assert serving_choice(directory).runtime == "onnxruntime"  # within budget but not faster here
    (directory / PRECISION_FILE).write_text(json.dumps(document))
    choice = serving_choice(directory)
    if cpu_precisions():
        assert (choice.runtime, choice.precision) == (
            document["chosen"]["runtime"],
            document["chosen"]["precision"],
        )


def test_runner_answers_do_not_depend_on_batching() -> None:
    """Rows are padded to whole 2-row requests: a row's answer is the same alone or in any batch."""
    if not cpu_precisions():
        pytest.skip("openvino is not installed")
    directory = _shipped("embed")
    inputs, _ = budget_inputs("embed", 1024, 3)
    runner = OpenVinoRunner(directory / ONNX_FILE, "fp32")
    together = runner.run(inputs)["embedding"]
    for row in range(3):
        alone = runner.run({"points": inputs["points"][row : row + 1]})["embedding"]
        np.testing.assert_array_equal(alone[0], together[row])


def test_triton_openvino_configs_follow_the_verdicts() -> None:
    """configs/openvino.pbtxt (Triton's OpenVINO backend, CPU hosts) asks for bf16 exactly where the
    latest version's bf16 candidate is within budget (validate_repository checks the rest)."""
    from export.triton_config import backend_of, parse_config

    for model in ("embed", "classify", "segment"):
        bf16 = "bf16" in _passed(model, "openvino")
        path = COMMITTED / model / "configs" / "openvino.pbtxt"
        config = parse_config(path.read_text(), str(path))
        assert backend_of(config) == "openvino" and config.default_model_filename == ONNX_FILE
        assert ("HINT_BF16" in config.parameters) == bf16, model


def test_int8_answers_do_not_depend_on_batching(tmp_path: Path) -> None:
    """The int8 graph's activation scales are per call: run row by row, a row's answer is the same
    alone or in any batch (over a whole batch it moved with its batch-mates)."""
    pytest.importorskip("onnx")
    directory = _shipped("classify")
    derived = tmp_path / INT8_FILE
    quantize_after_knn(directory / ONNX_FILE, derived)
    run = rowwise(ort_reference(derived))
    inputs, _ = budget_inputs("classify", 1024, 3)
    together = run(inputs)
    for row in range(3):
        alone = run({"points": inputs["points"][row : row + 1]})
        for name, value in alone.items():
            np.testing.assert_array_equal(value[0], together[name][row])
