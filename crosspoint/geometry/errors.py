"""Typed errors for bad geometry input.

Everything `load` and `prepare` raise for bad *input* is a `GeometryError`. The gateway turns
`code` (stable snake_case, part of the API) into a 4xx JSON answer and shows the message as is,
so messages say in plain words what was wrong with the upload.
"""

from __future__ import annotations

from typing import ClassVar


class GeometryError(ValueError):
    """Base class: the input cannot be turned into points."""

    code: ClassVar[str] = "geometry_error"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": str(self)}


class UnsupportedFormatError(GeometryError):
    """Unknown or missing format (extension, declared format, bytes without a format)."""

    code = "unsupported_format"


class ParseError(GeometryError):
    """The bytes are not a valid file of the declared format."""

    code = "parse_error"


class EmptyGeometryError(GeometryError):
    """The file holds no vertices, or none that are finite."""

    code = "empty_geometry"


class DegenerateGeometryError(GeometryError):
    """The points have no extent (all identical) or cannot be normalized."""

    code = "degenerate_geometry"


class TooFewPointsError(GeometryError):
    """Fewer distinct points than the minimum needed."""

    code = "too_few_points"


class LimitExceededError(GeometryError):
    """Declared or actual size is over a hard limit (bytes, vertices, faces, parts)."""

    code = "limit_exceeded"


class ExternalReferenceError(GeometryError):
    """The file refers to another file (glTF buffer or image URI); only self-contained input is read."""

    code = "external_reference"


class UnsupportedExtensionError(GeometryError):
    """The file requires an extension we cannot read (glTF `extensionsRequired`, e.g. Draco compression)."""

    code = "unsupported_extension"


class InvalidArgumentError(GeometryError):
    """A caller-supplied option (up axis, point count, seed) is invalid."""

    code = "invalid_argument"


ERROR_CLASSES: tuple[type[GeometryError], ...] = (
    UnsupportedFormatError,
    ParseError,
    EmptyGeometryError,
    DegenerateGeometryError,
    TooFewPointsError,
    LimitExceededError,
    ExternalReferenceError,
    UnsupportedExtensionError,
    InvalidArgumentError,
)

# Every code the gateway may see, for its error mapping and for clients.
ERROR_CODES: frozenset[str] = frozenset(cls.code for cls in ERROR_CLASSES)
