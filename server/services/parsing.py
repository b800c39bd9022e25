"""From uploads to model-ready points: one trip to a parse worker per upload.

The API layer (`server/api/uploads.py`) reads a request body into `Upload`s: a file's bytes with its
format, an array of points, or a JSON points body. Everything that interprets the bytes, JSON included,
runs in the sandboxed worker, which loads, prepares and answers every shape of the upload in that one trip.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import PurePosixPath
from typing import Any, Generic, Literal, TypeVar

import numpy as np

from server.core.config import Settings
from server.errors import ServingError
from server.services.parse_worker import PrepareOptions
from server.services.wire import Buffer
from server.services.workers import ParsePool, PoolBusy, PoolClosed, WorkerFailure

__all__ = [
    "PrepareOptions",
    "Prepared",
    "Received",
    "Upload",
    "UploadParser",
    "Uploads",
    "format_of",
    "unknown_format",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Upload:
    """One thing the parse worker reads in one trip: a file's bytes (with its format), an array of points,
    or a JSON points body (`document`: "shape" `{"points"}`, or "batch" `{"items": [...]}`, a shape each)."""

    name: str | None
    source: bytes | np.ndarray
    format: str | None
    document: Literal["shape", "batch"] | None = None
    error: ServingError | None = None  # this upload is unusable (the others of a batch still run)

    @classmethod
    def failed(cls, name: str | None, error: ServingError) -> Upload:
        return cls(name, b"", None, error=error)


@dataclass
class Received(Generic[T]):
    """What the API layer read from a request body, or why it could not. That error is raised where the
    service first needs the body (after its checks of the model, options and collection), so a request
    with two faults is refused for the same one, however early the body was read."""

    value: T
    error: ServingError | None = None

    def get(self) -> T:
        if self.error is not None:
            raise self.error
        return self.value


async def _never_gone() -> bool:
    return False


@dataclass
class Uploads(Received[list[Upload]]):
    """The uploads of one inference request; `client_gone` tells when its client has disconnected."""

    client_gone: Callable[[], Awaitable[bool]] = _never_gone


@dataclass
class Prepared:
    name: str | None
    points: np.ndarray  # float32 [N, 3], model frame
    receipt: dict[str, Any]
    vertex_count: int
    nearest: np.ndarray | None  # int32 [V]: nearest sampled point of each original vertex (-1: none)


def format_of(name: str | None, declared: str | None) -> str | None:
    if declared:
        return declared.strip().lstrip(".").lower() or None
    if name:
        suffix = PurePosixPath(name.replace("\\", "/")).suffix
        return suffix.lstrip(".").lower() or None
    return None


def unknown_format(name: str | None) -> ServingError:
    what = f"'{name}'" if name else "the upload"
    return ServingError(
        "unsupported_format",
        f"cannot tell the format of {what}: name the file with its extension or send format=",
    )


class UploadParser:
    """Prepares uploads on the worker pool."""

    def __init__(self, pool: ParsePool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    async def prepare(self, upload: Upload, options: PrepareOptions) -> list[Prepared | ServingError]:
        """Every shape of `upload` (one; a JSON batch body's items), each prepared or why not. A failure of
        the whole upload (unreadable, a worker lost, the pool full) is raised."""
        if upload.error is not None:
            return [upload.error]
        s = self._settings
        header = {
            "op": "prepare",
            "format": upload.format,
            "document": upload.document,
            "max_items": s.max_batch_items,
            "options": asdict(options),
        }
        # A JSON batch body's shapes are prepared in one trip: each keeps the time a file upload gets.
        timeout = s.parse_timeout_s * (s.max_batch_items if upload.document == "batch" else 1)
        meta, buffers = await self._run(header, {"source": upload.source}, timeout)
        entries = meta.get("items")
        if not isinstance(entries, list):
            raise ServingError("internal_error", "the parse worker returned no items")
        return [self._prepared(upload.name, entry, i, buffers, options) for i, entry in enumerate(entries)]

    async def prepare_one(self, upload: Upload, options: PrepareOptions) -> Prepared:
        """The one shape of a single-shape upload; its failure is raised."""
        outcomes = await self.prepare(upload, options)
        if len(outcomes) != 1:
            raise ServingError("internal_error", "the parse worker returned more than one shape")
        if isinstance(outcomes[0], ServingError):
            raise outcomes[0]
        return outcomes[0]

    @staticmethod
    def _prepared(
        name: str | None, entry: Any, index: int, buffers: dict[str, Buffer], options: PrepareOptions
    ) -> Prepared | ServingError:
        if not isinstance(entry, dict) or not entry.get("ok"):
            return _worker_error(entry if isinstance(entry, dict) else {})
        points = buffers.get(f"points{index}")
        near = buffers.get(f"nearest{index}")
        if (
            not isinstance(points, np.ndarray)
            or points.ndim != 2
            or points.shape[1] != 3
            or not options.min_points <= points.shape[0] <= options.num_points
        ):
            return ServingError("internal_error", "the parse worker returned points of the wrong shape")
        vertex_count = int(entry.get("vertex_count", 0))
        if isinstance(near, np.ndarray) and (
            near.shape != (vertex_count,) or int(near.max(initial=-1)) >= len(points)
        ):
            return ServingError("internal_error", "the parse worker returned a bad vertex mapping")
        return Prepared(
            name=name,
            points=points.astype(np.float32, copy=False),
            receipt=dict(entry.get("receipt") or {}),
            vertex_count=vertex_count,
            nearest=near if isinstance(near, np.ndarray) else None,
        )

    async def _run(
        self, header: dict[str, Any], buffers: dict[str, Buffer], timeout: float
    ) -> tuple[dict[str, Any], dict[str, Buffer]]:
        retry_after = self._settings.retry_after_s
        try:
            meta, out = await self._pool.run(header, buffers, timeout)
        except PoolBusy:
            raise ServingError(
                "overloaded", "too many uploads are waiting to be parsed", retry_after=retry_after
            ) from None
        except PoolClosed:
            raise ServingError("shutting_down", "the server is shutting down") from None
        except WorkerFailure as exc:
            if exc.reason == "unavailable":
                logger.error("parse pool: %s", exc)
                raise ServingError("parse_unavailable", str(exc), retry_after=retry_after) from None
            if exc.reason == "memory":
                raise ServingError("memory_limit_exceeded", str(exc)) from None
            if exc.reason == "timeout":
                logger.warning("parse worker failure: parse_timeout (%s)", exc)
                raise ServingError("parse_timeout", f"{exc}; the worker was replaced") from None
            # A worker killed or broken from outside (OOM killer, a crash) says nothing about the input:
            # the client may retry, and the replacement worker is starting.
            logger.warning("parse worker failure: parse_crashed (%s)", exc)
            raise ServingError(
                "parse_crashed", f"{exc}; the worker was replaced, try again", retry_after=retry_after
            ) from None
        if not meta.get("ok"):
            raise _worker_error(meta)
        return meta, out


def _worker_error(entry: dict[str, Any]) -> ServingError:
    code = str(entry.get("code") or "parse_failed")
    return ServingError(code, str(entry.get("message") or "the input could not be parsed"))
