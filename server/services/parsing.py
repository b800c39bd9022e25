"""From an HTTP request to model-ready points: read the body, then parse + prepare in a worker.

Inputs (the contract): a multipart field `file` (batch: repeated `files`), format from the file
name's extension or a `format` field; a JSON body `{"points": [[x, y, z], ...]}` (batch:
`{"items": [...]}`); or a raw body (`application/x-npy`, or `application/octet-stream` with
`?format=`). Everything that interprets the bytes, JSON included, runs in the sandboxed worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.core.config import Settings
from server.errors import GEOMETRY_STATUS, ApiError
from server.services.wire import Buffer
from server.services.workers import ParsePool, PoolBusy, PoolClosed, WorkerFailure

logger = logging.getLogger(__name__)

_WORKER_STATUS = {
    "invalid_json": 400,
    "invalid_request": 422,
    "invalid_points": 422,
    "too_many_items": 413,
    "memory_limit_exceeded": 413,
    "parse_failed": 422,
}
_NPY_TYPES = {"application/x-npy", "application/npy"}


@dataclass(frozen=True)
class PrepareOptions:
    """How to turn an upload into the model's input (resolved against the model's metadata)."""

    num_points: int
    up_axis: str
    seed: int
    min_points: int  # fewer distinct points than this is refused (the model's kNN needs >= k)


@dataclass
class RawItem:
    """One input as received: bytes of a file (with its format) or an array of points, or why not."""

    name: str | None
    source: bytes | np.ndarray
    format: str | None
    error: ApiError | None = None  # this input is unusable (the others of a batch still run)

    @classmethod
    def failed(cls, name: str | None, error: ApiError) -> RawItem:
        return cls(name, b"", None, error)


@dataclass
class Prepared:
    name: str | None
    points: np.ndarray  # float32 [N, 3], model frame
    receipt: dict[str, Any]
    vertex_count: int
    nearest: np.ndarray | None  # int32 [V]: nearest sampled point of each original vertex (-1: none)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The multipart body within these counts; too many files -> 413, an unreadable body -> 400."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields, max_part_size=64 * 1024)
    except StarletteHTTPException as exc:
        message = str(exc.detail)
        if "Too many files" in message:
            raise ApiError(413, "too_many_items", f"at most {max_files} files per request") from None
        raise ApiError(400, "invalid_multipart", f"the multipart body could not be read: {message}") from None


def format_of(name: str | None, declared: str | None) -> str | None:
    if declared:
        return declared.strip().lstrip(".").lower() or None
    if name:
        suffix = PurePosixPath(name.replace("\\", "/")).suffix
        return suffix.lstrip(".").lower() or None
    return None


def _unknown_format(name: str | None) -> ApiError:
    what = f"'{name}'" if name else "the upload"
    return ApiError(
        415,
        "unsupported_format",
        f"cannot tell the format of {what}: name the file with its extension or send format=",
    )


class UploadParser:
    """Reads request bodies into items and prepares them on the worker pool."""

    def __init__(self, pool: ParsePool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    async def read_items(self, request: Request, *, batch: bool, format: str | None) -> list[RawItem]:
        kind = media_type(request)
        if kind == "multipart/form-data":
            return await self._read_multipart(request, batch=batch, format=format)
        if kind == "application/json" or kind.endswith("+json"):
            return await self._read_json(await request.body(), batch=batch)
        if kind in _NPY_TYPES or kind == "application/octet-stream":
            if batch:
                raise ApiError(
                    415, "unsupported_media_type", "batch bodies are multipart `files` or JSON `items`"
                )
            fmt = "npy" if kind in _NPY_TYPES else format_of(None, format)
            body = await request.body()
            if fmt is None:
                raise ApiError(
                    415,
                    "unsupported_format",
                    "an application/octet-stream body needs ?format= (e.g. npy, ply)",
                )
            return [RawItem(None, body, fmt)]
        raise ApiError(
            415,
            "unsupported_media_type",
            f"unsupported Content-Type {kind or '(none)'!r}: send multipart/form-data, application/json "
            "or application/x-npy",
        )

    async def _read_multipart(self, request: Request, *, batch: bool, format: str | None) -> list[RawItem]:
        limit = self._settings.max_batch_items if batch else 1
        form = await read_form(request, max_files=limit, max_fields=8)
        try:
            declared = form.get("format")
            declared = declared if isinstance(declared, str) and declared else format
            names = ("files", "file") if batch else ("file",)
            uploads = [u for key in names for u in form.getlist(key) if isinstance(u, UploadFile)]
            if not uploads:
                field = "files" if batch else "file"
                raise ApiError(400, "missing_file", f"send the upload in a multipart field named '{field}'")
            items: list[RawItem] = []
            for upload in uploads:
                fmt = format_of(upload.filename, declared)
                if fmt is None:
                    items.append(RawItem.failed(upload.filename, _unknown_format(upload.filename)))
                else:
                    items.append(RawItem(upload.filename, await upload.read(), fmt))
            return items
        finally:
            await form.close()

    async def _read_json(self, body: bytes, *, batch: bool) -> list[RawItem]:
        header = {"op": "decode_json", "batch": batch, "max_items": self._settings.max_batch_items}
        meta, buffers = await self._run(header, {"body": body})
        items: list[RawItem] = []
        for index, entry in enumerate(meta.get("items", [])):
            array = buffers.get(f"item{index}")
            if entry.get("ok") and isinstance(array, np.ndarray):
                items.append(RawItem(None, array, None))
            else:
                items.append(RawItem.failed(None, self._worker_error(entry)))
        return items

    async def prepare(self, item: RawItem, options: PrepareOptions, *, nearest: bool) -> Prepared:
        s = self._settings
        header = {
            "op": "prepare",
            "format": item.format,
            "num_points": options.num_points,
            "up_axis": options.up_axis,
            "seed": options.seed,
            "min_points": options.min_points,
            "nearest": nearest,
            "max_vertex_labels": s.max_vertex_labels,
            "max_bytes": s.max_body_bytes,
            "max_vertices": s.max_input_points,
            "max_faces": s.max_input_faces,
        }
        meta, buffers = await self._run(header, {"source": item.source})
        points = buffers.get("points")
        near = buffers.get("nearest")
        if (
            not isinstance(points, np.ndarray)
            or points.ndim != 2
            or points.shape[1] != 3
            or not options.min_points <= points.shape[0] <= options.num_points
        ):
            raise ApiError(500, "internal_error", "the parse worker returned points of the wrong shape")
        vertex_count = int(meta.get("vertex_count", 0))
        if isinstance(near, np.ndarray) and (
            near.shape != (vertex_count,) or int(near.max(initial=-1)) >= len(points)
        ):
            raise ApiError(500, "internal_error", "the parse worker returned a bad vertex mapping")
        return Prepared(
            name=item.name,
            points=points.astype(np.float32, copy=False),
            receipt=dict(meta.get("receipt") or {}),
            vertex_count=vertex_count,
            nearest=near if isinstance(near, np.ndarray) else None,
        )

    async def _run(
        self, header: dict[str, Any], buffers: dict[str, Buffer]
    ) -> tuple[dict[str, Any], dict[str, Buffer]]:
        s = self._settings
        try:
            meta, out = await self._pool.run(header, buffers, s.parse_timeout_s)
        except PoolBusy:
            raise ApiError(
                503,
                "overloaded",
                "too many uploads are waiting to be parsed",
                headers={"Retry-After": str(s.retry_after_s)},
            ) from None
        except PoolClosed:
            raise ApiError(503, "shutting_down", "the server is shutting down") from None
        except WorkerFailure as exc:
            if exc.reason == "unavailable":
                logger.error("parse pool: %s", exc)
                raise ApiError(
                    503, "parse_unavailable", str(exc), headers={"Retry-After": str(s.retry_after_s)}
                ) from None
            if exc.reason == "memory":
                raise ApiError(413, "memory_limit_exceeded", str(exc)) from None
            if exc.reason == "timeout":
                logger.warning("parse worker failure: parse_timeout (%s)", exc)
                raise ApiError(422, "parse_timeout", f"{exc}; the worker was replaced") from None
            # A worker killed or broken from outside (OOM killer, a crash) says nothing about the input:
            # the client may retry, and the replacement worker is starting.
            logger.warning("parse worker failure: parse_crashed (%s)", exc)
            raise ApiError(
                503,
                "parse_crashed",
                f"{exc}; the worker was replaced, try again",
                headers={"Retry-After": str(s.retry_after_s)},
            ) from None
        if not meta.get("ok"):
            raise self._worker_error(meta)
        return meta, out

    @staticmethod
    def _worker_error(entry: dict[str, Any]) -> ApiError:
        code = str(entry.get("code") or "parse_failed")
        status = GEOMETRY_STATUS.get(code) or _WORKER_STATUS.get(code, 422)
        return ApiError(status, code, str(entry.get("message") or "the input could not be parsed"))
