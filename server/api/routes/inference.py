"""POST /v1/embed, /v1/classify, /v1/segment and their `:batch` forms (thin: the service does the work)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from server.api.deps import ClassifyOptionsDep, EmbedOptionsDep, SegmentOptionsDep, ServiceDep
from server.schemas import BatchResponse, ClassifyResponse, EmbedResponse, ErrorResponse, SegmentResponse

router = APIRouter(prefix="/v1", tags=["inference"])

_POINTS = {
    "type": "array",
    "items": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in {
        400: "Malformed input (parse_error, invalid_json, missing_file, invalid_multipart)",
        401: "Missing or wrong API key",
        413: "Too large (body_too_large, limit_exceeded, memory_limit_exceeded, too_many_items, request_too_costly)",
        415: "Unknown format or Content-Type (unsupported_format, unsupported_media_type)",
        422: "Unusable input or options (empty_geometry, external_reference, parse_timeout, validation_error, ...)",
        503: "Overloaded (Retry-After), shutting down or model unavailable",
    }.items()
}


def _body(batch: bool) -> dict[str, Any]:
    """OpenAPI for the request body, which the route reads itself (its bytes go to the parse worker)."""
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
    return {"requestBody": {"required": True, "content": content}}


@router.post("/embed", response_model=EmbedResponse, responses=_ERRORS, openapi_extra=_body(False))
async def embed(request: Request, service: ServiceDep, options: EmbedOptionsDep) -> EmbedResponse:
    """The 2048-d CrossPoint embedding of one shape (+ the 256-d projection when asked)."""
    return await service.embed(request, options)


@router.post(
    "/embed:batch", response_model=BatchResponse[EmbedResponse], responses=_ERRORS, openapi_extra=_body(True)
)
async def embed_batch(
    request: Request, service: ServiceDep, options: EmbedOptionsDep
) -> BatchResponse[EmbedResponse]:
    """Embeddings of many shapes; a bad item gets its own error, the others still answer."""
    return await service.embed_batch(request, options)


@router.post("/classify", response_model=ClassifyResponse, responses=_ERRORS, openapi_extra=_body(False))
async def classify(request: Request, service: ServiceDep, options: ClassifyOptionsDep) -> ClassifyResponse:
    """Top-k classes with probabilities (softmax of the class head's logits)."""
    return await service.classify(request, options)


@router.post(
    "/classify:batch",
    response_model=BatchResponse[ClassifyResponse],
    responses=_ERRORS,
    openapi_extra=_body(True),
)
async def classify_batch(
    request: Request, service: ServiceDep, options: ClassifyOptionsDep
) -> BatchResponse[ClassifyResponse]:
    """Top-k classes for many shapes."""
    return await service.classify_batch(request, options)


@router.post("/segment", response_model=SegmentResponse, responses=_ERRORS, openapi_extra=_body(False))
async def segment(request: Request, service: ServiceDep, options: SegmentOptionsDep) -> SegmentResponse:
    """Part label per sampled point and per original vertex; the category is predicted when not given."""
    return await service.segment(request, options)


@router.post(
    "/segment:batch",
    response_model=BatchResponse[SegmentResponse],
    responses=_ERRORS,
    openapi_extra=_body(True),
)
async def segment_batch(
    request: Request, service: ServiceDep, options: SegmentOptionsDep
) -> BatchResponse[SegmentResponse]:
    """Part labels for many shapes."""
    return await service.segment_batch(request, options)
