"""Datasets for CrossPoint training and evaluation.

Readers turn the shared npz files and the standard public layouts into in-memory sets, prepared with
`crosspoint.geometry.prepare` (the gateway's preprocessing) and cached on disk:

    train = load_modelnet40_npz(split="train")          # PointCloudSet, 9,843 x 1024 x 3
    tr_idx, val_idx = train_val_split(train.labels)      # stratified, deterministic
    parts = load_shapenetpart_npz(split="train")         # PartSet
    raw = read_modelnet40_npz(split="test")              # RawShapes: the stored points, unprepared

Every name below is imported on first use: `crosspoint.data.shapenetpart_meta` (which the gateway may
read) must not pull in h5py or torch, which only the training extra installs.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crosspoint.data.mesh_folder import load_mesh_folder
    from crosspoint.data.modelnet import (
        MODELNET40_CLASSES,
        load_modelnet40_h5,
        load_modelnet40_npz,
        load_modelnet40_txt,
        read_modelnet40_npz,
    )
    from crosspoint.data.prepared import default_cache_dir, read_npz, shared_data_dir
    from crosspoint.data.scanobjectnn import SCANOBJECTNN_CLASSES, load_scanobjectnn_h5
    from crosspoint.data.sets import PartSet, PointCloudSet, RawShapes, shape_seed, train_val_split
    from crosspoint.data.shapenetpart import (
        load_shapenetpart_h5,
        load_shapenetpart_npz,
        load_shapenetpart_txt,
        read_shapenetpart_npz,
    )
    from crosspoint.data.torch_datasets import PartDataset, PointDataset, PretrainDataset

_MODULES = {
    "mesh_folder": ("load_mesh_folder",),
    "modelnet": (
        "MODELNET40_CLASSES",
        "load_modelnet40_h5",
        "load_modelnet40_npz",
        "load_modelnet40_txt",
        "read_modelnet40_npz",
    ),
    "prepared": ("default_cache_dir", "read_npz", "shared_data_dir"),
    "scanobjectnn": ("SCANOBJECTNN_CLASSES", "load_scanobjectnn_h5"),
    "sets": ("PartSet", "PointCloudSet", "RawShapes", "shape_seed", "train_val_split"),
    "shapenetpart": (
        "load_shapenetpart_h5",
        "load_shapenetpart_npz",
        "load_shapenetpart_txt",
        "read_shapenetpart_npz",
    ),
    "torch_datasets": ("PartDataset", "PointDataset", "PretrainDataset"),
}
_WHERE = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"crosspoint.data.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [  # the names of _MODULES, spelled out for linters and `from crosspoint.data import *`
    "MODELNET40_CLASSES",
    "SCANOBJECTNN_CLASSES",
    "PartDataset",
    "PartSet",
    "PointCloudSet",
    "PointDataset",
    "PretrainDataset",
    "RawShapes",
    "default_cache_dir",
    "load_mesh_folder",
    "load_modelnet40_h5",
    "load_modelnet40_npz",
    "load_modelnet40_txt",
    "load_scanobjectnn_h5",
    "load_shapenetpart_h5",
    "load_shapenetpart_npz",
    "load_shapenetpart_txt",
    "read_modelnet40_npz",
    "read_npz",
    "read_shapenetpart_npz",
    "shape_seed",
    "shared_data_dir",
    "train_val_split",
]
