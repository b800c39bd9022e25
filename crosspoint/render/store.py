"""`ViewStore`: every object's V rendered views, rendered once and kept on disk in chunk files.

Layout under `<cache_dir>/views-<settings hash>/` (the hash covers size, V, seed and the renderer version,
so changing any of them starts a fresh store instead of serving stale images):
- `chunk-<first key>.npz` holds up to `chunk_size` objects, one zip member (uint8 [V, H, W, 3]) per object,
  and `chunk-<first key>.json` lists its keys. Rendered views are mostly flat background, so the deflate
  in `np.savez_compressed` shrinks them several-fold, and reading one member does not inflate the others.
- `loose/<key>.npz` holds objects first seen by `get` (a data loader meeting an object `prefill` skipped).
Every file is written to a temporary name and renamed, so concurrent readers (DataLoader workers) and
writers never see half a file. An object's key hashes its id *and* its coordinates, so new points for an
old id are rendered again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path
from typing import Any

import numpy as np

from crosspoint.data.sets import shape_seed
from crosspoint.render.camera import CAMERA_DISTANCE, ELEVATION_DEG
from crosspoint.render.views import is_mesh, render_mesh, render_points

RENDERER_VERSION = "splat-1"
"""Bump when the rendered pixels change (shading, cameras), to invalidate existing stores."""


def _points_of(obj: Any) -> np.ndarray:
    """A point cloud given as an array or as a face-less `geometry.Shape`."""
    return np.asarray(getattr(obj, "vertices", obj), dtype=np.float32)


def object_key(shape_id: str, obj: Any) -> str:
    """Content key of one object: its id and its geometry (points, or mesh vertices and faces)."""
    h = hashlib.sha256(shape_id.encode("utf-8"))
    if isinstance(obj, str | os.PathLike):  # a mesh file: its path, size and modification time
        st = os.stat(obj)
        h.update(os.fsencode(os.path.realpath(obj)) + f"|{st.st_size}|{st.st_mtime_ns}".encode())
    elif is_mesh(obj):
        h.update(np.ascontiguousarray(np.asarray(obj.vertices, dtype=np.float64)).tobytes())
        h.update(np.ascontiguousarray(np.asarray(obj.faces, dtype=np.int64)).tobytes())
    else:
        h.update(np.ascontiguousarray(_points_of(obj)).tobytes())
    return h.hexdigest()[:24]


def _atomic_write(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ViewStore:
    """On-disk cache of rendered views: `get(shape_id, points_or_mesh) -> uint8 [V, H, W, 3]`."""

    def __init__(
        self,
        cache_dir: str | os.PathLike,
        size: int = 224,
        views_per_object: int = 8,
        seed: int = 0,
        chunk_size: int = 256,
    ) -> None:
        self.size = int(size)
        self.views_per_object = int(views_per_object)
        self.seed = int(seed)
        self.chunk_size = int(chunk_size)
        settings = {
            "renderer": RENDERER_VERSION,
            "size": self.size,
            "views": self.views_per_object,
            "seed": self.seed,
            "elevation_deg": list(ELEVATION_DEG),
            "camera_distance": CAMERA_DISTANCE,
        }
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
        self.root = Path(cache_dir) / f"views-{digest}"
        (self.root / "loose").mkdir(parents=True, exist_ok=True)
        settings_file = self.root / "settings.json"
        if not settings_file.exists():
            _atomic_write(settings_file, lambda fh: fh.write(json.dumps(settings, indent=1).encode()))
        self._index: dict[str, Path] = {}
        self._scanned: set[Path] = set()
        self._open: dict[Path, Any] = {}
        self._open_pid = os.getpid()

    # Open zip handles must not travel to another process: pickled copies (spawned workers) drop them,
    # and forked DataLoader workers, which share the parent's file offsets, reopen their own (`_read_chunk`).
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_open"] = {}
        return state

    def object_seed(self, shape_id: str) -> int:
        """Seed of an object's viewpoints (and mesh sampling): stable across runs and processes."""
        return shape_seed(shape_id) ^ self.seed

    def render(self, shape_id: str, obj: Any) -> np.ndarray:
        """Render an object's views without touching the cache."""
        views, size, seed = self.views_per_object, self.size, self.object_seed(shape_id)
        if is_mesh(obj):
            return render_mesh(obj, views=views, size=size, seed=seed)
        return render_points(_points_of(obj), views=views, size=size, seed=seed)

    def _refresh(self) -> None:
        for listing in self.root.glob("chunk-*.json"):
            if listing in self._scanned:
                continue
            chunk = listing.with_suffix(".npz")
            for key in json.loads(listing.read_text()):
                self._index[key] = chunk
            self._scanned.add(listing)

    def _read_chunk(self, chunk: Path, key: str) -> np.ndarray:
        if self._open_pid != os.getpid():
            self._open, self._open_pid = {}, os.getpid()
        if chunk not in self._open:
            self._open[chunk] = np.load(chunk)
        return np.asarray(self._open[chunk][key])

    def lookup(self, shape_id: str, obj: Any) -> np.ndarray | None:
        """Cached views of an object, or None."""
        key = object_key(shape_id, obj)
        if key not in self._index:
            self._refresh()
        if key in self._index:
            return self._read_chunk(self._index[key], key)
        loose = self.root / "loose" / f"{key}.npz"
        if loose.exists():
            with np.load(loose) as f:
                return np.asarray(f["views"])
        return None

    def get(self, shape_id: str, obj: Any) -> np.ndarray:
        """uint8 `[V, H, W, 3]` views of `obj` (points `[N, 3]` or a mesh); rendered and stored on a miss."""
        views = self.lookup(shape_id, obj)
        if views is None:
            views = self.render(shape_id, obj)
            path = self.root / "loose" / f"{object_key(shape_id, obj)}.npz"
            _atomic_write(path, lambda fh: np.savez_compressed(fh, views=views))
        return views

    def write_chunk(self, shape_ids: Sequence[str], objects: Sequence[Any]) -> Path:
        """Render objects into one new chunk file (used by `prefill`; safe to run in worker processes)."""
        keys = [object_key(s, o) for s, o in zip(shape_ids, objects, strict=True)]
        chunk = self.root / f"chunk-{keys[0]}.npz"

        def write(fh: Any) -> None:
            with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                for key, shape_id, obj in zip(keys, shape_ids, objects, strict=True):
                    with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, self.render(shape_id, obj))

        _atomic_write(chunk, write)
        _atomic_write(chunk.with_suffix(".json"), lambda fh: fh.write(json.dumps(keys).encode()))
        return chunk

    def prefill(self, dataset: Any, workers: int = 0, progress: bool = False) -> int:
        """Render every object of `dataset` (anything with `points` and `shape_ids`) not cached yet.

        Work is split into chunks of `chunk_size` objects, one file each, over `workers` processes
        (0 or 1: in this process). Returns the number of objects rendered.
        """
        self._refresh()
        objects = dataset.points
        keys = [object_key(sid, objects[i]) for i, sid in enumerate(dataset.shape_ids)]
        loose = {p.stem for p in (self.root / "loose").glob("*.npz")}
        todo = [i for i, key in enumerate(keys) if key not in self._index and key not in loose]
        batches = [todo[i : i + self.chunk_size] for i in range(0, len(todo), self.chunk_size)]
        jobs = [([dataset.shape_ids[i] for i in b], [objects[i] for i in b]) for b in batches]
        bar = _progress(len(todo), progress)
        if workers <= 1:
            for ids, objs in jobs:
                self.write_chunk(ids, objs)
                bar(len(ids))
        else:
            # fork where there is one, like torch's DataLoader: spawn would re-import the caller's main
            # module (scripts without a __main__ guard break) and the children only run numpy/scipy code.
            method = "fork" if "fork" in get_all_start_methods() else "spawn"
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context(method)) as pool:
                futures = [(pool.submit(self.write_chunk, ids, objs), len(ids)) for ids, objs in jobs]
                for future, n in futures:
                    future.result()
                    bar(n)
        self._refresh()
        return len(todo)


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return lambda n: None
    from tqdm import tqdm

    bar = tqdm(total=total, unit="obj", desc="rendering views")
    return bar.update
