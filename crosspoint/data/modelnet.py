"""ModelNet40 readers: the shared npz, and the two public layouts (PointNet h5, PointNet++ txt).

All return a `PointCloudSet` prepared by `geometry.prepare` (y up, centred, unit sphere, FPS to
`num_points`, seed per shape id) and cached under `cache_dir`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Literal

import h5py
import numpy as np

from crosspoint.data.prepared import (
    cache_key,
    cached_arrays,
    file_fingerprint,
    prepare_many,
    read_npz,
    shared_data_dir,
    split_h5_files,
    tree_fingerprint,
)
from crosspoint.data.sets import PointCloudSet, RawShapes

MODELNET40_CLASSES: tuple[str, ...] = (
    "airplane", "bathtub", "bed", "bench", "bookshelf", "bottle", "bowl", "car", "chair", "cone",
    "cup", "curtain", "desk", "door", "dresser", "flower_pot", "glass_box", "guitar", "keyboard", "lamp",
    "laptop", "mantel", "monitor", "night_stand", "person", "piano", "plant", "radio", "range_hood", "sink",
    "sofa", "stairs", "stool", "table", "tent", "toilet", "tv_stand", "vase", "wardrobe", "xbox",
)  # fmt: skip
"""The official `shape_names.txt` order (label 0 = airplane ... 39 = xbox)."""

Split = Literal["train", "test", "all"]
_NPZ_SPLIT_CODES = {"train": (0,), "test": (1,), "all": (0, 1)}


def _check_split(split: str, allowed: tuple[str, ...]) -> None:
    if split not in allowed:
        raise ValueError(f"split must be one of {', '.join(allowed)}, not {split!r}")


def default_modelnet40_npz() -> Path:
    return shared_data_dir() / "modelnet40_partial" / "modelnet40_partial_2048.npz"


def load_modelnet40_npz(
    path: str | os.PathLike | None = None,
    split: Split = "train",
    num_points: int = 1024,
    cache_dir: str | os.PathLike | None = None,
) -> PointCloudSet:
    """The shared ModelNet40 npz (see shared/data/README.md): official train 9,843 / test 2,336 shapes.

    Only the distinct points of each row are used (`points[i, :n_points[i]]`: the 1024-point rows are
    tiled to 2048 in the file). Every row of the file is prepared once and cached; splits slice that.
    """
    _check_split(split, tuple(_NPZ_SPLIT_CODES))
    npz_path = Path(path) if path is not None else default_modelnet40_npz()
    with np.load(npz_path) as f:
        labels = f["labels"].astype(np.int64)
        codes = f["split"]
        shape_ids = [str(s) for s in f["shape_ids"]]
        class_names = [str(c) for c in f["class_names"]]

        def compute() -> dict[str, np.ndarray]:
            raw, counts = f["points"], f["n_points"]
            rows = [raw[i, : counts[i]].astype(np.float32) for i in range(len(raw))]
            return {"points": prepare_many(rows, shape_ids, num_points)}

        key = cache_key("modelnet40-npz", file_fingerprint(npz_path), num_points=num_points, up_axis="y")
        points = cached_arrays(cache_dir, key, compute)["points"]
    rows = np.flatnonzero(np.isin(codes, _NPZ_SPLIT_CODES[split]))
    return PointCloudSet(points[rows], labels[rows], class_names, [shape_ids[i] for i in rows])


def read_modelnet40_npz(path: str | os.PathLike | None = None, split: Split = "all") -> RawShapes:
    """The shared npz's rows of `split`, unprepared: `points[i, :n_points[i]]` as float32."""
    _check_split(split, tuple(_NPZ_SPLIT_CODES))
    data = read_npz(Path(path) if path is not None else default_modelnet40_npz())
    rows = np.flatnonzero(np.isin(data["split"], _NPZ_SPLIT_CODES[split]))
    points, counts = data["points"], data["n_points"]
    return RawShapes(
        clouds=[points[i, : counts[i]].astype(np.float32) for i in rows],
        labels=data["labels"][rows].astype(np.int64),
        class_names=[str(c) for c in data["class_names"]],
        shape_ids=[str(data["shape_ids"][i]) for i in rows],
    )


def _class_names(root: Path, candidates: tuple[str, ...], default: tuple[str, ...]) -> list[str]:
    for name in candidates:
        if (root / name).exists():
            return [line.strip() for line in (root / name).read_text().splitlines() if line.strip()]
    return list(default)


def _h5_shape_ids(h5_path: Path, count: int) -> list[str]:
    """Ids from the `ply_data_<split>_<k>_id2file.json` that comes with the ModelNet40 h5 release, if any."""
    digits = re.findall(r"\d+", h5_path.stem)
    base = re.sub(r"\d+$", "", h5_path.stem)
    sidecar = h5_path.with_name(f"{base}_{digits[-1]}_id2file.json") if digits else None
    if sidecar is not None and sidecar.exists():
        names = json.loads(sidecar.read_text())
        if len(names) == count:
            return [Path(n).stem for n in names]
    return [f"{h5_path.stem}_{i:04d}" for i in range(count)]


def load_modelnet40_h5(
    root: str | os.PathLike,
    split: Split = "train",
    num_points: int = 1024,
    cache_dir: str | os.PathLike | None = None,
    up_axis: str = "y",
) -> PointCloudSet:
    """`modelnet40_ply_hdf5_2048/`: `ply_data_{train,test}{k}.h5` with `data` [B, 2048, 3] and `label` [B, 1]."""
    _check_split(split, ("train", "test", "all"))
    root = Path(root)
    files = [f for s in (("train", "test") if split == "all" else (split,)) for f in split_h5_files(root, s)]
    clouds: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    ids: list[str] = []
    for f in files:
        with h5py.File(f, "r") as h5:
            data = np.asarray(h5["data"][:], dtype=np.float32)
            clouds.extend(data[..., :3])
            labels.append(np.asarray(h5["label"][:]).reshape(-1).astype(np.int64))
            ids.extend(_h5_shape_ids(f, len(data)))
    fingerprint = "|".join(f"{f.name}:{file_fingerprint(f)}" for f in files)
    key = cache_key("modelnet40-h5", fingerprint, num_points=num_points, up_axis=up_axis)
    points = cached_arrays(cache_dir, key, lambda: {"points": prepare_many(clouds, ids, num_points, up_axis)})
    names = _class_names(root, ("shape_names.txt", "modelnet40_shape_names.txt"), MODELNET40_CLASSES)
    return PointCloudSet(points["points"], np.concatenate(labels), names, ids)


def _read_txt_cloud(path: Path) -> np.ndarray:
    """`x,y,z,nx,ny,nz` per line (commas or spaces) -> float32 [P, 3]; normals are not used."""
    text = path.read_bytes().replace(b",", b" ")
    columns = len(text.lstrip().split(b"\n", 1)[0].split())
    return np.array(text.split(), dtype=np.float32).reshape(-1, columns)[:, :3]


def load_modelnet40_txt(
    root: str | os.PathLike,
    split: Split = "train",
    num_points: int = 1024,
    cache_dir: str | os.PathLike | None = None,
    up_axis: str = "y",
) -> PointCloudSet:
    """`modelnet40_normal_resampled/`: `<class>/<id>.txt` listed by `modelnet40_{train,test}.txt`.

    All points of each file (10,000 in the release) go through FPS, not just the first `num_points` lines.
    """
    _check_split(split, ("train", "test", "all"))
    root = Path(root)
    names = _class_names(root, ("modelnet40_shape_names.txt", "shape_names.txt"), MODELNET40_CLASSES)
    index = {name: i for i, name in enumerate(names)}
    ids: list[str] = []
    for s in ("train", "test") if split == "all" else (split,):
        listing = root / f"modelnet40_{s}.txt"
        ids.extend(line.strip() for line in listing.read_text().splitlines() if line.strip())
    classes = [sid.rsplit("_", 1)[0] for sid in ids]  # "night_stand_0001" -> "night_stand"
    files = [root / c / f"{sid}.txt" for c, sid in zip(classes, ids, strict=True)]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} listed shapes are missing, e.g. {missing[0]}")
    key = cache_key("modelnet40-txt", tree_fingerprint(root, files), num_points=num_points, up_axis=up_axis)
    points = cached_arrays(
        cache_dir,
        key,
        lambda: {"points": prepare_many((_read_txt_cloud(f) for f in files), ids, num_points, up_axis)},
    )
    labels = np.array([index[c] for c in classes], dtype=np.int64)
    return PointCloudSet(points["points"], labels, names, ids)
