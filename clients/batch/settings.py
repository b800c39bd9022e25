"""Preprocessing settings of a batch run: the model's own, so results match the gateway's.

The gateway reads `num_points` and `up_axis` from `<model>/<version>/crosspoint.json`; the batch
client reads the same file, with export's reader, from a local copy of the repository
(`--model-repository`, `export.repository.read_model_metadata`), and pins
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
    if repository is not None and (repository / model).is_dir():
        from export.repository import read_model_metadata

        metadata = read_model_metadata(repository, model, None if version is None else int(version))
        return RunSettings(
            num_points=num_points or metadata.num_points,
            up_axis=up_axis or metadata.up_axis,
            seed=seed,
            version=str(version or metadata.version or ""),
            min_points=metadata.min_points,
            class_names=list(metadata.class_names or []),
            from_repository=True,
        )
    # No local repository: Triton's config `parameters` (export writes the preprocessing there too).
    found = _from_parameters(parameters or {})
    resolved_points = num_points or found.get("num_points")
    if not resolved_points and parameters is not None:
        raise SettingsError(
            f"no crosspoint.json for {model!r} (looked in {repository}) and Triton's config has no "
            "num_points: pass --model-repository or --num-points"
        )
    return RunSettings(
        num_points=int(resolved_points or 0),
        up_axis=str(up_axis or found.get("up_axis") or "y"),
        seed=seed,
        version=str(version or found.get("version") or ""),
        min_points=int(found["min_points"]) if found.get("min_points") else None,
        class_names=[str(n) for n in found.get("class_names") or []],
    )


def _from_parameters(parameters: dict[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in parameters.items():
        try:
            found[key] = json.loads(value)
        except ValueError:
            found[key] = value
    return found
