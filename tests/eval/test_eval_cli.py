"""`crosspoint eval svm|fewshot|partseg` reproduce their numbers from a saved checkpoint (run twice,
identical JSON), on real shared data with small limits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from crosspoint import checkpoint
from crosspoint.data import load_shapenetpart_npz
from crosspoint.eval.cli import app
from crosspoint.models import create_model

runner = CliRunner()


@pytest.fixture(scope="module")
def dgcnn_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(3)
    model = create_model("dgcnn", k=10)
    model.train()
    with torch.no_grad():
        model(torch.randn(8, 64, 3))  # non-trivial BatchNorm statistics
    path = tmp_path_factory.mktemp("eval") / "dgcnn.safetensors"
    checkpoint.save(path, model, {"training": {"task": "test"}})
    return path


def _run_twice(args: list[str], tmp_path: Path) -> dict:
    docs = []
    for i in range(2):
        out = tmp_path / f"run{i}.json"
        result = runner.invoke(app, [*args, "--json", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == json.loads(out.read_text())
        docs.append(json.loads(out.read_text()))
    assert docs[0] == docs[1]
    return docs[0]


def test_svm_is_reproducible_and_reports_both_variants(dgcnn_ckpt: Path, tmp_path: Path) -> None:
    args = ["svm", "--checkpoint", str(dgcnn_ckpt), "--num-points", "512", "--train-limit", "120",
            "--test-limit", "40", "--cs", "0.01,1", "--no-feature-cache"]  # fmt: skip
    doc = _run_twice(args, tmp_path)
    assert doc["data"] == {"path": "shared modelnet40_partial", "train": 120, "test": 40}
    for label in ("pretrained", "random"):
        res = doc["results"][label]
        assert {"unscaled", "scaled", "best"} <= res.keys()
        for variant in ("unscaled", "scaled"):
            assert 0.0 <= res[variant]["test_accuracy"] <= 1.0
            assert res[variant]["C"] in (0.01, 1.0)
            assert set(res[variant]["val_by_C"]) == {"0.01", "1.0"}
    assert doc["results"]["random"]["network"]["weights_sha256"] is None


def test_fewshot_is_reproducible(dgcnn_ckpt: Path, tmp_path: Path) -> None:
    args = ["fewshot", "--checkpoint", str(dgcnn_ckpt), "--num-points", "512", "--ways", "3", "--shots", "2",
            "--queries", "4", "--runs", "3", "--no-compare-random", "--no-feature-cache"]  # fmt: skip
    doc = _run_twice(args, tmp_path)
    res = doc["results"]["pretrained"]["3way_2shot"]
    assert len(res["runs"]) == 3 and 0 <= res["mean"] <= 100
    assert doc["protocol"]["pool_split"] == "train"


def test_fewshot_takes_its_rows_from_the_whole_split_features_svm_cached(
    dgcnn_ckpt: Path, tmp_path: Path
) -> None:
    import numpy as np

    from crosspoint.data import load_modelnet40_npz
    from crosspoint.eval.features import cache_path, embed
    from crosspoint.eval.fewshot import needed_indices, sample_episodes
    from crosspoint.eval.run import fewshot_eval

    kwargs = {"ways": (3,), "shots": (2,), "queries": 4, "runs": 3, "num_points": 512, "seed": 5}
    plain = fewshot_eval(str(dgcnn_ckpt), **kwargs)  # type: ignore[arg-type]
    pool = load_modelnet40_npz(split="train", num_points=512)
    rows = needed_indices(sample_episodes(pool.labels, 3, 2, 4, 3, 5)[0])
    model = checkpoint.load(dgcnn_ckpt).model
    # What `eval svm` would have cached for the whole split; rows no episode uses stay zero.
    whole = np.zeros((len(pool), model.num_features), np.float32)
    whole[rows] = embed(model, pool.points[rows])
    path = cache_path(model, pool.points, tmp_path, 32, "cpu")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, whole)
    cached = fewshot_eval(str(dgcnn_ckpt), feature_cache=tmp_path, **kwargs)  # type: ignore[arg-type]
    assert cached["results"] == plain["results"]
    assert list(tmp_path.iterdir()) == [path]  # nothing embedded again


def test_partseg_is_reproducible(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = tmp_path / "seg.safetensors"
    checkpoint.save(path, create_model("dgcnn_partseg", k=20), {"preprocess": {"num_points": 512}})
    doc = _run_twice(["partseg", "--checkpoint", str(path)], tmp_path)
    real = doc["results"]["shapenetpart"]
    assert real["shapes"] == len(load_shapenetpart_npz(split="test", num_points=512)) > 0
    assert 0.0 <= real["instance_miou"] <= 1.0 and 0.0 <= real["class_miou"] <= 1.0
    assert doc["random"]["shapenetpart"]["shapes"] == real["shapes"] and doc["random_init_seed"] == 0
    table = runner.invoke(app, ["partseg", "--checkpoint", str(path)])  # the human-readable form
    assert table.exit_code == 0 and "instance mIoU" in table.stdout
