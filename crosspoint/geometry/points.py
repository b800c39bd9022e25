"""Strict readers for the point-cloud formats: PCD, XYZ/TXT, NPY, NPZ.

Written here rather than taken from open3d: open3d never raises on bad input and allocated 12+ GB
from a 1.3 KB header in a probe. Each reader checks declared counts against the bytes present
and `Limits` before allocating, and returns float64 [V, >=3] (x y z first); `shape.build_shape`
does the rest.
"""

from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np

from crosspoint.geometry.errors import LimitExceededError, ParseError, UnsupportedFormatError
from crosspoint.geometry.limits import Limits, check_declared_size, check_limit, human_bytes

_MAX_HEADER_BYTES = 1 << 20
_PCD_TYPES = {("F", 4): "<f4", ("F", 8): "<f8"} | {
    (kind, size): f"<{kind.lower()}{size}" for kind in "IU" for size in (1, 2, 4, 8)
}


def _loadtxt(text: str, max_rows: int, usecols: tuple[int, ...] | None, source: str) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data" is reported as empty below
            stream, comments = io.StringIO(text), ("#", "//")
            if usecols is None:
                return np.loadtxt(stream, dtype=np.float64, comments=comments, ndmin=2, max_rows=max_rows)
            return np.loadtxt(
                stream, dtype=np.float64, comments=comments, ndmin=2, max_rows=max_rows, usecols=usecols
            )
    except ValueError as exc:
        raise ParseError(f"the {source} has a line that is not numbers: {exc}") from exc


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"the {source} is not text (byte {exc.start} is not UTF-8)") from exc


# --- XYZ / TXT -----------------------------------------------------------------------------


def _is_number_row(line: str) -> bool:
    try:
        [float(word) for word in line.split()[:3]]
    except ValueError:
        return False
    return True


def _skip_header_line(text: str) -> str:
    """Drop the first non-comment line when it is not numbers (a column header like `X Y Z`)."""
    pos = 0
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end < 0 else end + 1
        line = text[pos:end].strip()
        if line and not line.startswith(("#", "//")):
            return text if _is_number_row(line) else text[end:]
        pos = end
    return text


def read_xyz(data: bytes, limits: Limits) -> np.ndarray:
    """`x y z [anything...]` per line, separated by whitespace or commas; one header line allowed."""
    source = "XYZ file"
    text = _skip_header_line(_decode(data, source).replace(",", " "))
    # max_rows bounds the allocation: one row past the limit is enough to know it is over.
    points = _loadtxt(text, limits.max_vertices + 1, (0, 1, 2), source)
    check_limit(points.shape[0], limits.max_vertices, "points", source)
    return points


# --- PCD -----------------------------------------------------------------------------------


def _pcd_header(data: bytes) -> tuple[dict[str, list[str]], int]:
    header: dict[str, list[str]] = {}
    pos = 0
    while "DATA" not in header:
        end = data.find(b"\n", pos)
        if end < 0 or end > _MAX_HEADER_BYTES:
            raise ParseError("the PCD header has no DATA line")
        words = data[pos:end].decode("latin-1").split()
        pos = end + 1
        if words and not words[0].startswith("#"):
            header[words[0].upper()] = words[1:]
    return header, pos


def _pcd_ints(header: dict[str, list[str]], key: str) -> list[int]:
    try:
        values = [int(v) for v in header[key]]
    except KeyError:
        raise ParseError(f"the PCD header has no {key} line") from None
    except ValueError:
        raise ParseError(f"the PCD header's {key} line is not whole numbers: {header[key][:8]}") from None
    if any(v < 0 for v in values):
        raise ParseError(f"the PCD header's {key} line has a negative number")
    return values


def read_pcd(data: bytes, limits: Limits) -> np.ndarray:
    """PCD v0.5-0.7, DATA ascii or binary. VIEWPOINT is the sensor pose, not applied to points."""
    source = "PCD file"
    header, body_start = _pcd_header(data)
    fields = header.get("FIELDS", [])
    sizes = _pcd_ints(header, "SIZE")
    types = [t.upper() for t in header.get("TYPE", [])]
    counts = _pcd_ints(header, "COUNT") if "COUNT" in header else [1] * len(fields)
    if not fields or not len(fields) == len(sizes) == len(types) == len(counts):
        raise ParseError("the PCD header's FIELDS, SIZE, TYPE and COUNT lines do not match in length")
    if not all(axis in fields for axis in "xyz"):
        raise ParseError(f"the PCD file has fields {fields} but no x, y and z")
    width, height = _pcd_ints(header, "WIDTH")[:1], _pcd_ints(header, "HEIGHT")[:1]
    if not width or not height:
        raise ParseError("the PCD header has an empty WIDTH or HEIGHT line")
    points = _pcd_ints(header, "POINTS")[0] if header.get("POINTS") else width[0] * height[0]
    if points != width[0] * height[0]:
        raise ParseError(f"the PCD header says POINTS {points} but WIDTH x HEIGHT = {width[0] * height[0]}")
    mode = (header["DATA"] or [""])[0].lower()
    if mode == "binary_compressed":
        raise UnsupportedFormatError(
            "PCD 'DATA binary_compressed' is not supported; save the cloud as binary or ascii PCD"
        )
    if mode not in ("ascii", "binary"):
        raise ParseError(f"the PCD header has an unknown DATA mode {mode!r}")
    if mode == "binary":
        row = _pcd_row_dtype(fields, sizes, types, counts)
        declared, needed = f"{points} points of {row.itemsize} bytes", points * row.itemsize
    else:
        declared, needed = f"{points} points of {sum(counts)} numbers", 2 * sum(counts) * points - 1
    # Size first: a header that lies about its body is a broken file, whatever the limits are.
    check_declared_size(needed, len(data) - body_start, declared, "PCD header")
    check_limit(points, limits.max_vertices, "points", source)
    if not points:
        return np.zeros((0, 3))
    if mode == "binary":
        table = np.frombuffer(data, dtype=row, count=points, offset=body_start)
        return np.stack([table[f"f{fields.index(axis)}"][:, 0] for axis in "xyz"], axis=1).astype(np.float64)
    text = _decode(data[body_start:], source)
    values = _loadtxt(text, points + 1, None, source)
    if values.shape != (points, sum(counts)):
        raise ParseError(
            f"the PCD header declares {points} rows of {sum(counts)} numbers; the data holds {values.shape}"
        )
    return values[:, [sum(counts[: fields.index(axis)]) for axis in "xyz"]]


def _pcd_row_dtype(fields: list[str], sizes: list[int], types: list[str], counts: list[int]) -> np.dtype:
    parts = []
    for i, (size, kind, count) in enumerate(zip(sizes, types, counts, strict=True)):
        if (kind, size) not in _PCD_TYPES or count < 1:
            raise ParseError(
                f"the PCD field {fields[i]!r} has unsupported TYPE {kind} SIZE {size} COUNT {count}"
            )
        # Field names repeat ("_" padding in PCL files), so columns get positional names.
        parts.append((f"f{i}", _PCD_TYPES[(kind, size)], (count,)))
    return np.dtype(parts)


# --- NPY / NPZ -----------------------------------------------------------------------------


def read_npy(data: bytes, limits: Limits, source: str = "NPY file") -> np.ndarray:
    """A numeric array [V, >=3]. The header is checked before numpy reads the body; never unpickles."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, _fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ParseError(f"the {source} has format version {version}; only 1.0 and 2.0 are read")
    except ParseError:
        raise
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ParseError(f"the {source} header cannot be read: {exc}") from exc
    if dtype.hasobject or dtype.kind not in "fiu" or dtype.fields is not None:
        raise ParseError(
            f"the {source} holds dtype {dtype}; only plain numeric arrays are accepted "
            "(object arrays would need unpickling, which is never done for uploads)"
        )
    if len(shape) != 2 or shape[1] < 3:
        raise ParseError(f"the {source} has shape {shape}; points must be an array [V, 3]")
    check_declared_size(
        shape[0] * shape[1] * dtype.itemsize,
        len(data) - stream.tell(),
        f"shape {shape} of {dtype}",
        f"{source} header",
    )
    check_limit(shape[0], limits.max_vertices, "points", source)
    check_limit(shape[1], 64, "columns", source)
    stream.seek(0)
    return np.asarray(np.load(stream, allow_pickle=False), dtype=np.float64)


def read_npz(data: bytes, limits: Limits) -> np.ndarray:
    """The array named `points`, or the only array. Member sizes are checked before unpacking."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ParseError(f"the NPZ file is not a readable zip archive: {exc}") from exc
    with archive:
        members = [info for info in archive.infolist() if info.filename.endswith(".npy")]
        named = [info for info in members if info.filename == "points.npy"]
        if named:
            member = named[0]
        elif len(members) == 1:
            member = members[0]
        else:
            names = ", ".join(info.filename[:-4] for info in members[:10]) or "none"
            raise ParseError(f"the NPZ file holds arrays ({names}); name the points array 'points'")
        if member.file_size > limits.max_bytes:
            raise LimitExceededError(
                f"the NPZ member {member.filename!r} unpacks to {human_bytes(member.file_size)}, "
                f"over the limit of {human_bytes(limits.max_bytes)}"
            )
        try:
            # zipfile stops at the declared file_size, so a lying header cannot inflate past it.
            raw = archive.read(member)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise ParseError(f"the NPZ member {member.filename!r} cannot be unpacked: {exc}") from exc
    return read_npy(raw, limits, source=f"NPZ array {member.filename[:-4]!r}")
