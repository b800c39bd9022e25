"""Preprocessing settings of a batch run: the model's own, so results match the gateway's.

The gateway reads `num_points` and `up_axis` from `<model>/<version>/crosspoint.json`; the batch
client reads the same file from a local copy of the repository (`--model-repository`), and pins
the version it read so Triton runs exactly that graph. Without a local repository it falls back to
the `parameters` of Triton's model config, then to explicit `--num-points/--up-axis`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SettingsError(ValueError):
    """The run cannot know how to preprocess (no metadata and no explicit options)."""


@dataclass(frozen=True)
class RunSettings:
    num_points: int
    up_axis: str
    seed: int
    version: str  # "" = whatever Triton serves as latest
    min_points: int | None = None  # None: crosspoint.geometry's default
    class_names: list[str] = field(default_factory=list)
    from_repository: bool = False


def resolve_settings(
    repository: Path | None,
    model: str,
    version: str | None,
    num_points: int | None,
    up_axis: str | None,
    seed: int,
    parameters: dict[str, str] | None = None,
) -> RunSettings:
    metadata: dict[str, Any] = {}
    from_repository = False
    if repository is not None and (repository / model).is_dir():
        metadata = read_metadata(repository, model, version)
        from_repository = True
    elif parameters:
        metadata = _from_parameters(parameters)
    resolved_points = num_points or metadata.get("num_points")
    if not resolved_points and parameters is not None:
        raise SettingsError(
            f"no crosspoint.json for {model!r} (looked in {repository}) and Triton's config has no "
            "num_points: pass --model-repository or --num-points"
        )
    return RunSettings(
        num_points=int(resolved_points or 0),
        up_axis=str(up_axis or metadata.get("up_axis") or "y"),
        seed=seed,
        version=str(version or metadata.get("version") or ""),
        min_points=int(metadata["min_points"]) if metadata.get("min_points") else None,
        class_names=[str(n) for n in metadata.get("class_names") or []],
        from_repository=from_repository,
    )


def read_metadata(repository: Path, model: str, version: str | None) -> dict[str, Any]:
    """`crosspoint.json` of the given (or newest) version, plus `version`."""
    from export.repository import read_model_metadata

    metadata = read_model_metadata(repository, model, None if version is None else int(version))
    return dict(metadata) if isinstance(metadata, dict) else dict(vars(metadata))


def _from_parameters(parameters: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in parameters.items():
        try:
            found[key] = json.loads(value)
        except ValueError:
            found[key] = value
    return found
