"""ShapeNetPart readers: the shared npz (20 shapes) and the two official layouts (h5, per-shape txt).

Part labels use the global numbering 0..49 (`shapenetpart_meta`). Points go through
`geometry.prepare` like every other set (y up, centred, unit sphere, FPS with a per-shape seed);
each chosen point keeps the label of the source point it came from.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from crosspoint.data.prepared import (
    cache_key,
    cached_arrays,
    file_fingerprint,
    prepare_labelled_cloud,
    read_npz,
    shared_data_dir,
    split_h5_files,
    tree_fingerprint,
)
from crosspoint.data.sets import PartSet, RawShapes
from crosspoint.data.shapenetpart_meta import CATEGORY_NAMES, category_index

PartSplit = Literal["train", "val", "test", "trainval", "all"]
_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("train",), "val": ("val",), "test": ("test",), "trainval": ("train", "val"),
    "all": ("train", "val", "test"),
}  # fmt: skip
_NPZ_CODES = {"train": 0, "val": 1, "test": 2}


def _splits(split: str) -> tuple[str, ...]:
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(_SPLITS)}, not {split!r}")
    return _SPLITS[split]


def _prepare_parts(
    clouds: Iterable[tuple[np.ndarray, np.ndarray]], ids: list[str], num_points: int, up_axis: str
) -> dict[str, np.ndarray]:
    points = np.empty((len(ids), num_points, 3), dtype=np.float32)
    labels = np.empty((len(ids), num_points), dtype=np.int64)
    for i, (sid, (xyz, lab)) in enumerate(zip(ids, clouds, strict=True)):
        points[i], labels[i] = prepare_labelled_cloud(xyz, lab, sid, num_points, up_axis)
    return {"points": points, "part_labels": labels}


def default_shapenetpart_npz() -> Path:
    return shared_data_dir() / "shapenetpart_partial" / "shapenetpart_partial_2048.npz"


def load_shapenetpart_npz(
    path: str | os.PathLike | None = None,
    split: PartSplit = "train",
    num_points: int = 2048,
    cache_dir: str | os.PathLike | None = None,
) -> PartSet:
    """The shared 20-shape ShapeNetPart npz (15 train, 0 val, 5 test by the official lists)."""
    npz_path = Path(path) if path is not None else default_shapenetpart_npz()
    raw = read_shapenetpart_npz(npz_path, split)
    assert raw.part_labels is not None
    clouds = zip(raw.clouds, raw.part_labels, strict=True)
    key = cache_key("shapenetpart-npz", file_fingerprint(npz_path), split=split, num_points=num_points)
    arrays = cached_arrays(cache_dir, key, lambda: _prepare_parts(clouds, raw.shape_ids, num_points, "y"))
    return PartSet(arrays["points"], arrays["part_labels"], raw.labels, raw.shape_ids, split)


def read_shapenetpart_npz(path: str | os.PathLike | None = None, split: PartSplit = "all") -> RawShapes:
    """The shared npz's shapes of `split`, unprepared (float32 points, global part ids, category index)."""
    codes = [_NPZ_CODES[s] for s in _splits(split)]
    data = read_npz(Path(path) if path is not None else default_shapenetpart_npz())
    rows = np.flatnonzero(np.isin(data["split"], codes))
    return RawShapes(
        clouds=list(data["points"][rows].astype(np.float32)),
        labels=data["category"][rows].astype(np.int64),
        class_names=list(CATEGORY_NAMES),
        shape_ids=[str(s) for s in data["shape_ids"][rows]],
        part_labels=list(data["part_labels"][rows]),
    )


def load_shapenetpart_h5(
    root: str | os.PathLike,
    split: PartSplit = "train",
    num_points: int = 2048,
    cache_dir: str | os.PathLike | None = None,
    up_axis: str = "y",
) -> PartSet:
    """`shapenet_part_seg_hdf5_data/`: `ply_data_{train,val,test}{k}.h5` with `data`, `label` (category), `pid`."""
    root = Path(root)
    files = [f for s in _splits(split) for f in split_h5_files(root, s)]
    clouds: list[tuple[np.ndarray, np.ndarray]] = []
    categories: list[np.ndarray] = []
    ids: list[str] = []
    for f in files:
        with h5py.File(f, "r") as h5:
            data = np.asarray(h5["data"][:], dtype=np.float32)[..., :3]
            pid = np.asarray(h5["pid"][:]).astype(np.int64)
            categories.append(np.asarray(h5["label"][:]).reshape(-1).astype(np.int64))
        clouds.extend(zip(data, pid, strict=True))
        ids.extend(f"{f.stem}_{i:04d}" for i in range(len(data)))
    fingerprint = "|".join(f"{f.name}:{file_fingerprint(f)}" for f in files)
    key = cache_key("shapenetpart-h5", fingerprint, num_points=num_points, up_axis=up_axis)
    arrays = cached_arrays(cache_dir, key, lambda: _prepare_parts(clouds, ids, num_points, up_axis))
    return PartSet(arrays["points"], arrays["part_labels"], np.concatenate(categories), ids, split)


def _read_part_txt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """`x y z nx ny nz label` per line (label = global part id) -> (xyz float32, labels int64)."""
    table = np.array(path.read_bytes().split(), dtype=np.float32).reshape(-1, 7)
    return table[:, :3], table[:, 6].astype(np.int64)


def load_shapenetpart_txt(
    root: str | os.PathLike,
    split: PartSplit = "train",
    num_points: int = 2048,
    cache_dir: str | os.PathLike | None = None,
    up_axis: str = "y",
) -> PartSet:
    """`shapenetcore_partanno_segmentation_benchmark_v0_normal/`: `<synset>/<id>.txt`, listed by
    `train_test_split/shuffled_{train,val,test}_file_list.json` (entries `shape_data/<synset>/<id>`)."""
    root = Path(root)
    ids: list[str] = []
    for s in _splits(split):
        listing = json.loads((root / "train_test_split" / f"shuffled_{s}_file_list.json").read_text())
        ids.extend("/".join(entry.split("/")[-2:]) for entry in listing)
    files = [root / f"{sid}.txt" for sid in ids]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} listed shapes are missing, e.g. {missing[0]}")
    categories = np.array([category_index(sid.split("/")[0]) for sid in ids], dtype=np.int64)
    key = cache_key("shapenetpart-txt", tree_fingerprint(root, files), num_points=num_points, up_axis=up_axis)
    arrays = cached_arrays(
        cache_dir, key, lambda: _prepare_parts((_read_part_txt(f) for f in files), ids, num_points, up_axis)
    )
    return PartSet(arrays["points"], arrays["part_labels"], categories, ids, split)
