"""`crosspoint batch` through the REAL tritonserver (nvidia-pytriton's binary with the shim backends).

Embeddings are checked against ONNX Runtime run in-process on the same model.onnx (what the
gateway's embedded backend runs), one shape at a time, within the export tolerance (1e-4 abs).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from clients.batch.pipeline import BatchJob, BatchSummary, run_batch
from clients.batch.store import read_results
from crosspoint.cli import app

from .conftest import MESHES, write_modelnet_files

pytestmark = pytest.mark.triton
pytest.importorskip("pyarrow")
ATOL = 1e-4  # the export's parity tolerance


def _job(triton: Any, repository: Path, inputs: list[str], out: Path, **options: Any) -> BatchJob:
    defaults: dict[str, Any] = {"workers": 2, "batch_size": 16, "max_in_flight": 2, "progress": False}
    return BatchJob(
        task=options.pop("task", "embed"),
        inputs=inputs,
        out=out,
        triton_url=triton.urls.grpc,
        repository=repository,
        **{**defaults, **options},
    )


def _reference_embeddings(repository: Path, paths: list[str], batch: int = 1) -> np.ndarray:
    """ONNX Runtime in-process on points prepared with the model's own settings; batch of one unless
    asked (batches of equal point counts, as the gateway's micro-batcher forms them)."""
    import onnxruntime as ort

    from crosspoint.geometry import load, prepare
    from export.repository import read_model_metadata

    meta = read_model_metadata(repository, "embed")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        str(repository / "embed" / str(meta.version) / "model.onnx"),
        options,
        providers=["CPUExecutionProvider"],
    )
    prepared = [
        prepare(load(path), meta.num_points, meta.up_axis, 0, min_points=meta.min_points)[0] for path in paths
    ]
    rows: list[np.ndarray] = [np.empty(0)] * len(paths)
    by_count: dict[int, list[int]] = {}
    for index, points in enumerate(prepared):
        by_count.setdefault(len(points), []).append(index)
    for indices in by_count.values():
        for start in range(0, len(indices), batch):
            chunk = indices[start : start + batch]
            embedded = session.run(["embedding"], {"points": np.stack([prepared[i] for i in chunk])})[0]
            for index, row in zip(chunk, embedded, strict=True):
                rows[index] = row
    return np.stack(rows)


def _assert_matches_onnxruntime(repository: Path, table: dict[str, np.ndarray], batch: int = 1) -> float:
    ok = table["error_code"] == ""
    reference = _reference_embeddings(repository, table["path"][ok].tolist(), batch)
    difference = float(np.abs(table["embedding"][ok] - reference).max())
    assert difference <= ATOL, f"max |triton - onnxruntime| = {difference}"
    return difference


def test_subset_matches_the_embedded_backend(
    triton_server: Any, client_repository: Path, modelnet_subset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "embeddings.parquet"
    summary = run_batch(_job(triton_server, client_repository, [str(modelnet_subset)], out))
    assert (summary.total, summary.succeeded, summary.failed, summary.rows) == (305, 305, 0, 305)
    table = read_results(out)
    assert len(set(table["path"])) == 305 and table["embedding"].shape == (305, 2048)
    assert table["projection"].shape == (305, 256) and set(table["num_points"]) == {512}
    assert set(table["version"]) == {"1"} and set(table["seed"]) == {0}
    difference = _assert_matches_onnxruntime(client_repository, table)
    print(
        f"\nbatch embed via Triton: {summary.files_per_second:.1f} files/s ({summary.seconds:.1f} s), "
        f"max |triton - onnxruntime| {difference:.2e}"
    )


def test_bad_files_get_error_rows_not_an_abort(
    triton_server: Any, client_repository: Path, tmp_path: Path
) -> None:
    shapes = tmp_path / "shapes"
    shapes.mkdir()
    for name in ("cube.glb", "bunny.ply", "empty.obj", "teapot.stl"):
        shutil.copy(MESHES / name, shapes / name)
    (shapes / "junk.npy").write_bytes(b"not an npy file at all")
    np.save(shapes / "three.npy", np.eye(3, dtype=np.float32))  # fewer points than k
    out = tmp_path / "results.npz"
    summary = run_batch(_job(triton_server, client_repository, [str(shapes)], out, task="classify"))
    assert (summary.succeeded, summary.failed) == (3, 3)
    table = read_results(out)
    codes = dict(zip([Path(p).name for p in table["path"]], table["error_code"], strict=True))
    assert codes == {
        "bunny.ply": "",
        "cube.glb": "",
        "teapot.stl": "",
        "empty.obj": "empty_geometry",
        "junk.npy": "parse_error",
        "three.npy": "too_few_points",
    }
    good = table["error_code"] == ""
    names = [n.strip() for n in (client_repository / "classify" / "labels.txt").read_text().split()]
    assert table["logits"].shape == (6, 40) and np.isnan(table["logits"][~good]).all()
    assert [names[i] for i in table["logits"][good].argmax(axis=1)] == table["label"][good].tolist()
    assert ((table["probability"][good] > 0) & (table["probability"][good] <= 1)).all()


def test_without_a_local_repository_settings_come_from_triton(
    triton_server: Any, client_repository: Path, modelnet_subset: Path, tmp_path: Path
) -> None:
    pattern = str(modelnet_subset / "a*" / "*.npy")  # a glob: airplane, ...
    out = tmp_path / "remote.npz"
    summary = run_batch(_job(triton_server, None, [pattern], out))  # type: ignore[arg-type]
    table = read_results(out)
    assert summary.failed == 0 and summary.rows == len(table["path"]) > 0
    assert set(table["num_points"]) == {512} and set(table["version"]) == {
        "1"
    }  # from config.pbtxt parameters
    _assert_matches_onnxruntime(client_repository, table)


def _batch_command(triton: Any, repository: Path, inputs: Path, out: Path, *extra: str) -> list[str]:
    return [
        "batch",
        "embed",
        str(inputs),
        "--triton",
        triton.urls.grpc,
        "--out",
        str(out),
        "--model-repository",
        str(repository),
        "--workers",
        "1",
        "--batch-size",
        "8",
        "--max-in-flight",
        "1",
        "--quiet",
        *extra,
    ]


def test_killed_run_resumes_and_finishes_every_file_once(
    triton_server: Any, client_repository: Path, modelnet_subset: Path, tmp_path: Path
) -> None:
    out = tmp_path / "resumable.parquet"
    parts = out.with_name(out.name + ".parts")
    command = [
        sys.executable,
        "-m",
        "crosspoint.cli",
        *_batch_command(triton_server, client_repository, modelnet_subset, out, "--flush-every", "16"),
    ]
    # Own session: the kill takes the CLI and its preprocessing workers, like a Ctrl-\ or an OOM kill.
    process = subprocess.Popen(
        command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 240
        while not (parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= 3):
            assert process.poll() is None, process.communicate()[0].decode()[-3000:]
            assert time.monotonic() < deadline, "no progress written"
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=60)
    assert not out.exists()  # never merged: the parts are all that survived
    kept = sum(len(read_results(p)["path"]) for p in parts.glob("part-*.parquet"))
    assert 48 <= kept < 305

    summary: BatchSummary = run_batch(_job(triton_server, client_repository, [str(modelnet_subset)], out))
    assert summary.skipped == kept and summary.succeeded == 305 - kept and summary.rows == 305
    table = read_results(out)
    assert sorted(table["path"].tolist()) == sorted(set(table["path"].tolist())) and len(table["path"]) == 305
    assert not parts.exists() and (table["error_code"] == "").all()
    _assert_matches_onnxruntime(client_repository, table)

    again = CliRunner().invoke(app, _batch_command(triton_server, client_repository, modelnet_subset, out))
    assert again.exit_code == 0, again.output
    assert "305 rows; this run 0 ok, 0 errors, 305 already done" in again.stdout


def test_triton_dying_mid_run_stops_it_and_the_next_run_redoes_those_rows(
    triton_server: Any, client_repository: Path, modelnet_subset: Path, tmp_path: Path
) -> None:
    from clients.batch.triton import InferenceFailed
    from crosspoint.triton.testing import running_triton

    out = tmp_path / "outage.npz"
    parts = out.with_name(out.name + ".parts")
    with running_triton(client_repository, timeout=180) as doomed:

        def stop_after_first_part() -> None:
            while not (parts.is_dir() and any(parts.glob("part-*.npz"))):
                time.sleep(0.02)
            doomed.stop()

        stopper = threading.Thread(target=stop_after_first_part, daemon=True)
        stopper.start()
        job = _job(doomed, client_repository, [str(modelnet_subset)], out, flush_rows=16, infer_retries=1)
        with pytest.raises(InferenceFailed, match="in a row"):
            run_batch(job)
        stopper.join(timeout=30)
    assert not out.exists()
    kept = [read_results(p) for p in parts.glob("part-*.npz")]
    codes = np.concatenate([t["error_code"] for t in kept])
    assert (codes == "").sum() >= 16 and (codes == "inference_failed").sum() >= 5  # five batches failed

    summary = run_batch(_job(triton_server, client_repository, [str(modelnet_subset)], out))
    assert summary.skipped == (codes == "").sum() and summary.rows == 305
    table = read_results(out)
    assert (table["error_code"] == "").all() and len(set(table["path"])) == 305


def test_cli_reports_an_unreachable_triton(client_repository: Path, tmp_path: Path) -> None:
    from tests.live_server import free_port

    result = CliRunner().invoke(
        app,
        [
            "batch",
            "embed",
            str(MESHES / "cube.glb"),
            "--triton",
            f"127.0.0.1:{free_port()}",
            "--out",
            str(tmp_path / "r.npz"),
            "--model-repository",
            str(client_repository),
            "--quiet",
        ],
    )
    assert result.exit_code == 2 and "error:" in result.stderr


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_modelnet_shape_through_triton(
    triton_server: Any, client_repository: Path, tmp_path: Path
) -> None:
    files = write_modelnet_files(tmp_path / "modelnet")
    out = tmp_path / "all.parquet"
    summary = run_batch(
        _job(
            triton_server,
            client_repository,
            [str(tmp_path / "modelnet")],
            out,
            batch_size=32,
            max_in_flight=4,
        )
    )
    assert summary.rows == len(files) == 12179 and summary.failed == 0
    table = read_results(out)
    assert len(set(table["path"])) == 12179
    difference = _assert_matches_onnxruntime(client_repository, table, batch=32)
    print(
        f"\nall of ModelNet40 via Triton: {summary.files_per_second:.1f} files/s ({summary.seconds:.0f} s), "
        f"max |triton - onnxruntime| {difference:.2e}"
    )
