"""The framing between the gateway and its parse workers: JSON headers and raw array buffers.

No pickle crosses the pipe: a worker handles untrusted files, so what it sends back is parsed as
data (a JSON header naming dtype and shape per buffer, dtypes from a short allow-list), never as code.
Frame: u32 header length, header JSON, then per buffer a u64 length and the bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import numpy as np

ALLOWED_DTYPES = frozenset({"<f4", "<f8", "<i4", "<i8", "|u1"})
MAX_HEADER_BYTES = 4 * 1024 * 1024
MAX_BUFFER_BYTES = 1024 * 1024 * 1024

Buffer = np.ndarray | bytes


class WireError(RuntimeError):
    """A frame that breaks the protocol (a worker that misbehaves is killed, not trusted)."""


def encode(header: Mapping[str, Any], buffers: Mapping[str, Buffer] | None = None) -> list[bytes]:
    """The chunks of one frame (write them in order)."""
    specs = []
    payloads = []
    for name, value in (buffers or {}).items():
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            specs.append({"name": name, "dtype": "|u1", "shape": [len(data)]})
        else:
            array = np.ascontiguousarray(value)
            dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
            array = array.astype(dtype, copy=False)
            if array.dtype.str not in ALLOWED_DTYPES:
                raise WireError(f"dtype {array.dtype.str} cannot cross the pipe")
            specs.append({"name": name, "dtype": array.dtype.str, "shape": list(array.shape)})
            data = array.tobytes()
        payloads.append(data)
    head = json.dumps({**header, "buffers": specs}).encode()
    chunks = [struct.pack("<I", len(head)), head]
    for data in payloads:
        chunks.append(struct.pack("<Q", len(data)))
        chunks.append(data)
    return chunks


def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise WireError(f"header is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("buffers"), list):
        raise WireError("header without a buffer list")
    return header


def _to_buffer(spec: Any, data: bytes) -> Buffer:
    if not isinstance(spec, dict) or spec.get("dtype") not in ALLOWED_DTYPES:
        raise WireError(f"bad buffer spec {spec!r}")
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise WireError(f"bad buffer shape {shape!r}")
    if spec["dtype"] == "|u1":
        return data
    dtype = np.dtype(spec["dtype"])
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(data):
        raise WireError("buffer length does not match its shape")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def read_frame(read_exact: Callable[[int], bytes]) -> tuple[dict[str, Any], dict[str, Buffer]]:
    """Read one frame with a blocking `read_exact(n)` (the worker side)."""
    (size,) = struct.unpack("<I", read_exact(4))
    if size > MAX_HEADER_BYTES:
        raise WireError("header too large")
    header = _parse_header(read_exact(size))
    buffers: dict[str, Buffer] = {}
    for spec in header["buffers"]:
        (length,) = struct.unpack("<Q", read_exact(8))
        if length > MAX_BUFFER_BYTES:
            raise WireError("buffer too large")
        buffers[str(spec.get("name"))] = _to_buffer(spec, read_exact(length))
    return header, buffers


async def read_frame_async(
    read_exact: Callable[[int], Awaitable[bytes]],
) -> tuple[dict[str, Any], dict[str, Buffer]]:
    """Read one frame with an awaitable `read_exact(n)` (the gateway side)."""
    (size,) = struct.unpack("<I", await read_exact(4))
    if size > MAX_HEADER_BYTES:
        raise WireError("header too large")
    header = _parse_header(await read_exact(size))
    buffers: dict[str, Buffer] = {}
    for spec in header["buffers"]:
        (length,) = struct.unpack("<Q", await read_exact(8))
        if length > MAX_BUFFER_BYTES:
            raise WireError("buffer too large")
        buffers[str(spec.get("name"))] = _to_buffer(spec, await read_exact(length))
    return header, buffers
