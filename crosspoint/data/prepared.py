"""Where the data lives, and the cached run of `crosspoint.geometry.prepare` over whole datasets.

Every loader turns raw clouds into model-frame points with `geometry.prepare` (de-duplicate ->
farthest point sampling -> centre + unit sphere), the same function the gateway runs on uploads, with a
fixed seed per shape. Doing that for ~12k shapes takes tens of seconds, so the result is saved as `.npy`
under the cache dir, keyed by the source's fingerprint, the settings and the geometry code itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

import crosspoint.geometry as geometry
from crosspoint.data.sets import shape_seed

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CACHE_FORMAT = 1
"""Bump when what a cache file holds changes."""


def shared_data_dir() -> Path:
    """`$CROSSPOINT_SHARED_DATA`, else `<repo>/../shared/data`."""
    return Path(os.environ.get("CROSSPOINT_SHARED_DATA") or REPO_ROOT.parent / "shared" / "data")


def default_cache_dir() -> Path:
    """`$CROSSPOINT_CACHE_DIR`, else `<repo>/.cache/data` (git-ignored)."""
    return Path(os.environ.get("CROSSPOINT_CACHE_DIR") or REPO_ROOT / ".cache" / "data")


def split_h5_files(root: Path, split: str) -> list[Path]:
    """`ply_data_train0.h5`, `ply_data_train1.h5`, ... in numeric order."""

    def order(p: Path) -> tuple[int, str]:
        digits = re.findall(r"\d+", p.stem)
        return (int(digits[-1]) if digits else 0, p.name)

    files = sorted(root.glob(f"ply_data_{split}*.h5"), key=order)
    if not files:
        raise FileNotFoundError(f"no ply_data_{split}*.h5 files in {root}")
    return files


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of a shared npz file, read once per process while the file is unchanged (the
    ModelNet40 file is ~150 MB of float16 points, and parity and the benchmarks ask for it again
    and again). Treat the arrays as read-only."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing (set CROSSPOINT_SHARED_DATA to the shared data)")
    st = os.stat(path)
    return _read_npz(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=2)
def _read_npz(path: str, size: int, mtime_ns: int) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


@lru_cache(maxsize=64)
def _content_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def file_fingerprint(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes (memoized per process by path, size and mtime)."""
    st = os.stat(path)
    return _content_sha256(os.path.realpath(path), st.st_size, st.st_mtime_ns)


def tree_fingerprint(root: Path, files: Iterable[Path]) -> str:
    """Cheap fingerprint of many files (relative path, size, mtime): for folders of thousands of files."""
    h = hashlib.sha256()
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@lru_cache(maxsize=1)
def _geometry_code_version() -> str:
    """Hash of the geometry sources, so a change to the shared preprocessing invalidates the caches."""
    package = Path(geometry.__file__).parent
    h = hashlib.sha256()
    for f in sorted(package.glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


def cache_key(kind: str, source: str, **settings: object) -> str:
    blob = json.dumps(
        {
            "kind": kind,
            "source": source,
            "settings": settings,
            "geometry": _geometry_code_version(),
            "format": CACHE_FORMAT,
        },
        sort_keys=True,
    )
    return f"{kind}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"


def cached_arrays(
    cache_dir: str | os.PathLike | None, key: str, compute: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """`compute()` once, then read back from `<cache_dir>/<key>.npz` (written atomically, uncompressed)."""
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"{key}.npz"
    if path.exists():
        with np.load(path) as f:
            return {name: f[name] for name in f.files}
    arrays = compute()
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{key}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    log.info("cached %s", path)
    return arrays


def prepare_cloud(
    points: np.ndarray | geometry.Shape, shape_id: str, num_points: int, up_axis: str = "y"
) -> np.ndarray:
    """One cloud (or loaded mesh) -> float32 `[num_points, 3]` in the model frame, via `geometry.prepare`
    with the seed taken from the shape id.

    `prepare` returns fewer points when the cloud has fewer distinct points; a fixed-size batch needs
    exactly `num_points`, so the FPS order is then cycled (the only case where duplicates appear).
    """
    prepared, _ = geometry.prepare(points, num_points=num_points, up_axis=up_axis, seed=shape_seed(shape_id))
    return _fixed_count(prepared, num_points)


def prepare_labelled_cloud(
    points: np.ndarray, labels: np.ndarray, shape_id: str, num_points: int, up_axis: str = "y"
) -> tuple[np.ndarray, np.ndarray]:
    """Like `prepare_cloud`, carrying per-point labels: each chosen point takes its source point's label.

    `to_model_frame` reproduces the prepared points bit-exactly from their source positions, so the
    nearest source point (distance 0) is the one FPS picked.
    """
    src = np.asarray(points, dtype=np.float64)
    prepared, receipt = geometry.prepare(
        src, num_points=num_points, up_axis=up_axis, seed=shape_seed(shape_id)
    )
    _, nearest = cKDTree(geometry.to_model_frame(src, receipt)).query(prepared)
    prepared_labels = np.asarray(labels)[nearest]
    return _fixed_count(prepared, num_points), _fixed_count(prepared_labels, num_points)


def _fixed_count(array: np.ndarray, n: int) -> np.ndarray:
    if len(array) == n:
        return array
    return array[np.arange(n) % len(array)]


def prepare_many(
    clouds: Iterable[np.ndarray], shape_ids: Sequence[str], num_points: int, up_axis: str = "y"
) -> np.ndarray:
    """`prepare_cloud` over a dataset: float32 `[M, num_points, 3]`. `clouds` may be a generator, so
    readers of big folders never hold every raw cloud at once."""
    out = np.empty((len(shape_ids), num_points, 3), dtype=np.float32)
    for i, (sid, cloud) in enumerate(zip(shape_ids, clouds, strict=True)):
        out[i] = prepare_cloud(np.asarray(cloud, dtype=np.float32), sid, num_points, up_axis)
    return out
