"""Hard limits for untrusted input, and the checks every reader shares.

Readers compare what a file *declares* (element counts in headers) with its byte size before
anything is allocated: a 1.3 KB PLY that declares 10^9 vertices must fail in microseconds, not
after a 12 GB allocation (see ARCHITECTURE "Untrusted files").
"""

from __future__ import annotations

from dataclasses import dataclass

from crosspoint.geometry.errors import LimitExceededError, ParseError


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what `load` accepts. The defaults fit the gateway's sandboxed worker."""

    max_bytes: int = 64 * 2**20
    max_vertices: int = 2_000_000
    max_faces: int = 4_000_000
    # Meshes/primitives/nodes/groups: each becomes a Python object in trimesh, so a file with a
    # million tiny parts is slow long before it is big.
    max_parts: int = 10_000
    # glTF node nesting: trimesh walks each path from the root, so a 5,000-deep chain of nodes took 20 s.
    max_node_depth: int = 256
    # glTF accessors, bufferViews, materials, ...: each is a Python object (and often an array) in trimesh.
    max_objects: int = 40_000
    # Squares of coordinate differences must stay finite in float64; nothing we serve is this big.
    max_abs_coordinate: float = 1e18
    # Fewer distinct points than this is not a shape (two points are a segment).
    min_distinct_points: int = 3

    @property
    def max_elements(self) -> int:
        """Bound for any other per-element count (glTF accessors, PLY extra elements)."""
        return max(self.max_vertices, 3 * self.max_faces)


def human_bytes(n: int | float) -> str:
    """`1290 bytes`, `12.0 GB`: sizes in messages people read."""
    if n < 10_000:
        return f"{int(n)} bytes"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"  # pragma: no cover - unreachable


def check_limit(count: int, limit: int, what: str, source: str) -> None:
    """Raise if a declared or actual `count` of `what` (e.g. "vertices") is over `limit`."""
    if count > limit:
        raise LimitExceededError(f"the {source} has {count} {what}, over the limit of {limit}")


def check_declared_size(needed: int, available: int, declared: str, source: str) -> None:
    """Raise if a header's declared content needs more bytes than the file holds."""
    if needed > available:
        raise ParseError(
            f"the {source} declares {declared}, which needs at least {human_bytes(needed)}, "
            f"but only {human_bytes(available)} follow the header"
        )
