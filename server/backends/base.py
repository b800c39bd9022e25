"""What every backend offers the routes, and the model metadata both backends read the same way.

A request takes a `ServedModel` snapshot once (`backend.model(name)`), prepares its input with that
snapshot's metadata and runs on that same snapshot: a reload that swaps in a newer version mid-way
never mixes versions within one answer.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from export.contract import MODEL_NAMES, expected_names
from export.repository import ONNX_FILE, read_model_metadata, versions
from server.core.config import Settings
from server.errors import ApiError
from server.metrics import Metrics

# The model_repository contract (docs/interfaces.md, export.contract): inputs and outputs of each model.
MODEL_INPUTS: dict[str, tuple[str, ...]] = {}
MODEL_OUTPUTS: dict[str, tuple[str, ...]] = {}
for _name in MODEL_NAMES:
    MODEL_INPUTS[_name], MODEL_OUTPUTS[_name] = expected_names(_name) or ((), ())


@dataclass(frozen=True)
class ModelInfo:
    """One version of one model, as described by its `crosspoint.json`."""

    name: str
    version: str
    path: Path  # the version directory
    metadata: dict[str, Any] = field(repr=False)

    def _int(self, key: str, default: int) -> int:
        value = self.metadata.get(key)
        return int(value) if isinstance(value, int | float) else default

    @property
    def num_points(self) -> int:
        return self._int("num_points", 1024)

    @property
    def k(self) -> int:
        return self._int("k", 20)

    @property
    def min_points(self) -> int:
        return max(self._int("min_points", self.k), self.k)

    @property
    def max_points(self) -> int:
        return self._int("max_points", max(self.num_points, 4096))

    @property
    def up_axis(self) -> str:
        return str(self.metadata.get("up_axis", "y"))

    def names(self, key: str) -> list[str]:
        value = self.metadata.get(key)
        return [str(v) for v in value] if isinstance(value, list) else []

    @property
    def category_parts(self) -> dict[str, list[int]]:
        """Category name -> global part ids (accepts ids or part names in the metadata)."""
        raw = self.metadata.get("category_parts")
        parts = self.names("part_names")
        result: dict[str, list[int]] = {}
        if isinstance(raw, dict):
            for category, members in raw.items():
                ids = []
                for member in members or []:
                    if isinstance(member, int):
                        ids.append(member)
                    elif isinstance(member, str) and member in parts:
                        ids.append(parts.index(member))
                result[str(category)] = ids
        return result

    @property
    def checkpoint_sha256(self) -> str | None:
        for key in ("checkpoint_sha256", "weights_sha256", "sha256"):
            value = self.metadata.get(key)
            if isinstance(value, str):
                return value
        checkpoint = self.metadata.get("checkpoint")
        if isinstance(checkpoint, dict):
            value = checkpoint.get("sha256") or checkpoint.get("weights_sha256")
            return str(value) if value else None
        return None


def read_info(repository: Path, name: str, version: str) -> ModelInfo:
    """A version's metadata, read by export's own reader (one implementation of the layout)."""
    metadata = read_model_metadata(repository, name, int(version))
    return ModelInfo(
        name=name, version=str(version), path=repository / name / str(version), metadata=metadata
    )


def list_versions(repository: Path, name: str) -> list[str]:
    """Published versions with an ONNX graph, oldest first (export renames whole versions into place)."""
    return [str(v) for v in versions(repository, name) if (repository / name / str(v) / ONNX_FILE).is_file()]


def version_stamp(repository: Path, name: str, version: str) -> tuple[Any, ...]:
    """Sizes and mtimes of a version's files: a failed load is retried only once they change."""
    stamp: list[Any] = [version]
    for path in sorted((repository / name / version).iterdir()):
        with contextlib.suppress(OSError):
            st = path.stat()
            stamp.append((path.name, st.st_size, st.st_mtime_ns))
    return tuple(stamp)


class ServedModel(abc.ABC):
    """A loaded model version; backends subclass it with what they need to run it."""

    info: ModelInfo


class InferenceBackend(abc.ABC):
    """The interface the routes use; `onnxruntime` and `triton` implement it."""

    kind: ClassVar[str]

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self._served: dict[str, ServedModel] = {}
        self.last_error: dict[str, str] = {}

    def model(self, name: str) -> ServedModel:
        served = self._served.get(name)
        if served is None:
            reason = self.last_error.get(name, "not loaded")
            raise ApiError(503, "model_unavailable", f"model '{name}' is not available ({reason})")
        return served

    def served(self) -> list[ServedModel]:
        return [self._served[n] for n in self.settings.models if n in self._served]

    def versions(self, name: str) -> list[str]:
        return list_versions(self.settings.model_repository, name)

    def _swap(self, served: ServedModel) -> None:
        """Make `served` the version new requests get (in-flight ones keep their snapshot)."""
        old = self._served.get(served.info.name)
        if old is not None:
            self.metrics.model_version.remove(old.info.name, old.info.version)
        self._served[served.info.name] = served  # one dict assignment: atomic for the event loop
        self.metrics.model_version.labels(served.info.name, served.info.version).set(1)
        self.last_error.pop(served.info.name, None)

    async def load_all(self) -> None:
        """Load the newest usable version of each configured model (missing ones are logged, not fatal)."""
        await self.reload()

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def reload(self) -> list[ModelInfo]:
        """Swap in newer versions found in the repository; returns what was swapped in."""

    @abc.abstractmethod
    async def infer(self, served: ServedModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run `inputs` (rows first) on `served`; returns the contract's outputs, rows first."""

    @abc.abstractmethod
    async def check(self) -> dict[str, Any]:
        """Readiness details: {"ok": bool, ...}."""
