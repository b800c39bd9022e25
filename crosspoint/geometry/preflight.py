"""Header checks for the trimesh-read text/binary mesh formats, run before trimesh sees the bytes.

Each check reads only the header (or counts keywords), compares declared element counts with
the file's byte size and with `Limits`, and raises a typed error; trimesh then parses input whose
size is already bounded. glTF/GLB live in `gltf.py`, the point formats check themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from crosspoint.geometry.errors import ParseError
from crosspoint.geometry.limits import Limits, check_declared_size, check_limit, human_bytes

_MAX_HEADER_BYTES = 1 << 20

# Byte size of each PLY scalar type (the names trimesh accepts).
_PLY_TYPES = {
    "char": 1, "int8": 1, "uchar": 1, "uint8": 1,
    "short": 2, "int16": 2, "ushort": 2, "uint16": 2, "float16": 2,
    "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4,
    "int64": 8, "uint64": 8, "double": 8, "float64": 8,
}  # fmt: skip

# An ASCII number takes at least one digit and one separator.
_ASCII_MIN_BYTES = 2


@dataclass
class PlyElement:
    name: str
    count: int
    scalar_bytes: int = 0  # fixed bytes per row (binary)
    list_count_bytes: int = 0  # bytes of the length prefix of each list property (binary)
    scalars: int = 0
    lists: int = 0


def _parse_int(token: str, what: str, source: str) -> int:
    try:
        value = int(token)
    except ValueError:
        raise ParseError(f"the {source} has {what} {token!r}, which is not a whole number") from None
    if value < 0:
        raise ParseError(f"the {source} has a negative {what} ({value})")
    return value


def parse_ply_header(data: bytes) -> tuple[str, list[PlyElement], int]:
    """Return (format, elements, offset of the body)."""
    if not data.startswith(b"ply"):
        raise ParseError("the PLY file does not start with 'ply'")
    marker = data.find(b"end_header", 0, _MAX_HEADER_BYTES)
    if marker < 0:
        raise ParseError("the PLY header has no 'end_header' line in its first MiB")
    newline = data.find(b"\n", marker)
    body_start = len(data) if newline < 0 else newline + 1
    lines = data[:marker].decode("latin-1").splitlines()
    fmt = ""
    elements: list[PlyElement] = []
    for raw in lines[1:]:
        words = raw.split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element" and len(words) == 3:
            elements.append(PlyElement(words[1], _parse_int(words[2], f"'{words[1]}' count", "PLY header")))
        elif words[0] == "property" and elements:
            _add_ply_property(elements[-1], words)
        else:
            raise ParseError(f"the PLY header has a line it cannot read: {raw.strip()[:80]!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise ParseError(f"the PLY header has an unknown format {fmt!r}")
    return fmt, elements, body_start


def _add_ply_property(element: PlyElement, words: list[str]) -> None:
    if len(words) == 5 and words[1] == "list":
        if words[2] not in _PLY_TYPES or words[3] not in _PLY_TYPES:
            raise ParseError(f"the PLY header has a list property of unknown type: {' '.join(words)!r}")
        element.list_count_bytes += _PLY_TYPES[words[2]]
        element.lists += 1
    elif len(words) == 3 and words[1] in _PLY_TYPES:
        element.scalar_bytes += _PLY_TYPES[words[1]]
        element.scalars += 1
    else:
        raise ParseError(f"the PLY header has a property it cannot read: {' '.join(words)!r}")


def _ply_element_words(element: PlyElement) -> str:
    if element.name == "vertex":
        return f"{element.count} vertices"
    if element.name == "face":
        return f"{element.count} faces"
    return f"{element.count} '{element.name}' elements"


def check_ply(data: bytes, limits: Limits) -> None:
    fmt, elements, body_start = parse_ply_header(data)
    needed = 0
    for element in elements:
        if element.count and not (element.scalars or element.lists):
            raise ParseError(
                f"the PLY element '{element.name}' declares {element.count} rows but no properties"
            )
        if fmt == "ascii":
            per_row = _ASCII_MIN_BYTES * (element.scalars + element.lists)
        else:
            # Exact for scalar rows; a list row holds at least its length prefix.
            per_row = element.scalar_bytes + element.list_count_bytes
        needed += element.count * per_row
    if fmt == "ascii":
        needed -= 1  # the last number needs no separator
    declared = " and ".join(_ply_element_words(e) for e in elements if e.count) or "nothing"
    # Size first: a header that lies about its body is a broken file, whatever the limits are.
    check_declared_size(needed, len(data) - body_start, declared, "PLY header")
    for element in elements:
        if element.name == "vertex":
            check_limit(element.count, limits.max_vertices, "vertices", "PLY file")
        elif element.name == "face":
            check_limit(element.count, limits.max_faces, "faces", "PLY file")
        else:
            check_limit(element.count, limits.max_elements, f"'{element.name}' elements", "PLY file")


def check_stl(data: bytes, limits: Limits) -> None:
    size = len(data)
    if size >= 84:
        count = int.from_bytes(data[80:84], "little")
        if 84 + 50 * count == size:
            check_limit(count, limits.max_faces, "triangles", "binary STL")
            return
    head = data[:1024]
    # Binary exporters often start the 80-byte header with "solid" too; ASCII never holds NUL.
    if head.lstrip()[:5].lower() == b"solid" and b"\x00" not in head:
        triangles = data.count(b"endfacet") + data.count(b"ENDFACET")
        check_limit(triangles, limits.max_faces, "triangles", "ASCII STL")
        return
    if size < 84:
        raise ParseError(
            f"the STL file holds {size} bytes: too short for a binary STL (84-byte header) "
            "and it does not start with 'solid' (ASCII STL)"
        )
    raise ParseError(
        f"the binary STL header declares {count} triangles, which needs exactly "
        f"{human_bytes(84 + 50 * count)}, but the file holds {human_bytes(size)} "
        "(truncated or not an STL file)"
    )


def _off_lines(data: bytes) -> Iterator[tuple[bytes, int]]:
    """Yield (comment-stripped line, offset after it) for the header lines only."""
    pos = 0
    while pos < len(data) and pos < _MAX_HEADER_BYTES:
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        yield data[pos:end].split(b"#", 1)[0].strip(), end + 1
        pos = end + 1


def check_off(data: bytes, limits: Limits) -> None:
    counts: list[bytes] | None = None
    body_start = len(data)
    seen_header = False
    for text, after in _off_lines(data):
        if not text:
            continue
        if not seen_header:
            at = text.find(b"OFF")
            if at < 0:
                raise ParseError("the OFF file does not start with an 'OFF' header")
            seen_header = True
            text = text[at + 3 :].strip()
            if not text:
                continue
        counts, body_start = text.split(), after
        break
    if counts is None or len(counts) < 2:
        raise ParseError("the OFF file has no 'vertices faces edges' count line")
    vertices = _parse_int(counts[0].decode("latin-1"), "vertex count", "OFF header")
    faces = _parse_int(counts[1].decode("latin-1"), "face count", "OFF header")
    # "x y z" per vertex and at least "3 a b c" per face.
    needed = _ASCII_MIN_BYTES * (3 * vertices + 4 * faces) - 1
    check_declared_size(
        needed, len(data) - body_start, f"{vertices} vertices and {faces} faces", "OFF header"
    )
    check_limit(vertices, limits.max_vertices, "vertices", "OFF file")
    check_limit(faces, limits.max_faces, "faces", "OFF file")


def _count_line_starts(data: bytes, keyword: bytes) -> int:
    """Lines that start with `keyword` then a space or tab (bytes.count is far faster than a regex)."""
    total = 0
    for sep in (b" ", b"\t"):
        total += data.count(b"\n" + keyword + sep) + int(data.startswith(keyword + sep))
    return total


def check_obj(data: bytes, limits: Limits) -> None:
    # OBJ declares nothing; count the lines so a huge file is refused before trimesh builds lists.
    check_limit(_count_line_starts(data, b"v"), limits.max_vertices, "vertices", "OBJ file")
    check_limit(_count_line_starts(data, b"f"), limits.max_faces, "faces", "OBJ file")
    parts = sum(_count_line_starts(data, k) for k in (b"o", b"g", b"usemtl"))
    check_limit(parts, limits.max_parts, "objects/groups/materials", "OBJ file")
