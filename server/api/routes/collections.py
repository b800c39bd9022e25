"""/v1/collections: persistent sets of embedded shapes, similarity search and few-shot classification."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from server.api.deps import CollectionsDep, CommonOptions, SettingsDep
from server.api.errors import documented_errors
from server.api.uploads import ITEM_BODY, ITEMS_BODY, QUERY_BODY, BatchItems, OneItem, QueryBody
from server.errors import ApiError
from server.schemas import (
    CollectionClassifyResponse,
    CollectionCreateRequest,
    CollectionInfoResponse,
    CollectionsResponse,
    ItemAnswer,
    ItemDetail,
    ItemsBatchResponse,
    SearchResponse,
)
from server.services import fewshot

router = APIRouter(prefix="/v1/collections", tags=["collections"])

_ERRORS = documented_errors(
    {
        400: "Malformed input (parse_error, invalid_multipart, missing_file)",
        401: "Missing or wrong API key",
        404: "Unknown collection or item (collection_not_found, item_not_found)",
        409: "collection_exists, collection_full, collection_busy, collection_version_mismatch, cannot_reembed",
        413: "Too large (body_too_large, metadata_too_large, too_many_items, limit_exceeded)",
        415: "Unknown format or Content-Type",
        422: "Unusable input (invalid_collection_name, invalid_item_id, invalid_embedding, no_labels, ...)",
        503: "Overloaded, shutting down or model unavailable",
    }
)


@router.post("", status_code=201, response_model=CollectionInfoResponse, responses=_ERRORS)
async def create_collection(
    body: CollectionCreateRequest, collections: CollectionsDep
) -> CollectionInfoResponse:
    """Create an empty collection, pinned to the embed model version served now."""
    return await collections.create(body.name, body.description)


@router.get("", response_model=CollectionsResponse, responses=_ERRORS)
async def list_collections(collections: CollectionsDep) -> CollectionsResponse:
    return CollectionsResponse(collections=await collections.list_all())


@router.get("/{name}", response_model=CollectionInfoResponse, responses=_ERRORS)
async def get_collection(name: str, collections: CollectionsDep) -> CollectionInfoResponse:
    """Item count, labels with counts, and the pinned model version."""
    return await collections.get(name)


@router.delete("/{name}", status_code=204, responses=_ERRORS)
async def delete_collection(name: str, collections: CollectionsDep) -> Response:
    await collections.delete(name)
    return Response(status_code=204)


@router.post(
    "/{name}/items", status_code=201, response_model=ItemAnswer, responses=_ERRORS, openapi_extra=ITEM_BODY
)
async def add_item(
    name: str, items: OneItem, response: Response, collections: CollectionsDep, options: CommonOptions
) -> ItemAnswer:
    """Add a shape (multipart `file` + `id`, `label`, `metadata`; or JSON points/embedding). 201 added, 200
    replaced (same id). Answered once the item is durably stored."""
    answer, created = await collections.add(name, items, options)
    response.status_code = 201 if created else 200
    return answer


@router.post(
    "/{name}/items:batch", response_model=ItemsBatchResponse, responses=_ERRORS, openapi_extra=ITEMS_BODY
)
async def add_items(
    name: str, items: BatchItems, collections: CollectionsDep, options: CommonOptions
) -> ItemsBatchResponse:
    """Add many shapes; a bad one gets its own error, the others are stored together."""
    return await collections.add_batch(name, items, options)


@router.get("/{name}/items/{item_id}", response_model=ItemDetail, responses=_ERRORS)
async def get_item(
    name: str,
    item_id: str,
    collections: CollectionsDep,
    include_embedding: Annotated[bool, Query(description="Also return the stored embedding")] = False,
) -> ItemDetail:
    return await collections.get_item(name, item_id, include_embedding)


@router.delete("/{name}/items/{item_id}", status_code=204, responses=_ERRORS)
async def delete_item(name: str, item_id: str, collections: CollectionsDep) -> Response:
    await collections.delete_item(name, item_id)
    return Response(status_code=204)


@router.post("/{name}/search", response_model=SearchResponse, responses=_ERRORS, openapi_extra=QUERY_BODY)
async def search(
    name: str,
    asked: QueryBody,
    collections: CollectionsDep,
    options: CommonOptions,
    settings: SettingsDep,
    k: Annotated[int, Query(ge=1, description="How many matches")] = 10,
    label: Annotated[str | None, Query(max_length=128, description="Only items with this label")] = None,
) -> SearchResponse:
    """Nearest items by cosine similarity of the embeddings (query: a file, points, an embedding or a
    stored item's id)."""
    if k > settings.collection_max_k:
        raise ApiError(422, "validation_error", f"query.k: must be at most {settings.collection_max_k}")
    return await collections.search(name, asked, k, label, options)


@router.post(
    "/{name}/classify",
    response_model=CollectionClassifyResponse,
    responses=_ERRORS,
    openapi_extra=QUERY_BODY,
)
async def classify(
    name: str,
    asked: QueryBody,
    collections: CollectionsDep,
    options: CommonOptions,
    settings: SettingsDep,
    top_k: Annotated[int, Query(ge=1, description="How many labels to return")] = 5,
    method: Annotated[
        fewshot.Method,
        Query(description="logistic (measured best; default), mean (nearest class mean) or knn"),
    ] = fewshot.DEFAULT_METHOD,
) -> CollectionClassifyResponse:
    """Few-shot classification over the labels present in the collection."""
    if top_k > settings.max_top_k:
        raise ApiError(422, "validation_error", f"query.top_k: must be at most {settings.max_top_k}")
    return await collections.classify(name, asked, top_k, method, options)


@router.post("/{name}:reembed", response_model=CollectionInfoResponse, responses=_ERRORS)
async def reembed(name: str, collections: CollectionsDep, options: CommonOptions) -> CollectionInfoResponse:
    """Re-embed every item from its stored points with the served version and pin the collection to it
    (one swap: searches answer from the old version until it is done)."""
    return await collections.reembed(name, options)
