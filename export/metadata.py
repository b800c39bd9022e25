"""`crosspoint.json`: the serving metadata of one exported version, read and written in one place.

`ServingMetadata` is the document as a typed value: export builds it (`build_metadata`) and writes it
(`to_json`); the gateway, the batch client and the benchmarks read it (`export.repository.
read_model_metadata`, which returns one). Every other module uses its attributes, never the JSON
keys. Torch-free, so the gateway image can import it.

Preprocessing (num_points, k, up axis, normalization) travels from the checkpoint's JSON; names
(classes, ShapeNetPart categories and parts) come from the checkpoint or the taxonomy module.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from crosspoint.checkpoint import DEFAULT_PREPROCESS
from export.contract import ModelSpec, TensorSpec

METADATA_FORMAT = "crosspoint-model/1"
DEFAULT_MAX_POINTS = 4096  # the kNN builds an N x N matrix per layer: 64 MB per cloud at 4096
# Keys a served version cannot do without; export always writes them (and everything else).
REQUIRED_KEYS = (
    "num_points",
    "min_points",
    "max_points",
    "k",
    "up_axis",
    "normalization",
    "class_names",
    "category_names",
    "part_names",
    "category_parts",
    "checkpoint",
    "exported_at",
    "parity",
)


class MetadataError(ValueError):
    """A crosspoint.json (or the checkpoint it is built from) lacks or contradicts what serving needs."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


@dataclass(frozen=True)
class ServingMetadata:
    """One version's crosspoint.json. Field defaults are the one set of defaults (the checkpoint's
    `DEFAULT_PREPROCESS`); `from_dict` demands `REQUIRED_KEYS`, so a file never falls back to them."""

    model: str = ""
    network: dict[str, Any] = field(default_factory=dict)  # {name, args} of the checkpoint's net
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    num_points: int = int(DEFAULT_PREPROCESS["num_points"])
    min_points: int = 20  # = k: the kNN needs N >= k
    max_points: int = DEFAULT_MAX_POINTS
    k: int = 20
    up_axis: str = str(DEFAULT_PREPROCESS["up_axis"])
    normalization: str = str(DEFAULT_PREPROCESS["normalization"])
    sampling: str | None = str(DEFAULT_PREPROCESS["sampling"])
    embedding_dim: int | None = None
    projection_dim: int | None = None
    class_names: list[str] | None = None  # classify: logit order
    category_names: list[str] | None = None  # segment: the 16 ShapeNetPart categories
    part_names: list[str] | None = None  # segment: the 50 parts, global order
    category_parts: dict[str, list[int]] | None = None  # segment: category -> global part ids
    checkpoint: dict[str, Any] = field(default_factory=dict)  # file, sha256, weights_sha256, training
    exported_at: str = ""
    export: dict[str, Any] = field(default_factory=dict)  # opset, tool versions, seconds
    files: dict[str, Any] = field(default_factory=dict)  # name -> {bytes, sha256}
    parity: dict[str, Any] = field(default_factory=dict)  # summary of parity.json
    extra: dict[str, Any] = field(default_factory=dict)  # keys this reader does not know, kept as read
    version: int | None = None  # the version directory it was read from (not stored in the file)

    def __post_init__(self) -> None:
        problems = self._consistency_problems()
        if problems:
            raise MetadataError(problems)

    def _consistency_problems(self) -> list[str]:
        problems = []
        if not self.min_points <= self.num_points <= self.max_points:
            problems.append("needs min_points <= num_points <= max_points")
        if self.min_points < self.k:
            problems.append(f"min_points {self.min_points} < k {self.k}: kNN needs N >= k")
        dims = {t.name: list(t.dims) for t in self.outputs}
        if (
            "embedding" in dims
            and self.embedding_dim is not None
            and [self.embedding_dim] != dims["embedding"]
        ):
            problems.append(f"embedding_dim {self.embedding_dim}; embedding dims {dims['embedding']}")
        if "logits" in dims and [len(self.class_names or [])] != dims["logits"]:
            problems.append(
                f"class_names has {len(self.class_names or [])} names; logits dims {dims['logits']}"
            )
        if "part_logits" in dims and [len(self.part_names or [])] != dims["part_logits"][-1:]:
            problems.append(
                f"part_names has {len(self.part_names or [])} names; part_logits {dims['part_logits']}"
            )
        return problems

    @property
    def checkpoint_sha256(self) -> str | None:
        value = self.checkpoint.get("sha256") or self.checkpoint.get("weights_sha256")
        return str(value) if value else None

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    @property
    def training(self) -> dict[str, Any]:
        """The checkpoint's training provenance ({} when it has none)."""
        return dict(self.checkpoint.get("training") or {})

    def head_split(self) -> tuple[float, int]:
        """The validation fraction and seed the class head was trained with (0.1, 0 if unknown): a
        fitted linear head's, or a fine-tuning run's (both split train with `train_val_split`)."""
        head = self.training.get("head_config") or self.training.get("classify_config") or {}
        return float(head.get("val_fraction", 0.1)), int(head.get("seed", 0))

    @classmethod
    def from_dict(cls, document: Mapping[str, Any], version: int | None = None) -> ServingMetadata:
        """Validate a parsed crosspoint.json; MetadataError lists every problem found."""
        if document.get("format") != METADATA_FORMAT:
            raise MetadataError(f"format {document.get('format')!r}, expected {METADATA_FORMAT!r}")
        missing = [f"missing key {key!r}" for key in REQUIRED_KEYS if key not in document]
        if missing:
            raise MetadataError(missing)
        reader = _Reader(document)
        outputs = reader.tensors("outputs")
        dims = {t.name: t.dims for t in outputs}
        values: dict[str, Any] = {
            "model": reader.text("model", ""),
            "network": reader.mapping("network"),
            "inputs": reader.tensors("inputs"),
            "outputs": outputs,
            "num_points": reader.integer("num_points", minimum=1),
            "min_points": reader.integer("min_points", minimum=1),
            "max_points": reader.integer("max_points", minimum=1),
            "k": reader.integer("k", minimum=0),
            "up_axis": reader.text("up_axis"),
            "normalization": reader.text("normalization"),
            "sampling": reader.optional_text("sampling", DEFAULT_PREPROCESS["sampling"]),
            # Written from the outputs; a document without the key gets them from there too.
            "embedding_dim": reader.optional_integer("embedding_dim", _width(dims.get("embedding"))),
            "projection_dim": reader.optional_integer("projection_dim", _width(dims.get("projection"))),
            "class_names": reader.names("class_names"),
            "category_names": reader.names("category_names"),
            "part_names": reader.names("part_names"),
            "checkpoint": reader.mapping("checkpoint"),
            "exported_at": reader.text("exported_at"),
            "export": reader.mapping("export"),
            "files": reader.mapping("files"),
            "parity": reader.mapping("parity"),
        }
        values["category_parts"] = reader.category_parts(values["part_names"])
        if reader.problems:
            raise MetadataError(reader.problems)
        known = {f.name for f in dataclasses.fields(cls)}
        extra = {key: value for key, value in document.items() if key not in known and key != "format"}
        return cls(**values, extra=extra, version=version)

    @classmethod
    def read(cls, path: str | os.PathLike[str], version: int | None = None) -> ServingMetadata:
        """Read and validate one crosspoint.json (FileNotFoundError when there is none)."""
        try:
            document = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise MetadataError(f"not valid JSON ({exc})") from exc
        if not isinstance(document, dict):
            raise MetadataError("not a JSON object")
        return cls.from_dict(document, version)

    def to_dict(self) -> dict[str, Any]:
        """The document as export writes it (key order included; `version` is the directory's)."""
        return {
            "format": METADATA_FORMAT,
            "model": self.model,
            "network": self.network,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "num_points": self.num_points,
            "min_points": self.min_points,
            "max_points": self.max_points,
            "k": self.k,
            "up_axis": self.up_axis,
            "normalization": self.normalization,
            "sampling": self.sampling,
            "embedding_dim": self.embedding_dim,
            "projection_dim": self.projection_dim,
            "class_names": self.class_names,
            "category_names": self.category_names,
            "part_names": self.part_names,
            "category_parts": self.category_parts,
            "checkpoint": self.checkpoint,
            "exported_at": self.exported_at,
            "export": self.export,
            "files": self.files,
            "parity": self.parity,
            **self.extra,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"


def _width(dims: tuple[int, ...] | None) -> int | None:
    return dims[0] if dims is not None and len(dims) == 1 and dims[0] > 0 else None


class _Reader:
    """Typed access to a parsed document; type problems are collected, not raised one by one."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        self.document = document
        self.problems: list[str] = []

    def _bad(self, key: str, expected: str) -> None:
        self.problems.append(f"{key} {self.document.get(key)!r} is not {expected}")

    def integer(self, key: str, minimum: int) -> int:
        value = self.document.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self._bad(key, f"an integer >= {minimum}")
            return minimum
        return value

    def optional_integer(self, key: str, default: int | None) -> int | None:
        if key not in self.document:
            return default
        value = self.document[key]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self._bad(key, "a positive integer or null")
            return None
        return value

    def text(self, key: str, default: str | None = None) -> str:
        value = self.document.get(key, default)
        if not isinstance(value, str):
            self._bad(key, "a string")
            return ""
        return value

    def optional_text(self, key: str, default: str | None) -> str | None:
        value = self.document.get(key, default)
        if value is not None and not isinstance(value, str):
            self._bad(key, "a string or null")
            return None
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self.document.get(key, {})
        if not isinstance(value, dict):
            self._bad(key, "an object")
            return {}
        return value

    def names(self, key: str) -> list[str] | None:
        value = self.document.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self._bad(key, "a list of strings or null")
            return None
        return list(value)

    def tensors(self, key: str) -> tuple[TensorSpec, ...]:
        found = []
        for entry in self.document.get(key) or []:
            try:
                dims = tuple(entry["dims"])
                if not all(isinstance(d, int) and not isinstance(d, bool) for d in dims):
                    raise TypeError(dims)
                found.append(TensorSpec(str(entry["name"]), dims, str(entry["data_type"])))
            except (KeyError, TypeError):
                self.problems.append(f"{key}: {entry!r} is not {{name, data_type, dims}}")
        return tuple(found)

    def category_parts(self, part_names: list[str] | None) -> dict[str, list[int]] | None:
        """Category name -> global part ids; part names are accepted too (a hand-written file)."""
        raw = self.document.get("category_parts")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            self._bad("category_parts", "an object")
            return None
        parts = part_names or []
        result: dict[str, list[int]] = {}
        for category, members in raw.items():
            ids = []
            for member in members or []:
                if isinstance(member, int) and not isinstance(member, bool):
                    ids.append(member)
                elif isinstance(member, str) and member in parts:
                    ids.append(parts.index(member))
                else:
                    self.problems.append(f"category_parts[{category!r}]: {member!r} is not a part")
            result[str(category)] = ids
        return result


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
) -> ServingMetadata:
    """The crosspoint.json of one exported version (validated like every read)."""
    outputs = {t.name: t for t in spec.outputs}
    taxonomy: dict[str, Any] = {}
    if served == "segment":
        taxonomy = part_taxonomy(checkpoint_config, outputs["part_logits"].dims[-1])
    return ServingMetadata(
        model=served,
        network={"name": checkpoint_config["model"]["name"], "args": checkpoint_config["model"]["args"]},
        inputs=spec.inputs,
        outputs=spec.outputs,
        **settings,
        embedding_dim=outputs["embedding"].dims[0] if "embedding" in outputs else None,
        projection_dim=outputs["projection"].dims[0] if "projection" in outputs else None,
        class_names=class_names(checkpoint_config, outputs["logits"].dims[0])
        if "logits" in outputs
        else None,
        **taxonomy,
        checkpoint={
            "file": checkpoint_path.name,
            "sha256": file_sha256(checkpoint_path),
            "weights_sha256": checkpoint_config.get("weights_sha256"),
            "training": checkpoint_config.get("training"),
        },
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        export=export_info,
        files={
            name: {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
            for name, path in sorted(files.items())
        },
        parity=parity,
    )
