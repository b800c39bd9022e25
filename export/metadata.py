"""`crosspoint.json`: what the gateway needs to serve a version (torch-free).

Preprocessing (num_points, k, up axis, normalization) travels from the checkpoint's JSON; names
(classes, ShapeNetPart categories and parts) come from the checkpoint or the taxonomy module.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from export.contract import ModelSpec
from export.repository import METADATA_FORMAT

DEFAULT_MAX_POINTS = 4096  # the kNN builds an N x N matrix per layer: 64 MB per cloud at 4096
DEFAULT_PREPROCESS = {
    "num_points": 1024,
    "up_axis": "y",
    "normalization": "unit_sphere",
    "sampling": "surface+fps",
}


class MetadataError(ValueError):
    """The checkpoint lacks something the served model must carry (class names, part taxonomy)."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def preprocess_settings(checkpoint_config: dict[str, Any], max_points: int | None = None) -> dict[str, Any]:
    """num_points, min/max_points, k, up_axis, normalization, sampling for the served model.

    min_points = k: the kNN takes the k nearest (self included) with a constant k, so N >= k is
    exactly what the graph needs; the gateway refuses or resamples below it.
    """
    pre = {**DEFAULT_PREPROCESS, **(checkpoint_config.get("preprocess") or {})}
    k = int(checkpoint_config["model"]["args"].get("k", 0))  # PointNet has no kNN
    num_points = int(pre["num_points"])
    if num_points < max(k, 1):
        raise MetadataError(f"preprocess.num_points {num_points} is below k {k}")
    return {
        "num_points": num_points,
        "min_points": max(k, 1),
        "max_points": max(max_points or DEFAULT_MAX_POINTS, num_points),
        "k": k,
        "up_axis": pre["up_axis"],
        "normalization": pre["normalization"],
        "sampling": pre.get("sampling"),
    }


def class_names(checkpoint_config: dict[str, Any], num_classes: int) -> list[str]:
    names = checkpoint_config.get("class_names")
    if not names or len(names) != num_classes:
        raise MetadataError(
            f"classify needs the checkpoint's class_names ({num_classes} names in logit order); "
            f"found {None if names is None else len(names)}"
        )
    return [str(name) for name in names]


def part_taxonomy(checkpoint_config: dict[str, Any], num_parts: int) -> dict[str, Any]:
    """category_names, part_names and category_parts ({category: [global part ids]})."""
    try:
        from crosspoint.data import shapenetpart_meta as meta
    except ImportError:
        meta = None  # type: ignore[assignment]
    if meta is not None:
        taxonomy = {
            "category_names": list(meta.CATEGORY_NAMES),
            "part_names": list(meta.PART_NAMES),
            "category_parts": {name: list(meta.part_range(name)) for name in meta.CATEGORY_NAMES},
        }
    else:
        taxonomy = {
            key: checkpoint_config.get(key) for key in ("category_names", "part_names", "category_parts")
        }
        if not all(taxonomy.values()):
            raise MetadataError(
                "segment needs category_names, part_names and category_parts in the checkpoint "
                "(crosspoint.data.shapenetpart_meta is not available)"
            )
    if len(taxonomy["part_names"]) != num_parts:
        raise MetadataError(f"{len(taxonomy['part_names'])} part names for a {num_parts}-part model")
    return taxonomy


def build_metadata(
    *,
    served: str,
    spec: ModelSpec,
    checkpoint_config: dict[str, Any],
    checkpoint_path: Path,
    settings: dict[str, Any],
    files: dict[str, Path],
    parity: dict[str, Any],
    export_info: dict[str, Any],
) -> dict[str, Any]:
    """The crosspoint.json document of one exported version."""
    args = checkpoint_config["model"]["args"]
    outputs = {t.name: t for t in spec.outputs}
    document: dict[str, Any] = {
        "format": METADATA_FORMAT,
        "model": served,
        "network": {"name": checkpoint_config["model"]["name"], "args": args},
        "inputs": [t.to_dict() for t in spec.inputs],
        "outputs": [t.to_dict() for t in spec.outputs],
        **settings,
        "embedding_dim": outputs["embedding"].dims[0] if "embedding" in outputs else None,
        "projection_dim": outputs["projection"].dims[0] if "projection" in outputs else None,
        "class_names": class_names(checkpoint_config, outputs["logits"].dims[0])
        if "logits" in outputs
        else None,
        "category_names": None,
        "part_names": None,
        "category_parts": None,
    }
    if served == "segment":
        document.update(part_taxonomy(checkpoint_config, outputs["part_logits"].dims[-1]))
    document["checkpoint"] = {
        "file": checkpoint_path.name,
        "sha256": file_sha256(checkpoint_path),
        "weights_sha256": checkpoint_config.get("weights_sha256"),
        "training": checkpoint_config.get("training"),
    }
    document["exported_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    document["export"] = export_info
    document["files"] = {
        name: {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        for name, path in sorted(files.items())
    }
    document["parity"] = parity
    return document
