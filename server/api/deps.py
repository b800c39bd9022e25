"""Dependencies the routes declare: app state, the API key check and the query options."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from server.backends.base import InferenceBackend
from server.core.config import Settings
from server.errors import ApiError
from server.services.collections import CollectionService
from server.services.inference import (
    ClassifyOptions,
    EmbedOptions,
    InferenceService,
    QueryOptions,
    SegmentOptions,
)
from server.services.workers import ParsePool


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_service(request: Request) -> InferenceService:
    service: InferenceService = request.app.state.service
    return service


def get_backend(request: Request) -> InferenceBackend:
    backend: InferenceBackend = request.app.state.backend
    return backend


def get_pool(request: Request) -> ParsePool:
    pool: ParsePool = request.app.state.pool
    return pool


def get_collections(request: Request) -> CollectionService:
    collections: CollectionService = request.app.state.collections
    return collections


SettingsDep = Annotated[Settings, Depends(get_settings)]
CollectionsDep = Annotated[CollectionService, Depends(get_collections)]
ServiceDep = Annotated[InferenceService, Depends(get_service)]
BackendDep = Annotated[InferenceBackend, Depends(get_backend)]
PoolDep = Annotated[ParsePool, Depends(get_pool)]


def require_api_key(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(description="The API key (or use Authorization: Bearer)")] = None,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    """When `api_key` is set, every /v1 request must carry it (health and metrics stay open)."""
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
    offered = x_api_key
    if offered is None and authorization and authorization.lower().startswith("bearer "):
        offered = authorization[7:].strip()
    if offered is None or not hmac.compare_digest(offered.encode(), expected):
        raise ApiError(
            401,
            "unauthorized",
            "a valid API key is required (X-API-Key header or Authorization: Bearer)",
            headers={"WWW-Authenticate": "Bearer"},
        )


UpAxis = Annotated[
    str,
    Query(
        pattern=r"^([+-]?[xyzXYZ]|auto)$",
        description="Up axis of the INPUT (x, y, z, optionally signed); it is rotated to the model's y-up frame. "
        "auto: all 6 axis-aligned up directions run as one batch (6 model rows) and the most in-distribution one "
        "is kept; the receipt names it and gives up_axis_scores",
    ),
]
NumPoints = Annotated[
    int | None, Query(ge=1, description="Points to sample (within the model's min/max; default: the model's)")
]
Seed = Annotated[
    int, Query(ge=0, le=2**32 - 1, description="Sampling seed: same input + seed -> same answer")
]
Format = Annotated[
    str | None,
    Query(
        max_length=16,
        description="File format when the name has no extension or the body is raw (obj, stl, ply, off, glb, gltf, "
        "pcd, xyz, npy, ...)",
    ),
]


def query_options(
    up_axis: UpAxis = "y", num_points: NumPoints = None, seed: Seed = 0, format: Format = None
) -> QueryOptions:
    return QueryOptions(up_axis=up_axis, num_points=num_points, seed=seed, format=format)


CommonOptions = Annotated[QueryOptions, Depends(query_options)]


def embed_options(
    common: CommonOptions,
    include_projection: Annotated[bool, Query(description="Also return the 256-d projection")] = False,
) -> EmbedOptions:
    return EmbedOptions(**vars(common), include_projection=include_projection)


def classify_options(
    common: CommonOptions,
    settings: SettingsDep,
    top_k: Annotated[int, Query(ge=1, description="How many classes to return")] = 5,
) -> ClassifyOptions:
    if top_k > settings.max_top_k:
        raise ApiError(422, "validation_error", f"query.top_k: must be at most {settings.max_top_k}")
    return ClassifyOptions(**vars(common), top_k=top_k)


def segment_options(
    common: CommonOptions,
    category: Annotated[
        str | None,
        Query(max_length=64, description="ShapeNetPart category (e.g. Chair); predicted when absent"),
    ] = None,
    include_vertex_labels: Annotated[
        bool, Query(description="Also label every original vertex/point (nearest sampled point)")
    ] = True,
) -> SegmentOptions:
    return SegmentOptions(**vars(common), category=category, include_vertex_labels=include_vertex_labels)


EmbedOptionsDep = Annotated[EmbedOptions, Depends(embed_options)]
ClassifyOptionsDep = Annotated[ClassifyOptions, Depends(classify_options)]
SegmentOptionsDep = Annotated[SegmentOptions, Depends(segment_options)]
