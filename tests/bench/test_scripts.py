"""Each benchmark script runs end to end in its `--quick` mode on tiny models and writes its markdown
table and JSON. Smoke tests only: no timing is asserted (the machine is shared)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from export.precision import cpu_precisions
from tests.model_repositories import export_repository, make_checkpoints
from tests.server.helpers import MODELNET, require


@pytest.fixture(scope="module")
def tiny_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random-weight models (k=10, 256 points) in the layout `--repository` expects:
    `<root>/repository` and `<root>/checkpoints/{cls,seg}.safetensors`."""
    require(MODELNET)
    root = tmp_path_factory.mktemp("bench")
    cls_path, seg_path = make_checkpoints(root / "made")
    (root / "checkpoints").mkdir()
    shutil.copy(cls_path, root / "checkpoints" / "cls.safetensors")
    shutil.copy(seg_path, root / "checkpoints" / "seg.safetensors")
    export_repository([cls_path, seg_path], root / "repository")
    return root / "repository"


def check_outputs(out: Path, name: str, tables: tuple[str, ...]) -> dict[str, Any]:
    markdown = (out / f"{name}.md").read_text()
    document = json.loads((out / f"{name}.json").read_text())
    assert markdown.startswith(f"# bench/{name}") and "Load average" in markdown
    assert "|---|" in markdown
    assert document["name"] == name and len(document["load_average"]["start"]) == 3
    for table in tables:
        assert document["tables"][table], f"{name}: table {table!r} is empty"
    return document


def test_model(tiny_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.model import main

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # main sets it; undone after the test

    main(["--quick", "--repository", str(tiny_repository), "--out", str(tmp_path)])
    document = check_outputs(tmp_path, "model", ("throughput", "parity"))
    forms = {row["form"] for row in document["tables"]["throughput"]}
    fast = {"onnx-int8"} | {f"openvino-{precision}" for precision in cpu_precisions()}  # openvino: units
    assert forms == {"eager", "onnx-naive", "onnx", "torchscript"} | fast
    if fast:
        assert {row["form"] for row in document["tables"]["budget"]} == fast
    assert all(row["passed"] for row in document["tables"]["parity"])
    assert document["sgemm_gflops"]


def test_preprocess(tmp_path: Path) -> None:
    from bench.preprocess import main

    main(["--quick", "--out", str(tmp_path)])
    document = check_outputs(tmp_path, "preprocess", ("stages",))
    assert {row["format"] for row in document["tables"]["stages"]} == {"ply", "stl", "xyz"}


def test_gateway(tiny_repository: Path, tmp_path: Path) -> None:
    from bench.gateway import main

    main(["--quick", "--repository", str(tiny_repository), "--out", str(tmp_path)])
    document = check_outputs(tmp_path, "gateway", ("phases",))
    rows = document["tables"]["phases"]
    assert {row["target"].split(" (")[0] for row in rows} == {"gateway", "naive", "model-only"}
    assert all(row["ok"] > 0 and not row.get("errors") for row in rows)


@pytest.mark.triton
def test_triton(tiny_repository: Path, tmp_path: Path) -> None:
    from crosspoint.triton.testing import require_tritonserver

    require_tritonserver()
    from bench.triton import main

    main(["--quick", "--repository", str(tiny_repository), "--out", str(tmp_path)])
    document = check_outputs(tmp_path, "triton", ("phases", "batch_client"))
    assert all(row["ok"] > 0 and not row.get("errors") for row in document["tables"]["phases"])


def test_train(tmp_path: Path) -> None:
    require(MODELNET)
    from bench.train import FORMS, STEPS, main

    main(["--quick", "--out", str(tmp_path)])
    document = check_outputs(tmp_path, "train", ("throughput", "profile"))
    rows = document["tables"]["throughput"]
    assert {r["step"] for r in rows} == set(STEPS)
    assert {r["form"] for r in rows if r["step"] == "crosspoint"} == set(FORMS)
    assert all(r["clouds_per_s"] > 0 for r in rows)


def test_train_check(tmp_path: Path) -> None:
    require(MODELNET)
    from bench.train_check import RUNS, main

    main(["--quick", "--out", str(tmp_path)])
    document = check_outputs(tmp_path, "train_check", ("runs",))
    rows = {r["run"]: r for r in document["tables"]["runs"]}
    assert set(rows) == set(RUNS) and all(r["steps"] >= 2 for r in rows.values())
    # the reference run is its own baseline; the others are measured against it
    assert rows["fp32"]["max_window_diff_vs_fp32"] == 0.0
    assert set(document["curves"]) == set(RUNS)


def test_soak(tiny_repository: Path, tmp_path: Path) -> None:
    from bench.soak import main

    main(["--quick", "--repository", str(tiny_repository), "--out", str(tmp_path)])
    document = check_outputs(tmp_path, "soak", ("soak",))
    (row,) = document["tables"]["soak"]
    assert row["ok"] > 0 and row["requests"] >= row["ok"]
    assert row["rss_peak_mb"] >= row["rss_start_mb"] > 50  # the gateway and its parse workers were sampled
