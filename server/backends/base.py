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
from typing import Any, ClassVar, Literal

import numpy as np

from export.contract import MODEL_NAMES, expected_names
from export.metadata import ServingMetadata
from export.repository import ONNX_FILE, read_model_metadata, versions
from server.core.config import Settings
from server.errors import ServingError, scrub
from server.metrics import Metrics

# The model_repository contract (docs/interfaces.md, export.contract): inputs and outputs of each model.
MODEL_INPUTS: dict[str, tuple[str, ...]] = {}
MODEL_OUTPUTS: dict[str, tuple[str, ...]] = {}
for _name in MODEL_NAMES:
    MODEL_INPUTS[_name], MODEL_OUTPUTS[_name] = expected_names(_name) or ((), ())


@dataclass(frozen=True)
class ModelInfo:
    """One version of one model, as described by its `crosspoint.json` (export's typed reader)."""

    name: str
    version: str
    path: Path  # the version directory
    metadata: ServingMetadata = field(repr=False)

    @property
    def num_points(self) -> int:
        return self.metadata.num_points

    @property
    def k(self) -> int:
        return self.metadata.k

    @property
    def min_points(self) -> int:
        return self.metadata.min_points

    @property
    def max_points(self) -> int:
        return self.metadata.max_points

    @property
    def up_axis(self) -> str:
        return self.metadata.up_axis

    def names(self, key: Literal["class_names", "category_names", "part_names"]) -> list[str]:
        return list(getattr(self.metadata, key) or [])

    @property
    def category_parts(self) -> dict[str, list[int]]:
        """Category name -> global part ids."""
        return dict(self.metadata.category_parts or {})

    @property
    def checkpoint_sha256(self) -> str | None:
        return self.metadata.checkpoint_sha256


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
    directory = repository / name / version
    for path in sorted(directory.iterdir()) if directory.is_dir() else ():
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
        self.load_failures: dict[str, dict[str, str]] = {}  # model -> version -> why (no paths)

    def model(self, name: str) -> ServedModel:
        served = self._served.get(name)
        if served is None:
            reason = self.last_error.get(name, "not loaded")
            raise ServingError("model_unavailable", f"model '{name}' is not available ({reason})")
        return served

    def served(self) -> list[ServedModel]:
        return [self._served[n] for n in self.settings.models if n in self._served]

    def versions(self, name: str) -> list[str]:
        return list_versions(self.settings.model_repository, name)

    def version_states(self, name: str) -> list[dict[str, str]]:
        """Each published version: serving, failed (with why) or available (not loaded, not known bad)."""
        served = self._served.get(name)
        failures = self.load_failures.get(name, {})
        states = []
        for version in self.versions(name):
            if served is not None and served.info.version == version:
                states.append({"version": version, "status": "serving"})
            elif version in failures:
                states.append({"version": version, "status": "failed", "error": failures[version]})
            else:
                states.append({"version": version, "status": "available"})
        return states

    def _record_failure(self, name: str, version: str, reason: str) -> None:
        """A version that could not be served; counted once per new failure, kept until it loads or goes."""
        reason = scrub(reason)
        failures = self.load_failures.setdefault(name, {})
        if failures.get(version) != reason:
            self.metrics.load_failures.labels(model=name).inc()
        failures[version] = reason
        self.last_error[name] = f"version {version}: {reason}"

    def _forget_missing(self, name: str, present: list[str]) -> None:
        """Drop failures of versions no longer in the repository; stop serving a deleted version with
        nothing left to fall back to."""
        failures = self.load_failures.get(name, {})
        for version in [v for v in failures if v not in present]:
            del failures[version]
        served = self._served.get(name)
        if (
            served is not None
            and served.info.version not in present
            and not any(v not in failures for v in present)
        ):
            del self._served[name]
            self.metrics.model_version.remove(name, served.info.version)
            self.last_error[name] = f"version {served.info.version} was removed and no other version loads"

    def _swap(self, served: ServedModel) -> None:
        """Make `served` the version new requests get (in-flight ones keep their snapshot)."""
        old = self._served.get(served.info.name)
        if old is not None:
            self.metrics.model_version.remove(old.info.name, old.info.version)
        self._served[served.info.name] = served  # one dict assignment: atomic for the event loop
        self.metrics.model_version.labels(served.info.name, served.info.version).set(1)
        self.last_error.pop(served.info.name, None)
        self.load_failures.get(served.info.name, {}).pop(served.info.version, None)

    async def load_all(self) -> None:
        """Load the newest usable version of each configured model (missing ones are logged, not fatal)."""
        await self.reload()

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def reload(self) -> list[ModelInfo]:
        """Follow the repository: serve the newest version that loads (newer, or older when the one
        served was deleted or a newer one is broken); returns what was swapped in."""

    @abc.abstractmethod
    async def infer(self, served: ServedModel, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run `inputs` (rows first) on `served`; returns the contract's outputs, rows first."""

    @abc.abstractmethod
    async def check(self) -> dict[str, Any]:
        """Readiness details: {"ok": bool, ...}."""
