"""The resumable result store of a batch run: one parquet or npz file, built from part files.

Design. While a run goes, finished rows are buffered and flushed every few hundred rows (or
seconds) as a new part file in `<out>.parts/` (`results.parquet` -> `results.parquet.parts/`),
each written to a temporary name and renamed, so a part is either complete or absent. A killed
run therefore loses at most the rows since the last flush. At the end (or on the next run) the
old output and all parts are merged, one row per path (the newest wins, so a file re-done after
it changed, or a retried error, replaces its old row), sorted by path, written to a temporary
file and renamed over `<out>`; only then are the parts deleted. A crash between the rename and
the deletion leaves rows present twice, which the next merge collapses again.

On start the store reads `<out>` and any parts: a file is skipped when its path is there with the
same size and mtime (or sha256) and no error. Errors of the file (parse, sampling) are skipped
too unless `retry_errors`; `inference_failed` rows (Triton refused the batch) are always re-done.

Columns (one row per input file):
    path, size, mtime_ns, sha256 ("" unless --key sha256), model, version, num_points, seed,
    error_code, error_message ("" when the row succeeded; null in parquet),
    vector columns by task, float32 (NaN rows in npz, null in parquet, where the file failed):
      embed: embedding [2048], projection [256];  classify: logits [C], embedding [2048]
    classify also: label (top-1 class name), probability (its softmax probability).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clients.batch.inputs import FileKey

STRING_COLUMNS = ("path", "sha256", "model", "version", "error_code", "error_message", "label")
NULLABLE_STRINGS = ("error_code", "error_message", "label")
INT_COLUMNS = {"size": np.int64, "mtime_ns": np.int64, "num_points": np.int32, "seed": np.int64}
FLOAT_COLUMNS = ("probability",)
SUFFIXES = (".parquet", ".npz")
METADATA_KEY = "crosspoint.vector_dims"
# Errors of the moment, not of the file: such rows are done again by the next run without asking.
INFERENCE_FAILED = "inference_failed"
TRANSIENT_ERRORS = frozenset({INFERENCE_FAILED})

Table = dict[str, np.ndarray]


class StoreLayoutError(ValueError):
    """An existing output holds other columns or vector sizes (another model or task)."""


def output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"--out must end in .parquet or .npz, got {path.name}")
    return suffix[1:]


@dataclass
class ResultStore:
    out: Path
    vector_dims: dict[str, int]  # e.g. {"embedding": 2048, "projection": 256}
    scalar_columns: tuple[str, ...]
    flush_rows: int = 512
    flush_seconds: float = 30.0
    _buffer: list[dict[str, Any]] = field(default_factory=list)
    _last_flush: float = field(default_factory=time.monotonic)
    _seq: int = 0
    _run: int = field(default_factory=time.time_ns)
    done: dict[str, tuple[int, int, str, bool]] = field(default_factory=dict)

    @property
    def fmt(self) -> str:
        return output_format(self.out)

    @property
    def parts_dir(self) -> Path:
        return self.out.with_name(self.out.name + ".parts")

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.scalar_columns, *self.vector_dims)

    def load_done(self) -> int:
        """Read what earlier runs finished (output + leftover parts); returns the number of rows."""
        for table in self._existing_tables():
            self._check_layout(table)
            for i, path in enumerate(table["path"]):
                code = str(table["error_code"][i])
                if code in TRANSIENT_ERRORS:
                    self.done.pop(str(path), None)
                    continue
                self.done[str(path)] = (
                    int(table["size"][i]),
                    int(table["mtime_ns"][i]),
                    str(table["sha256"][i]),
                    not code,
                )
        return len(self.done)

    def is_done(self, key: FileKey, retry_errors: bool = False) -> bool:
        entry = self.done.get(key.path)
        if entry is None:
            return False
        size, mtime_ns, sha256, ok = entry
        same = sha256 == key.sha256 if key.sha256 else (size, mtime_ns) == (key.size, key.mtime_ns)
        return same and (ok or not retry_errors)

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.flush_rows or time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the buffered rows as one new part file (atomically)."""
        self._last_flush = time.monotonic()
        if not self._buffer:
            return
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        part = self.parts_dir / f"part-{self._run}-{self._seq:06d}.{self.fmt}"
        write_table(part, self._rows_to_table(self._buffer), self.fmt)
        self._seq += 1
        self._buffer.clear()

    def finalize(self) -> int:
        """Merge output + parts into `out`, one row per path; returns the row count."""
        self.flush()
        tables = self._existing_tables()
        if not tables:
            return 0
        merged = merge_tables(tables, self.columns)
        write_table(self.out, merged, self.fmt)
        shutil.rmtree(self.parts_dir, ignore_errors=True)
        return len(merged["path"])

    def _existing_tables(self) -> list[Table]:
        tables = [read_table(self.out)] if self.out.exists() else []
        if self.parts_dir.is_dir():
            # Names sort by run start time, then sequence: later rows come later and win the merge.
            tables += [read_table(p) for p in sorted(self.parts_dir.glob(f"part-*.{self.fmt}"))]
        return tables

    def _check_layout(self, table: Table) -> None:
        for name, dim in self.vector_dims.items():
            column = table.get(name)
            if column is None or column.shape[1:] != (dim,):
                found = None if column is None else column.shape[1:]
                raise StoreLayoutError(
                    f"{self.out} was written by another model or task ({name}: {found}, now {dim}); "
                    "use a new --out"
                )

    def _rows_to_table(self, rows: list[dict[str, Any]]) -> Table:
        table: Table = {}
        for name in self.scalar_columns:
            values = [row.get(name) for row in rows]
            if name in INT_COLUMNS:
                table[name] = np.asarray([v or 0 for v in values], dtype=INT_COLUMNS[name])
            elif name in FLOAT_COLUMNS:
                table[name] = np.asarray([np.nan if v is None else v for v in values], dtype=np.float32)
            else:
                table[name] = np.asarray(["" if v is None else str(v) for v in values], dtype=str)
        for name, dim in self.vector_dims.items():
            block = np.full((len(rows), dim), np.nan, dtype=np.float32)
            for i, row in enumerate(rows):
                if row.get(name) is not None:
                    block[i] = row[name]
            table[name] = block
        return table


def merge_tables(tables: list[Table], columns: tuple[str, ...]) -> Table:
    """Concatenate, keep the last row of each path, sort by path."""
    joined = {name: np.concatenate([t[name] for t in tables]) for name in columns}
    paths = joined["path"]
    # np.unique on the reversed order finds each path's LAST occurrence.
    _, first_in_reversed = np.unique(paths[::-1], return_index=True)
    keep = np.sort(len(paths) - 1 - first_in_reversed)
    order = keep[np.argsort(paths[keep], kind="stable")]
    return {name: values[order] for name, values in joined.items()}


def write_table(path: Path, table: Table, fmt: str) -> None:
    """Write next to the target, fsync, rename: readers see the old file or the new one, never half."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            if fmt == "parquet":
                _write_parquet(handle, table)
            else:
                np.savez(handle, **table)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_table(path: Path) -> Table:
    """Read a result file (or part) of either format into numpy columns."""
    if output_format(path) == "npz":
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    return _read_parquet(path)


def read_results(path: str | Path) -> Table:
    """Public reader for users of a finished run: columns as numpy arrays (vectors 2-D)."""
    return read_table(Path(path))


def _write_parquet(handle: Any, table: Table) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    failed = np.asarray([bool(code) for code in table["error_code"]], dtype=bool)
    arrays = {}
    dims = {}
    for name, values in table.items():
        if values.ndim == 2:
            # A nullable variable list, not fixed_size_list: parquet cannot round-trip null entries of
            # the latter (pyarrow 23: "Lists with non-zero length null components are not supported").
            dims[name] = values.shape[1]
            lengths = np.where(failed, 0, values.shape[1])
            offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
            flat = pa.array(values[~failed].reshape(-1), type=pa.float32())
            arrays[name] = pa.ListArray.from_arrays(offsets, flat, mask=pa.array(failed))
        elif name in NULLABLE_STRINGS:
            arrays[name] = pa.array(values.tolist(), type=pa.string(), mask=values == "")
        else:
            arrays[name] = pa.array(values)
    # The vector sizes travel in the schema, so an all-failed part still says what it holds.
    arrow = pa.table(arrays).replace_schema_metadata({METADATA_KEY: json.dumps(dims)})
    pq.write_table(arrow, handle)


def _read_parquet(path: Path) -> Table:
    import json

    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    dims = json.loads(meta.get(METADATA_KEY.encode(), b"{}"))
    out: Table = {}
    for name in table.column_names:
        column = table.column(name).combine_chunks()
        if name in dims:
            # Null rows (failed files) come back as NaN, the npz convention.
            dense = np.full((len(column), dims[name]), np.nan, dtype=np.float32)
            valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
            if valid.any():
                dense[valid] = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dims[name])
            out[name] = dense
        elif name in STRING_COLUMNS:
            out[name] = np.asarray(["" if v is None else v for v in column.to_pylist()], dtype=str)
        else:
            out[name] = column.to_numpy(zero_copy_only=False)
    return out
