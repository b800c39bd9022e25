"""Any folder of mesh (or point) files, one sub-folder per class: `root/<class>/[train|test/]<name>.<ext>`.

This is the raw ModelNet layout (`ModelNet40/chair/train/chair_0001.off`); each file goes through
`geometry.load` (the gateway's hardened reader) and `geometry.prepare` (area-weighted surface samples,
then FPS), so a model trained from meshes sees exactly what an uploaded mesh gives the server.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np

import crosspoint.geometry as geometry
from crosspoint.data.prepared import cache_key, cached_arrays, prepare_cloud, tree_fingerprint
from crosspoint.data.sets import PointCloudSet

log = logging.getLogger(__name__)


def _class_files(class_dir: Path, split: str) -> list[Path]:
    has_splits = (class_dir / "train").is_dir() or (class_dir / "test").is_dir()
    if has_splits:
        folders = [class_dir / s for s in (("train", "test") if split == "all" else (split,))]
    elif split == "all":
        folders = [class_dir]
    else:
        raise ValueError(f"{class_dir} has no train/ or test/ sub-folder; load it with split='all'")
    suffixes = {f".{fmt}" for fmt in geometry.SUPPORTED_FORMATS}
    return sorted(p for d in folders if d.is_dir() for p in d.iterdir() if p.suffix.lower() in suffixes)


def load_mesh_folder(
    root: str | os.PathLike,
    num_points: int = 1024,
    split: Literal["train", "test", "all"] = "all",
    up_axis: str = "y",
    cache_dir: str | os.PathLike | None = None,
    on_error: Literal["raise", "skip"] = "raise",
) -> PointCloudSet:
    """Class = sub-folder name (sorted); shape id = path relative to `root` without the extension.

    `up_axis` is the files' up axis ("z" for raw ModelNet .off). `on_error="skip"` drops files that
    `geometry` rejects (logged), e.g. the handful of ModelNet .off files with a broken header.
    """
    root = Path(root)
    class_names = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(c, f) for c in class_names for f in _class_files(root / c, split)]
    if not files:
        raise FileNotFoundError(f"no mesh files under {root} for split {split!r}")

    def compute() -> dict[str, np.ndarray]:
        points, labels, ids = [], [], []
        for (cls, f), sid in zip(files, _ids(root, files), strict=True):
            try:
                cloud = prepare_cloud(geometry.load(f), sid, num_points, up_axis)
            except geometry.GeometryError as exc:
                if on_error == "raise":
                    raise ValueError(f"{f}: {exc}") from exc
                log.warning("skipping %s: %s", f, exc)
                continue
            points.append(cloud)
            labels.append(class_names.index(cls))
            ids.append(sid)
        if not points:
            raise ValueError(f"every file under {root} was rejected")
        return {"points": np.stack(points), "labels": np.array(labels, np.int64), "ids": np.array(ids)}

    fingerprint = tree_fingerprint(root, (f for _, f in files))
    key = cache_key("mesh-folder", fingerprint, num_points=num_points, up_axis=up_axis, on_error=on_error)
    arrays = cached_arrays(cache_dir, key, compute)
    return PointCloudSet(arrays["points"], arrays["labels"], class_names, [str(s) for s in arrays["ids"]])


def _ids(root: Path, files: list[tuple[str, Path]]) -> Iterator[str]:
    for _, f in files:
        yield f.relative_to(root).with_suffix("").as_posix()
