"""The batch client's resumable store: part files, resume keys, merge, both formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clients.batch.inputs import FileKey
from clients.batch.pipeline import SCALARS
from clients.batch.store import ResultStore, StoreLayoutError, read_results

pytest.importorskip("pyarrow")
FORMATS = ["parquet", "npz"]


def _store(out: Path, dim: int = 4, flush_rows: int = 2) -> ResultStore:
    return ResultStore(out, {"embedding": dim}, SCALARS, flush_rows=flush_rows)


def _ok(path: str, value: float, mtime: int = 1) -> dict:
    return {"path": path, "size": 10, "mtime_ns": mtime, "embedding": np.full(4, value, np.float32)}


@pytest.mark.parametrize("fmt", FORMATS)
def test_parts_flush_as_rows_arrive_and_merge_at_the_end(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"results.{fmt}"
    store = _store(out)
    store.add(_ok("b", 1))
    assert not store.parts_dir.exists()
    store.add({"path": "a", "size": 10, "mtime_ns": 1, "error_code": "parse_error", "error_message": "bad"})
    assert len(list(store.parts_dir.iterdir())) == 1  # two rows -> one part, already on disk
    store.add(_ok("c", 3))
    assert store.finalize() == 3
    assert not store.parts_dir.exists() and not out.with_name(f".{out.name}.tmp").exists()
    table = read_results(out)
    assert table["path"].tolist() == ["a", "b", "c"]
    assert table["error_code"].tolist() == ["parse_error", "", ""]
    assert np.isnan(table["embedding"][0]).all()
    np.testing.assert_array_equal(table["embedding"][2], np.full(4, 3, np.float32))


@pytest.mark.parametrize("fmt", FORMATS)
def test_resume_skips_done_files_and_newest_row_wins(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"results.{fmt}"
    first = _store(out)
    for row in (_ok("a", 1), _ok("b", 2), {"path": "c", "size": 10, "mtime_ns": 1, "error_code": "x"}):
        first.add(row)
    first.flush()  # an interrupted run: parts, no merged output yet

    second = _store(out)
    assert second.load_done() == 3
    assert second.is_done(FileKey("a", 10, 1))
    assert not second.is_done(FileKey("a", 10, 2))  # touched since: do it again
    assert second.is_done(FileKey("c", 10, 1)) and not second.is_done(FileKey("c", 10, 1), retry_errors=True)
    second.add(_ok("a", 9, mtime=2))
    second.add(_ok("c", 7))
    second.finalize()

    table = read_results(out)
    assert table["path"].tolist() == ["a", "b", "c"]
    assert table["embedding"][:, 0].tolist() == [9, 2, 7]
    assert table["mtime_ns"].tolist() == [2, 1, 1]
    assert table["error_code"].tolist() == ["", "", ""]


def test_sha256_keys_ignore_mtime(tmp_path: Path) -> None:
    store = _store(tmp_path / "r.npz")
    store.add({**_ok("a", 1), "sha256": "abc"})
    store.finalize()
    again = _store(tmp_path / "r.npz")
    again.load_done()
    assert again.is_done(FileKey("a", 10, 999, "abc")) and not again.is_done(FileKey("a", 10, 1, "abd"))


def test_other_vector_size_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path / "r.parquet")
    store.add(_ok("a", 1))
    store.finalize()
    with pytest.raises(StoreLayoutError, match="another model"):
        _store(tmp_path / "r.parquet", dim=8).load_done()


def test_parquet_marks_failures_null(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    store = _store(tmp_path / "r.parquet")
    store.add(
        {"path": "a", "size": 1, "mtime_ns": 1, "error_code": "too_few_points", "error_message": "3 points"}
    )
    store.add(_ok("b", 1))
    store.finalize()
    table = pq.read_table(tmp_path / "r.parquet").to_pydict()
    assert table["embedding"][0] is None and table["embedding"][1] == [1.0] * 4
    assert table["error_code"] == ["too_few_points", None]
