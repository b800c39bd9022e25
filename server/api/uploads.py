"""Request bodies -> what the services take: dependencies that read uploads, collection items and queries.

Inputs (the contract): a multipart field `file` (batch: repeated `files`), format from the file name's
extension or a `format` field; a JSON body `{"points": [[x, y, z], ...]}` (batch: `{"items": [...]}`),
handed whole to the parse worker, which decodes it; or a raw body (`application/x-npy`, or
`application/octet-stream` with `?format=`). A body that cannot be read is not refused here: it travels as
`Received.error` and the service raises it where it first needs the body, after its own checks.
The request bodies' OpenAPI schemas are written here, beside the code that reads them (one route reads
several content types, which FastAPI cannot declare from a parameter).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.api.deps import CollectionsDep, SettingsDep
from server.errors import ServingError
from server.schemas import CollectionItemRequest, CollectionItemsBatchRequest, CollectionQueryRequest
from server.services.collections import CollectionQuery, CollectionService, ItemInput
from server.services.parsing import Received, Upload, Uploads, format_of, unknown_format

T = TypeVar("T")
_NPY_TYPES = {"application/x-npy", "application/npy"}


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(kind: str) -> bool:
    return kind == "application/json" or kind.endswith("+json")


async def read_form(request: Request, *, max_files: int, max_fields: int) -> FormData:
    """The multipart body within these counts; too many files -> 413, an unreadable body -> 400."""
    try:
        return await request.form(max_files=max_files, max_fields=max_fields, max_part_size=64 * 1024)
    except StarletteHTTPException as exc:
        message = str(exc.detail)
        if "Too many files" in message:
            raise ServingError("too_many_items", f"at most {max_files} files per request") from None
        raise ServingError("invalid_multipart", f"the multipart body could not be read: {message}") from None


async def _received(read: Callable[[], Awaitable[T]], empty: T) -> Received[T]:
    try:
        return Received(await read())
    except ServingError as exc:  # the body limit's 413 included
        return Received(empty, exc)


# --- inference uploads ---


async def read_uploads(request: Request, *, batch: bool, format: str | None, max_items: int) -> list[Upload]:
    kind = media_type(request)
    if kind == "multipart/form-data":
        return await _read_files(request, batch=batch, format=format, max_items=max_items)
    if _is_json(kind):
        return [Upload(None, await request.body(), None, document="batch" if batch else "shape")]
    if kind in _NPY_TYPES or kind == "application/octet-stream":
        if batch:
            raise ServingError("unsupported_media_type", "batch bodies are multipart `files` or JSON `items`")
        fmt = "npy" if kind in _NPY_TYPES else format_of(None, format)
        body = await request.body()
        if fmt is None:
            raise ServingError(
                "unsupported_format", "an application/octet-stream body needs ?format= (e.g. npy, ply)"
            )
        return [Upload(None, body, fmt)]
    raise ServingError(
        "unsupported_media_type",
        f"unsupported Content-Type {kind or '(none)'!r}: send multipart/form-data, application/json "
        "or application/x-npy",
    )


async def _read_files(request: Request, *, batch: bool, format: str | None, max_items: int) -> list[Upload]:
    form = await read_form(request, max_files=max_items if batch else 1, max_fields=8)
    try:
        declared = form.get("format")
        declared = declared if isinstance(declared, str) and declared else format
        names = ("files", "file") if batch else ("file",)
        files = [u for key in names for u in form.getlist(key) if isinstance(u, UploadFile)]
        if not files:
            field = "files" if batch else "file"
            raise ServingError("missing_file", f"send the upload in a multipart field named '{field}'")
        uploads: list[Upload] = []
        for file in files:
            fmt = format_of(file.filename, declared)
            if fmt is None:
                uploads.append(Upload.failed(file.filename, unknown_format(file.filename)))
            else:
                uploads.append(Upload(file.filename, await file.read(), fmt))
        return uploads
    finally:
        await form.close()


def declared_format(request: Request) -> str | None:
    """`?format=`, validated with the route's other query options (here it would be reported twice)."""
    return request.query_params.get("format")


async def _uploads(request: Request, max_items: int, *, batch: bool) -> Uploads:
    try:
        uploads = await read_uploads(
            request, batch=batch, format=declared_format(request), max_items=max_items
        )
    except ServingError as exc:
        return Uploads([], exc, client_gone=request.is_disconnected)
    return Uploads(uploads, client_gone=request.is_disconnected)


async def one_upload(request: Request) -> Uploads:
    """The shape of a single-shape request."""
    return await _uploads(request, 1, batch=False)


async def batch_uploads(request: Request, settings: SettingsDep) -> Uploads:
    """The shapes of a `:batch` request (at most `max_batch_items`)."""
    return await _uploads(request, settings.max_batch_items, batch=True)


OneUpload = Annotated[Uploads, Depends(one_upload)]
BatchUploads = Annotated[Uploads, Depends(batch_uploads)]

_POINTS = {
    "type": "array",
    "items": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
}


def upload_body(batch: bool) -> dict[str, Any]:
    """OpenAPI for the request body the upload dependencies read."""
    points = {"type": "object", "required": ["points"], "properties": {"points": _POINTS}}
    if batch:
        json_schema: dict[str, Any] = {
            "type": "object",
            "required": ["items"],
            "properties": {"items": {"type": "array", "items": points}},
        }
        multipart = {
            "type": "object",
            "required": ["files"],
            "properties": {
                "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                "format": {
                    "type": "string",
                    "description": "format of every file (else each file's extension)",
                },
            },
        }
        content = {"application/json": {"schema": json_schema}, "multipart/form-data": {"schema": multipart}}
    else:
        multipart = {
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": {"type": "string", "format": "binary"},
                "format": {"type": "string", "description": "format when the file name has no extension"},
            },
        }
        content = {
            "application/json": {"schema": points},
            "multipart/form-data": {"schema": multipart},
            "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        }
    return _request_body(content)


def _request_body(content: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": content}}


# --- collection items and queries ---


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"body.{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
    return "; ".join(parts) or "invalid body"


async def read_items(
    request: Request, collections: CollectionService, *, batch: bool, max_items: int
) -> list[ItemInput]:
    """Items to add: JSON (points or an embedding each) or multipart files with id/label/metadata fields."""
    kind = media_type(request)
    limit = max_items if batch else 1
    if _is_json(kind):
        body = await request.body()
        try:
            if batch:
                entries = CollectionItemsBatchRequest.model_validate_json(body).items
                if len(entries) > limit:
                    raise ServingError("too_many_items", f"at most {limit} items per request")
            else:
                entries = [CollectionItemRequest.model_validate_json(body)]
        except ValidationError as exc:
            raise ServingError("validation_error", _validation_message(exc)) from None
        return [collections.item_from_json(e) for e in entries]
    if kind != "multipart/form-data":
        raise ServingError(
            "unsupported_media_type", "send multipart/form-data (file + id, label, metadata) or JSON"
        )
    form = await read_form(request, max_files=limit, max_fields=4 + 3 * limit)
    try:
        declared = form.get("format")
        declared = declared if isinstance(declared, str) and declared else declared_format(request)
        key = "files" if batch else "file"
        files = [u for u in form.getlist(key) if isinstance(u, UploadFile)]
        if not files:
            raise ServingError("missing_file", f"send the upload in a multipart field named '{key}'")
        ids = [str(v) for v in form.getlist("ids" if batch else "id")]
        labels = [str(v) for v in form.getlist("labels" if batch else "label")]
        metas = [str(v) for v in form.getlist("metadata")]
        for values, field in ((ids, "ids"), (labels, "labels"), (metas, "metadata")):
            if values and len(values) != len(files):
                raise ServingError("invalid_item", f"give one '{field}' value per file (or none)")
        return [
            collections.item_from_file(
                file.filename,
                await file.read(),
                ids[i] if ids else None,
                labels[i] if labels else None,
                metas[i] if metas else None,
                declared,
            )
            for i, file in enumerate(files)
        ]
    finally:
        await form.close()


async def one_item(request: Request, collections: CollectionsDep) -> Received[list[ItemInput]]:
    return await _received(lambda: read_items(request, collections, batch=False, max_items=1), [])


async def batch_items(
    request: Request, collections: CollectionsDep, settings: SettingsDep
) -> Received[list[ItemInput]]:
    limit = settings.max_batch_items
    return await _received(lambda: read_items(request, collections, batch=True, max_items=limit), [])


async def read_query(request: Request) -> CollectionQuery:
    """A search/classify query: a JSON document, else one uploaded shape (as the inference routes read it)."""
    if _is_json(media_type(request)):
        try:
            return CollectionQuery(document=CollectionQueryRequest.model_validate_json(await request.body()))
        except ValidationError as exc:
            raise ServingError("validation_error", _validation_message(exc)) from None
    (upload,) = await read_uploads(request, batch=False, format=declared_format(request), max_items=1)
    return CollectionQuery(upload=upload)


async def collection_query(request: Request) -> Received[CollectionQuery]:
    return await _received(lambda: read_query(request), CollectionQuery())


OneItem = Annotated[Received[list[ItemInput]], Depends(one_item)]
BatchItems = Annotated[Received[list[ItemInput]], Depends(batch_items)]
QueryBody = Annotated[Received[CollectionQuery], Depends(collection_query)]

_ANY_POINTS = {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}
_PER_FILE = {"type": "array", "items": {"type": "string"}, "description": "one per file"}
_ITEM_JSON = {
    "type": "object",
    "required": ["id"],
    "properties": {
        "id": {"type": "string"},
        "points": _ANY_POINTS,
        "embedding": {"type": "array", "items": {"type": "number"}},
        "version": {"type": "string"},
        "label": {"type": "string"},
        "metadata": {"type": "object"},
    },
}
ITEM_BODY = _request_body(
    {
        "application/json": {"schema": _ITEM_JSON},
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary"},
                    "id": {"type": "string", "description": "default: the file name's stem"},
                    "label": {"type": "string"},
                    "metadata": {"type": "string", "description": "a JSON object"},
                    "format": {"type": "string"},
                },
            }
        },
    }
)
ITEMS_BODY = _request_body(
    {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["items"],
                "properties": {"items": {"type": "array", "items": _ITEM_JSON}},
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    "ids": _PER_FILE,
                    "labels": _PER_FILE,
                    "metadata": _PER_FILE,
                    "format": {"type": "string"},
                },
            }
        },
    }
)
QUERY_BODY = _request_body(
    {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "exactly one of id (a stored item), points or embedding",
                "properties": {
                    "id": {"type": "string"},
                    "points": _ANY_POINTS,
                    "embedding": {"type": "array", "items": {"type": "number"}},
                },
            }
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}},
            }
        },
        "application/x-npy": {"schema": {"type": "string", "format": "binary"}},
    }
)
