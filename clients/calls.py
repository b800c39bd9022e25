"""How SDK inputs become gateway requests, and when a failed request is tried again.

Shared by the sync and the async client: only sending and sleeping differ between them.
"""

from __future__ import annotations

import email.utils
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# A path, raw points ([N,3] array or nested lists), a trimesh object, or (filename, bytes).
Source = str | os.PathLike[str] | np.ndarray | list[Any] | tuple[str, bytes] | Any


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for answers that say "try later" (503/429) and for refused connections.

    The wait is the server's Retry-After when it sends one, else `backoff * 2**attempt` with jitter;
    either way at most `max_backoff`, so a misbehaving server cannot park a client for minutes.
    """

    retries: int = 3
    backoff: float = 0.25
    max_backoff: float = 10.0
    statuses: tuple[int, ...] = (429, 503)

    def delay(self, attempt: int, retry_after: str | None) -> float:
        # Jitter spreads the retries of many clients refused at the same moment; with Retry-After
        # it only adds (up to 20%), so the server's "not before" still holds.
        parsed = parse_retry_after(retry_after)
        if parsed is None:
            wait = self.backoff * (2**attempt) * random.uniform(0.5, 1.0)
        else:
            wait = parsed * random.uniform(1.0, 1.2)
        return max(0.0, min(wait, self.max_backoff))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date (RFC 9110 10.2.3)."""
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - (time.time() if now is None else now)


@dataclass(frozen=True)
class Call:
    """One HTTP request, fully built, so a retry re-sends exactly the same bytes."""

    method: str
    path: str
    params: dict[str, Any] | None = None
    json: Any = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    data: dict[str, Any] | None = None  # multipart form fields beside `files`


def options_to_params(**options: Any) -> dict[str, Any]:
    """Query options, dropping the ones left at None (the gateway then uses the model's defaults)."""
    return {k: v for k, v in options.items() if v is not None}


def build_call(task: str, source: Source, params: dict[str, Any], fmt: str | None = None) -> Call:
    """`POST /v1/<task>` with the source as a multipart upload (`file`) or as JSON points."""
    path = f"/v1/{task}"
    params = {**params, **({"format": fmt} if fmt else {})}
    upload = as_upload(source, fmt)
    if upload is None:
        return Call("POST", path, params=params, json={"points": points_to_json(source)})
    name, content = upload
    return Call("POST", path, params=params, files=[("file", (name, content, "application/octet-stream"))])


def build_batch_call(task: str, sources: list[Source], params: dict[str, Any]) -> Call:
    """`POST /v1/<task>:batch`: all-points batches go as JSON `items`, anything else as repeated `files`."""
    uploads = [as_upload(s, None) for s in sources]
    if all(u is None for u in uploads):
        items = [{"points": points_to_json(s)} for s in sources]
        return Call("POST", f"/v1/{task}:batch", params=params, json={"items": items})
    files = []
    for source, upload in zip(sources, uploads, strict=True):
        # Points among files travel as .npy files (float32, what the model takes anyway).
        name, content = upload if upload is not None else ("points.npy", npy_bytes(source))
        files.append(("files", (name, content, "application/octet-stream")))
    return Call("POST", f"/v1/{task}:batch", params=params, files=files)


def as_upload(source: Source, fmt: str | None) -> tuple[str, bytes] | None:
    """(filename, bytes) for file-like sources; None for raw points (sent as JSON).

    Files are read into memory once: a retry must be able to send the body again.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        return path.name, path.read_bytes()
    if isinstance(source, tuple) and len(source) == 2 and isinstance(source[1], bytes | bytearray):
        return str(source[0]), bytes(source[1])
    if isinstance(source, bytes | bytearray):
        if not fmt:
            raise ValueError("raw bytes need format= (e.g. 'ply', 'obj', 'npy')")
        return f"upload.{fmt}", bytes(source)
    if _is_trimesh(source):
        mesh: Any = source
        # Binary PLY keeps faces (for meshes) and every vertex exactly (float64 -> no rounding surprises).
        return "mesh.ply", bytes(mesh.export(file_type="ply"))
    return None


def _is_trimesh(source: Any) -> bool:
    # Duck-typed so the SDK does not import trimesh (slow) unless the caller already did.
    return type(source).__module__.startswith("trimesh") and hasattr(source, "export")


def points_to_json(source: Any) -> list[Any]:
    points = np.asarray(source, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape [N, 3], got {list(points.shape)}")
    return points.tolist()


def npy_bytes(source: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(source, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()
