"""Checkpoints: one safetensors file holding the weights and a JSON document (never pickled).

The JSON (safetensors metadata key `crosspoint`) is self-describing: model name and config,
preprocessing settings, class names and training provenance, so export and serving never need the
training command line. `weights_sha256` hashes the tensors so a copy can be verified.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "crosspoint/1"
METADATA_KEY = "crosspoint"
DEFAULT_PREPROCESS: dict[str, Any] = {  # the one set of preprocessing defaults (export and serving read it)
    "num_points": 1024,
    "up_axis": "y",
    "normalization": "unit_sphere",
    "sampling": "surface+fps",
}


class CheckpointError(ValueError):
    """The file is not a CrossPoint checkpoint, or its weights do not match its config."""


@dataclass
class Checkpoint:
    model: Any  # torch.nn.Module, built from the stored config and weights
    config: dict[str, Any]
    path: Path | None = None
    state_dict: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return str(self.config["model"]["name"])

    @property
    def preprocess(self) -> dict[str, Any]:
        return dict(self.config.get("preprocess") or DEFAULT_PREPROCESS)

    @property
    def class_names(self) -> list[str] | None:
        names = self.config.get("class_names")
        return list(names) if names is not None else None


def weights_sha256(tensors: Mapping[str, Any]) -> str:
    """Hash of names, dtypes, shapes and bytes in sorted order: independent of file layout."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = _to_numpy(tensors[name])
        digest.update(f"{name}|{array.dtype.str}|{list(array.shape)}|".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def save(path: str | os.PathLike[str], model: Any, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write `model` (a registry model) and `config` (extra sections) to `path`; returns the JSON."""
    from safetensors.torch import save_file

    name = getattr(model, "model_name", None)
    if name is None:
        raise CheckpointError("model was not built by crosspoint.models.create_model (no model_name)")
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    document: dict[str, Any] = {"format": FORMAT, "preprocess": dict(DEFAULT_PREPROCESS), "class_names": None}
    document.update(dict(config or {}))
    document["model"] = {"name": name, "args": dataclasses.asdict(model.config)}
    document["weights_sha256"] = weights_sha256(state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={METADATA_KEY: json.dumps(document, sort_keys=True)})
    os.replace(tmp, path)  # a reader never sees a half-written checkpoint
    return document


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON document alone, without torch (for export tooling and the gateway)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types for a foreign file
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from exc
    if METADATA_KEY not in metadata:
        raise CheckpointError(f"{path}: safetensors file without a '{METADATA_KEY}' document")
    document: dict[str, Any] = json.loads(metadata[METADATA_KEY])
    if document.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {document.get('format')!r}")
    return document


def load(path: str | os.PathLike[str], *, verify: bool = True, strict: bool = True) -> Checkpoint:
    """Rebuild the model from the stored config and load its weights (CPU; move it yourself)."""
    from safetensors.torch import load_file

    from crosspoint.models import create_model

    document = read_config(path)
    state = load_file(str(path))
    if verify and weights_sha256(state) != document.get("weights_sha256"):
        raise CheckpointError(f"{path}: weights do not match the recorded sha256 (corrupt or edited file)")
    model = create_model(document["model"]["name"], **document["model"]["args"])
    model.load_state_dict(state, strict=strict)
    model.eval()
    return Checkpoint(model=model, config=document, path=Path(path), state_dict=state)


def _to_numpy(tensor: Any) -> np.ndarray:
    if isinstance(tensor, np.ndarray):
        return tensor
    return tensor.detach().cpu().numpy()
