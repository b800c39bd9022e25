"""ASCII PLY bodies re-encoded as binary PLY before trimesh reads them.

trimesh reads an ASCII PLY body one line at a time (a `numpy.fromstring` per line): 53-62 ms of CPU for
the 8,171-vertex Stanford bunny on this machine, more than the embed model's share of a request
(README "Serving speed"). Here the whole body is parsed in one call (28-33 ms), every row's width is checked against the header, and the same values, cast
to the declared types as trimesh's ASCII reader casts them, are written as little-endian binary rows
under the same header: trimesh's binary reader then builds the same mesh (tests/geometry/test_ply_ascii.py
compares vertices and faces with trimesh's own ASCII reading). Anything outside the plain case (more than
one list per element, list lengths that differ between rows, characters other than numbers and
whitespace, a row split over lines) returns None and trimesh reads the file as before.
"""

from __future__ import annotations

import warnings

import numpy as np

# The PLY scalar names trimesh accepts, as numpy types.
_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1",
    "short": "i2", "int16": "i2", "ushort": "u2", "uint16": "u2", "float16": "f2",
    "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4", "float": "f4", "float32": "f4",
    "int64": "i8", "uint64": "u8", "double": "f8", "float64": "f8",
}  # fmt: skip

_NUMBER_BYTES = np.zeros(256, dtype=bool)
_NUMBER_BYTES[np.frombuffer(b"0123456789+-.eE \t\n", dtype=np.uint8)] = True
_SPACE = np.zeros(256, dtype=bool)
_SPACE[np.frombuffer(b" \t\n", dtype=np.uint8)] = True

# (name, [(property, scalar type | (count type, item type))]) per element, in file order.
Property = tuple[str, "str | tuple[str, str]"]


def _header(lines: list[bytes]) -> list[tuple[int, list[Property]]] | None:
    """(row count, properties) per element, or None for anything but a plain ASCII header."""
    if len(lines) < 2 or lines[0].strip() != b"ply" or lines[1].split() != [b"format", b"ascii", b"1.0"]:
        return None
    elements: list[tuple[int, list[Property]]] = []
    for raw in lines[2:]:
        words = raw.decode("ascii", errors="replace").split()
        if not words or words[0] in ("comment", "obj_info"):
            continue
        if words == ["end_header"]:
            return elements
        if words[0] == "element" and len(words) == 3 and words[2].isdigit():
            elements.append((int(words[2]), []))
        elif words[0] == "property" and elements and len(words) == 3 and words[1] in _TYPES:
            elements[-1][1].append((words[2], _TYPES[words[1]]))
        elif words[0] == "property" and elements and len(words) == 5 and words[1] == "list":
            if words[2] not in _TYPES or words[3] not in _TYPES:
                return None
            elements[-1][1].append((words[4], (_TYPES[words[2]], _TYPES[words[3]])))
        else:
            return None
    return None


def _binary_rows(rows: np.ndarray, properties: list[Property]) -> bytes | None:
    """One element's rows (float64, one row per line) as packed little-endian records."""
    fields: list[tuple[str, str, tuple[int, ...]] | tuple[str, str]] = []
    columns: list[np.ndarray] = []
    at = 0
    for _, kind in properties:
        if isinstance(kind, str):
            fields.append((f"f{len(fields)}", "<" + kind))
            columns.append(rows[:, at])
            at += 1
            continue
        length = int(rows[0, at])
        if length < 1 or not np.all(rows[:, at] == rows[0, at]):
            return None  # empty or ragged lists: trimesh's general reader
        fields.append((f"f{len(fields)}", "<" + kind[0]))
        fields.append((f"f{len(fields)}", "<" + kind[1], (length,)))
        columns += [rows[:, at], rows[:, at + 1 : at + 1 + length]]
        at += 1 + length
    if at != rows.shape[1]:
        return None
    records = np.empty(len(rows), dtype=np.dtype(fields))
    for field, column in zip(records.dtype.names or (), columns, strict=True):
        records[field] = column  # the same float64 -> declared-type cast as trimesh's ASCII reader
    return records.tobytes()


def ascii_ply_as_binary(data: bytes) -> bytes | None:
    """The binary little-endian PLY with the same header and values as the ASCII PLY `data`, or None."""
    marker = data.find(b"end_header")
    newline = data.find(b"\n", marker)
    if marker < 0 or newline < 0 or data.count(b"\r") != data.count(b"\r\n"):
        return None
    header, body = data[: newline + 1], data[newline + 1 :].replace(b"\r\n", b"\n")
    lines = header.split(b"\n")
    elements = _header(lines)
    if not elements or sum(len(p) for _, p in elements) == 0:
        return None
    raw = np.frombuffer(body, dtype=np.uint8)
    if not _NUMBER_BYTES[raw].all():
        return None
    space = _SPACE[raw]
    starts = np.flatnonzero(~space & np.concatenate(([True], space[:-1])))  # first byte of each token
    with warnings.catch_warnings():  # a token it cannot read is reported below, not warned about
        warnings.simplefilter("ignore", DeprecationWarning)
        values = np.fromstring(body, sep=" ")  # trimesh's per-line parser (strtod), once for all
    if len(values) != len(starts):
        return None  # a token numpy could not read to its end
    per_line = np.bincount(np.searchsorted(np.flatnonzero(raw == 10), starts), minlength=1)
    parts: list[bytes] = []
    value_at = line_at = 0
    for count, properties in elements:
        if count == 0:
            continue
        if not properties:
            return None
        widths = per_line[line_at : line_at + count]
        if len(widths) != count or widths[0] == 0 or not np.all(widths == widths[0]):
            return None  # rows split over lines, blank lines, or rows of different widths
        width = int(widths[0])
        block = values[value_at : value_at + count * width]
        if len(block) != count * width:
            return None
        encoded = _binary_rows(block.reshape(count, width), properties)
        if encoded is None:
            return None
        parts.append(encoded)
        value_at += count * width
        line_at += count
    if value_at != len(values):
        return None  # more numbers than the header declares
    binary_header = b"\n".join(
        [
            lines[0],
            b"format binary_little_endian 1.0" + (b"\r" if lines[1].endswith(b"\r") else b""),
            *lines[2:],
        ]
    )
    return binary_header + b"".join(parts)
