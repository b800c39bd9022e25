"""The parse worker: a child process that turns untrusted uploads into model-ready points.

Run as `python -m server.services.parse_worker --memory-mb M --max-tasks T` by the gateway's
`ParsePool`. It imports only numpy/scipy/crosspoint.geometry, caps its own address space
(RLIMIT_AS, baseline + M MiB) after warming up, dies with its parent (PR_SET_PDEATHSIG), and answers
frames from stdin on a private copy of stdout (stray prints go to stderr). A MemoryError answers
`memory_limit_exceeded` and retires the worker; the parent enforces wall-clock time by killing it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from server.services.wire import Buffer, encode, read_frame

Result = tuple[dict[str, Any], dict[str, Buffer]]
EXIT_OUT_OF_MEMORY = 3  # the upload did not fit under the memory cap while it was being received


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: the parent still kills us on shutdown
        pass


def _address_space_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _cap_memory(extra_mb: int) -> None:
    limit = _address_space_bytes() + extra_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _error(code: str, message: str) -> Result:
    return {"ok": False, "code": code, "message": message}, {}


@dataclass(frozen=True)
class PrepareOptions:
    """How an upload becomes the model's input (resolved against the model's metadata and the limits);
    it crosses the pipe whole (`asdict` in the frame's header)."""

    num_points: int
    up_axis: str
    seed: int
    min_points: int  # fewer distinct points than this is refused (the model's kNN needs >= k)
    nearest: bool  # also index each original vertex's nearest sampled point (segment's vertex labels)
    max_vertex_labels: int  # above this many original vertices, no such index
    max_bytes: int
    max_vertices: int
    max_faces: int


def decode_points_json(body: bytes, batch: bool, max_items: int) -> list[np.ndarray | dict[str, Any]]:
    """`{"points": [[x,y,z],...]}` or `{"items": [{"points": ...}, ...]}` -> a float64 array or an error
    entry per item; a body that is not such a document raises `_BodyError`."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise _BodyError("invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise _BodyError("invalid_request", "the JSON body must be an object")
    if batch:
        items = document.get("items")
        if not isinstance(items, list):
            raise _BodyError(
                "invalid_request", 'a batch body is {"items": [{"points": [[x, y, z], ...]}, ...]}'
            )
        if len(items) > max_items:
            raise _BodyError("too_many_items", f"{len(items)} items in one batch; the limit is {max_items}")
        if not items:
            raise _BodyError("invalid_request", "the batch holds no items")
    else:
        items = [document]
    results: list[np.ndarray | dict[str, Any]] = []
    for item in items:
        points = item.get("points") if isinstance(item, dict) else None
        if points is None:
            results.append(
                {"ok": False, "code": "invalid_request", "message": 'expected {"points": [[x, y, z], ...]}'}
            )
            continue
        array, problem = _points_array(points)
        results.append(
            array if array is not None else {"ok": False, "code": "invalid_points", "message": problem}
        )
    return results


class _BodyError(Exception):
    """A JSON body that is not a points document at all (the whole request is refused)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _points_array(points: Any) -> tuple[np.ndarray | None, str]:
    if not isinstance(points, list):
        return None, "points must be a list of [x, y, z] triples"
    if not points:
        return np.zeros((0, 3), dtype=np.float64), ""
    try:
        array = np.asarray(points)
    except (ValueError, TypeError, OverflowError):
        return None, "points must be a list of [x, y, z] triples of numbers (rows of different lengths?)"
    if array.dtype.kind not in "iuf":
        return None, "points must hold numbers only (no strings, booleans or nulls)"
    if array.ndim != 2 or array.shape[1] != 3:
        return None, f"points must have shape [N, 3]; got {list(array.shape)}"
    return np.ascontiguousarray(array, dtype=np.float64), ""


def prepare_upload(header: dict[str, Any], buffers: dict[str, Buffer]) -> Result:
    """One upload -> every shape it holds, prepared: a file or an array is one shape; a JSON points body
    (`document` "shape" or "batch") is decoded here first. Each shape answers on its own: an entry in
    `items` (receipt, vertex_count; or code, message) and buffers `points{i}` (+ `nearest{i}`)."""
    options = PrepareOptions(**header["options"])
    source = buffers.get("source")
    if source is None:
        return _error("invalid_request", "no source")
    document = header.get("document")
    shapes: list[Buffer | dict[str, Any]] = [source]
    if document is not None:
        if not isinstance(source, bytes):
            return _error("invalid_request", "a JSON document arrives as bytes")
        try:
            shapes = list(decode_points_json(source, document == "batch", int(header.get("max_items", 1))))
        except _BodyError as exc:
            return _error(exc.code, str(exc))
    entries: list[dict[str, Any]] = []
    out: dict[str, Buffer] = {}
    retire = False
    for index, shape in enumerate(shapes):
        if isinstance(shape, dict):
            entries.append(shape)
            continue
        try:
            entry, arrays = prepare_source(shape, header.get("format"), options)
        except Exception as exc:  # MemoryError, RecursionError and the readers' errors: this shape's fault
            entry, arrays = _failure(exc), {}
            retire = retire or bool(entry.pop("retire", False))
        entries.append(entry)
        out.update({f"{name}{index}": value for name, value in arrays.items()})
    meta: dict[str, Any] = {"ok": True, "items": entries}
    if retire:
        meta["retire"] = True
    return meta, out


def prepare_source(
    source: Buffer, format: str | None, options: PrepareOptions
) -> tuple[dict[str, Any], dict[str, Buffer]]:
    """Load + prepare one shape; with `nearest`, also index each original vertex's nearest sampled point."""
    from crosspoint import geometry

    limits = geometry.Limits(
        max_bytes=options.max_bytes, max_vertices=options.max_vertices, max_faces=options.max_faces
    )
    if isinstance(source, bytes):
        shape = geometry.load(source, format=format, limits=limits)
    else:
        shape = geometry.load(source, limits=limits)
    points, receipt = geometry.prepare(
        shape,
        num_points=options.num_points,
        up_axis=options.up_axis,
        seed=options.seed,
        min_points=options.min_points,
    )
    out: dict[str, Buffer] = {"points": np.ascontiguousarray(points, dtype=np.float32)}
    meta: dict[str, Any] = {"ok": True, "receipt": receipt.to_dict(), "vertex_count": int(shape.num_vertices)}
    if options.nearest:
        # Arrays: one label per input row (-1 for a non-finite row). Files: per finite vertex, in file order.
        originals = source if isinstance(source, np.ndarray) else shape.vertices
        if originals.shape[0] <= options.max_vertex_labels:
            with np.errstate(invalid="ignore", over="ignore"):
                mapped = geometry.to_model_frame(originals, receipt)
            out["nearest"] = nearest_sampled(np.asarray(points), mapped)
            meta["vertex_count"] = int(originals.shape[0])
    return meta, out


def nearest_sampled(points: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Index of the nearest sampled point for each vertex (both in the model frame); -1 if not finite."""
    from scipy.spatial import cKDTree

    nearest = np.full(vertices.shape[0], -1, dtype=np.int32)
    finite = np.isfinite(vertices).all(axis=1)
    if finite.any():
        _, index = cKDTree(np.asarray(points, dtype=np.float64)).query(vertices[finite], k=1)
        nearest[finite] = index.astype(np.int32)
    return nearest


def _failure(exc: Exception) -> dict[str, Any]:
    """The error entry for an exception raised while reading untrusted input (`retire`: replace the worker)."""
    from crosspoint.geometry import GeometryError

    if isinstance(exc, GeometryError):
        return {"ok": False, "code": exc.code, "message": str(exc)}
    if isinstance(exc, MemoryError):
        message = "parsing this input needed more memory than the limit allows"
        return {"ok": False, "code": "memory_limit_exceeded", "message": message, "retire": True}
    if isinstance(exc, RecursionError):
        return {"ok": False, "code": "parse_error", "message": "the input is nested too deeply to parse"}
    # a reader failing in an unforeseen way on bad input: the input's fault
    sys.stderr.write(f"parse worker: {type(exc).__name__}: {exc}\n")
    return {
        "ok": False,
        "code": "parse_failed",
        "message": f"the input could not be parsed ({type(exc).__name__})",
    }


def handle(header: dict[str, Any], buffers: dict[str, Buffer]) -> Result:
    op = header.get("op")
    try:
        if op == "prepare":
            return prepare_upload(header, buffers)
        if op == "ping":
            return {"ok": True, "pid": os.getpid()}, {}
        return _error("invalid_request", f"unknown operation {op!r}")
    except Exception as exc:
        return _failure(exc), {}


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _write(fd: int, chunks: list[bytes]) -> None:
    for chunk in chunks:
        view = memoryview(chunk)
        while view:
            written = os.write(fd, view)
            view = view[written:]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--max-tasks", type=int, required=True)
    args = parser.parse_args(argv)
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when we stop
    # Private pipe ends; fds 0/1 become /dev/null/stderr so nothing else can corrupt the protocol.
    fd_in, fd_out = os.dup(0), os.dup(1)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)

    import scipy.spatial  # noqa: F401

    import crosspoint.geometry  # noqa: F401  (warm up before capping memory)

    _cap_memory(args.memory_mb)
    _write(fd_out, encode({"ready": True, "pid": os.getpid()}))
    for task in range(args.max_tasks):
        try:
            header, buffers = read_frame(lambda n: _read_exact(fd_in, n))
        except EOFError:
            return
        except MemoryError:
            os._exit(
                EXIT_OUT_OF_MEMORY
            )  # mid-frame: the pipe is out of step, so leave; the parent reports it
        meta, out = handle(header, buffers)
        del header, buffers
        retiring = bool(meta.pop("retire", False)) or task == args.max_tasks - 1
        meta["retiring"] = retiring
        try:
            chunks = encode(meta, out)
        except MemoryError:
            chunks = encode(
                {
                    "ok": False,
                    "code": "memory_limit_exceeded",
                    "message": "result too large",
                    "retiring": True,
                }
            )
            retiring = True
        _write(fd_out, chunks)
        if retiring:
            return


if __name__ == "__main__":
    main()
