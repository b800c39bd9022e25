"""`load`: a path, bytes + format, or an array -> a validated `Shape`."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from crosspoint.geometry import meshes, points
from crosspoint.geometry.errors import GeometryError, LimitExceededError, ParseError, UnsupportedFormatError
from crosspoint.geometry.limits import Limits, human_bytes
from crosspoint.geometry.shape import Shape, build_shape

_POINT_READERS: dict[str, Callable[[bytes, Limits], np.ndarray]] = {
    "pcd": points.read_pcd,
    "xyz": points.read_xyz,
    "txt": points.read_xyz,
    "npy": points.read_npy,
    "npz": points.read_npz,
}
SUPPORTED_FORMATS: tuple[str, ...] = meshes.MESH_FORMATS + tuple(_POINT_READERS)


def normalize_format(format: str) -> str:
    """Map ".PLY" or "ply" to "ply"; unknown names are an UnsupportedFormatError."""
    name = format.strip().lower().lstrip(".") if isinstance(format, str) else ""
    if name not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(
            f"the format {format!r} is not supported; use one of {', '.join(SUPPORTED_FORMATS)}"
        )
    return name


def _format_from_path(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    if not suffix:
        raise UnsupportedFormatError(
            f"cannot tell the format of {path.name!r} (no extension); pass format= one of {', '.join(SUPPORTED_FORMATS)}"
        )
    if suffix not in SUPPORTED_FORMATS:
        raise UnsupportedFormatError(
            f"the extension '.{suffix}' of {path.name!r} is not a supported format; "
            f"use one of {', '.join(SUPPORTED_FORMATS)}"
        )
    return suffix


def _read_path(path: Path, limits: Limits) -> bytes:
    # OSError (missing file, permissions) is the caller's problem, not bad geometry: not wrapped.
    with open(path, "rb") as handle:
        size = os.fstat(handle.fileno()).st_size
        if size > limits.max_bytes:
            raise LimitExceededError(
                f"the file {path.name!r} is {human_bytes(size)}, over the limit of {human_bytes(limits.max_bytes)}"
            )
        # Read one byte past the limit: a file that grows while we read is still bounded.
        data = handle.read(limits.max_bytes + 1)
    if len(data) > limits.max_bytes:
        raise LimitExceededError(
            f"the file {path.name!r} is over the limit of {human_bytes(limits.max_bytes)}"
        )
    return data


def _read_bytes(data: bytes, format: str, limits: Limits) -> Shape:
    if len(data) > limits.max_bytes:
        raise LimitExceededError(
            f"the {format.upper()} upload is {human_bytes(len(data))}, over the limit of {human_bytes(limits.max_bytes)}"
        )
    try:
        if format in _POINT_READERS:
            vertices, faces = _POINT_READERS[format](data, limits), None
        else:
            vertices, faces = meshes.read_mesh(data, format, limits)
    except (GeometryError, MemoryError):
        raise
    except Exception as exc:
        # A reader bug or an odd file must still reach the caller as a typed 4xx error.
        raise ParseError(
            f"the {format.upper()} file cannot be read: {type(exc).__name__}: {str(exc)[:200]}"
        ) from exc
    return build_shape(vertices, faces, format, limits)


PointArray = np.ndarray | Sequence[Sequence[float]]
Source = str | os.PathLike[str] | bytes | bytearray | memoryview | PointArray


def load(
    source: Source,
    format: str | None = None,
    *,
    limits: Limits = Limits(),
) -> Shape:
    """Load a mesh or point cloud.

    `source` is a path (format from `format` or the extension, case-insensitive), raw bytes
    (`format` required), or an array / nested list [V, 3] (extra columns ignored). Bad input
    raises a `GeometryError` subclass; nothing outside the given bytes is ever opened.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        if format is None:
            raise UnsupportedFormatError(
                f"bytes were given without a format; pass format= one of {', '.join(SUPPORTED_FORMATS)}"
            )
        return _read_bytes(bytes(source), normalize_format(format), limits)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        fmt = normalize_format(format) if format is not None else _format_from_path(path)
        return _read_bytes(_read_path(path, limits), fmt, limits)
    if isinstance(source, np.ndarray | list | tuple):
        return build_shape(source, None, "array", limits, source="array")
    raise UnsupportedFormatError(
        f"cannot load a {type(source).__name__}; pass a path, bytes with format=, or an array [V, 3]"
    )
