"""What the benchmarks run on: a model repository with its checkpoints, and real shapes.

Models: the shipped `model_repository/` when it holds embed, classify and segment and their
checkpoints can be found (`runs/**/*.safetensors` whose sha256 the versions record); otherwise
default-size random-weight checkpoints (DGCNN k=20, 40 classes, 1024 points; part-seg k=40, 2048
points), saved in the training form and exported with the real exporter into `bench/.cache/`
(reused while the export code is unchanged). Speed does not depend on the weights.

Shapes: ModelNet40 test shapes (and ShapeNetPart for segment) from the shared data, read by
`crosspoint.data` and prepared by `crosspoint.geometry.prepare` through
`export.parity.parity_inputs`, the inputs parity uses.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import REPO_ROOT

SERVED = ("embed", "classify", "segment")
CACHE = REPO_ROOT / "bench" / ".cache"
SHIPPED = REPO_ROOT / "model_repository"
# The export code the cached repository was built with (the models' inference forms included): a
# change rebuilds it.
_EXPORT_SOURCES = (
    "crosspoint/models/inference.py",
    "crosspoint/models/_edgeconv.py",
    "crosspoint/models/dgcnn.py",
    "crosspoint/models/partseg.py",
    "export/graphs.py",
    "export/onnx_export.py",
    "export/exporter.py",
    "export/triton_config.py",
    "export/metadata.py",
)


@dataclass(frozen=True)
class BenchModels:
    repository: Path
    classifier: Path  # checkpoint serving embed + classify
    segmenter: Path  # checkpoint serving segment
    source: str  # one line for the reports: which models these are

    def checkpoint(self, served: str) -> Path:
        return self.segmenter if served == "segment" else self.classifier

    def version_dir(self, served: str) -> Path:
        from export.repository import latest_version

        return self.repository / served / str(latest_version(self.repository, served))


def _complete(repository: Path) -> bool:
    from export.repository import latest_version

    return all(latest_version(repository, served) is not None for served in SERVED)


def _shipped_checkpoints() -> tuple[Path, Path] | None:
    """Checkpoints under runs/ whose sha256 the shipped versions record, if all are there."""
    from crosspoint.checkpoint import read_config
    from export.repository import read_model_metadata

    wanted = {}
    for served in ("classify", "segment"):
        wanted[served] = read_model_metadata(SHIPPED, served).checkpoint_sha256
    found: dict[str, Path] = {}
    # runs/: what training writes; weights/: the checkpoints the shipped versions were exported from.
    candidates = [
        *(REPO_ROOT / "runs").glob("**/*.safetensors"),
        *(REPO_ROOT / "weights").glob("*.safetensors"),
    ]
    for path in sorted(candidates):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        for served, sha in wanted.items():
            if sha == digest:
                read_config(path)
                found[served] = path
    if len(found) == 2:
        return found["classify"], found["segment"]
    return None


def _export_stamp() -> str:
    digest = hashlib.sha256()
    for name in _EXPORT_SOURCES:
        digest.update((REPO_ROOT / name).read_bytes())
    return digest.hexdigest()[:16]


def random_checkpoints(directory: Path, seed: int = 0) -> tuple[Path, Path]:
    """Default-size random-weight checkpoints in the training form (EdgeConv on edges)."""
    import torch

    from crosspoint import checkpoint
    from crosspoint.data import MODELNET40_CLASSES
    from crosspoint.models import create_model

    torch.manual_seed(seed)
    names = list(MODELNET40_CLASSES)
    directory.mkdir(parents=True, exist_ok=True)
    cls_path, seg_path = directory / "cls.safetensors", directory / "seg.safetensors"
    preprocess = checkpoint.DEFAULT_PREPROCESS
    checkpoint.save(
        cls_path,
        create_model("dgcnn", k=20, num_classes=40, edgeconv="edge"),
        {"class_names": names, "preprocess": {**preprocess, "num_points": 1024}},
    )
    checkpoint.save(
        seg_path, create_model("dgcnn_partseg", k=40), {"preprocess": {**preprocess, "num_points": 2048}}
    )
    return cls_path, seg_path


def bench_models(repository: Path | None = None, parity_shapes: int = 2) -> BenchModels:
    """The models to benchmark (see the module doc). `repository`: use this one, with checkpoints
    in `<repository>/../checkpoints/{cls,seg}.safetensors`, building it there if it is empty."""
    if repository is None and _complete(SHIPPED):
        found = _shipped_checkpoints()
        if found is not None:
            return BenchModels(SHIPPED, *found, source=f"shipped {SHIPPED.relative_to(REPO_ROOT)}/")
    stamp = _export_stamp()
    root = Path(repository).parent if repository is not None else CACHE / f"random-default-{stamp}"
    repo = Path(repository) if repository is not None else root / "repository"
    ckpt = root / "checkpoints"
    source = (
        "random-weight default-size checkpoints (DGCNN k=20 N=1024 40 classes; part-seg k=40 N=2048), "
        f"exported by export_checkpoints into {repo}"
        + (" (model_repository/ has no models)" if not _complete(SHIPPED) else "")
    )
    if _complete(repo) and (ckpt / "cls.safetensors").is_file() and (ckpt / "seg.safetensors").is_file():
        return BenchModels(repo, ckpt / "cls.safetensors", ckpt / "seg.safetensors", source)
    from export import export_checkpoints

    print(f"exporting random-weight default-size models into {repo} (once; about a minute)", flush=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as tmp:
        cls_path, seg_path = random_checkpoints(Path(tmp) / "checkpoints")
        export_checkpoints([cls_path, seg_path], Path(tmp) / "repository", parity_shapes=parity_shapes)
        root.mkdir(parents=True, exist_ok=True)
        for name in ("checkpoints", "repository"):
            if (root / name).exists():
                shutil.rmtree(root / name)
            (Path(tmp) / name).rename(root / name)
    return BenchModels(repo, ckpt / "cls.safetensors", ckpt / "seg.safetensors", source)


def prepared_batch(served: str, batch: int, num_points: int) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Model inputs for `batch` real shapes prepared to `num_points` (ShapeNetPart has 20: repeated),
    and what they are (`export.parity.parity_inputs`' source: shape ids, part ranges for segment)."""
    from export.parity import parity_inputs

    inputs = parity_inputs(served, num_points, min(batch, 20) if served == "segment" else batch)
    reps = -(-batch // len(inputs.arrays["points"]))
    arrays = {k: np.ascontiguousarray(np.concatenate([a] * reps)[:batch]) for k, a in inputs.arrays.items()}
    source = dict(inputs.source)
    if "category_part_ranges" in source:
        source["category_part_ranges"] = (source["category_part_ranges"] * reps)[:batch]
    return arrays, source


@dataclass(frozen=True)
class RawShape:
    """An unprepared real shape, as a client would upload it."""

    points: np.ndarray  # float32 [n, 3]
    name: str  # shape id
    category: str | None = None  # ShapeNetPart category (segment)


def raw_shapes(served: str, count: int) -> list[RawShape]:
    """`count` raw shapes: ModelNet40 test shapes (all distinct points) or the ShapeNetPart shapes."""
    from crosspoint.data.modelnet import read_modelnet40_npz
    from crosspoint.data.shapenetpart import read_shapenetpart_npz

    if served == "segment":
        parts = read_shapenetpart_npz(split="all")
        return [
            RawShape(parts.clouds[i], parts.shape_ids[i], parts.class_names[parts.labels[i]])
            for i in range(min(count, len(parts)))
        ]
    test = read_modelnet40_npz(split="test")
    rows = np.linspace(0, len(test) - 1, count).round().astype(int)
    return [RawShape(test.clouds[i], test.shape_ids[i]) for i in rows]
