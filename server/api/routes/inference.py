"""POST /v1/embed, /v1/classify, /v1/segment and their `:batch` forms: the body is read by the upload
dependency (server/api/uploads.py), the service does the work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response

from server.api.deps import ClassifyOptionsDep, EmbedOptionsDep, SegmentOptionsDep, ServiceDep
from server.api.errors import documented_errors
from server.api.npy import npy_response, wants_npy
from server.api.uploads import BatchUploads, OneUpload, upload_body
from server.schemas import BatchResponse, ClassifyResponse, EmbedResponse, SegmentResponse

router = APIRouter(prefix="/v1", tags=["inference"])
F = TypeVar("F", bound=Callable[..., Any])

_ERRORS = documented_errors(
    {
        400: "Malformed input (parse_error, invalid_json, missing_file, invalid_multipart)",
        401: "Missing or wrong API key",
        413: "Too large (body_too_large, limit_exceeded, memory_limit_exceeded, too_many_items, request_too_costly)",
        415: "Unknown format or Content-Type (unsupported_format, unsupported_media_type)",
        422: "Unusable input or options (empty_geometry, external_reference, parse_timeout, validation_error, ...)",
        503: "Overloaded (Retry-After), shutting down or model unavailable",
    }
)


def _post(path: str, answer: Any) -> Callable[[F], F]:
    """POST `path` answering `answer`; the body is one upload, or several on a `:batch` path."""
    return router.post(
        path, response_model=answer, responses=_ERRORS, openapi_extra=upload_body(path.endswith(":batch"))
    )


@_post("/embed", EmbedResponse)
async def embed(
    request: Request, service: ServiceDep, options: EmbedOptionsDep, uploads: OneUpload
) -> EmbedResponse | Response:
    """The 2048-d CrossPoint embedding of one shape (+ the 256-d projection when asked);
    `Accept: application/x-npy` answers the embedding as a float32 .npy (server/api/npy.py)."""
    answer = await service.embed(uploads, options)
    return npy_response(answer) if wants_npy(request.headers.get("accept")) else answer


@_post("/embed:batch", BatchResponse[EmbedResponse])
async def embed_batch(
    service: ServiceDep, options: EmbedOptionsDep, uploads: BatchUploads
) -> BatchResponse[EmbedResponse]:
    """Embeddings of many shapes; a bad item gets its own error, the others still answer."""
    return await service.embed_batch(uploads, options)


@_post("/classify", ClassifyResponse)
async def classify(service: ServiceDep, options: ClassifyOptionsDep, uploads: OneUpload) -> ClassifyResponse:
    """Top-k classes with probabilities (softmax of the class head's logits)."""
    return await service.classify(uploads, options)


@_post("/classify:batch", BatchResponse[ClassifyResponse])
async def classify_batch(
    service: ServiceDep, options: ClassifyOptionsDep, uploads: BatchUploads
) -> BatchResponse[ClassifyResponse]:
    """Top-k classes for many shapes."""
    return await service.classify_batch(uploads, options)


@_post("/segment", SegmentResponse)
async def segment(service: ServiceDep, options: SegmentOptionsDep, uploads: OneUpload) -> SegmentResponse:
    """Part label per sampled point and per original vertex; the category is predicted when not given."""
    return await service.segment(uploads, options)


@_post("/segment:batch", BatchResponse[SegmentResponse])
async def segment_batch(
    service: ServiceDep, options: SegmentOptionsDep, uploads: BatchUploads
) -> BatchResponse[SegmentResponse]:
    """Part labels for many shapes."""
    return await service.segment_batch(uploads, options)
