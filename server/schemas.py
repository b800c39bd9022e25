"""Typed request and response bodies of the HTTP API (what OpenAPI documents)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, model_serializer
from pydantic.functional_serializers import SerializerFunctionWrapHandler


class ErrorInfo(BaseModel):
    code: str = Field(description="Stable machine-readable reason, e.g. parse_error, body_too_large")
    message: str = Field(description="What was wrong, in plain words")
    details: Any | None = Field(
        default=None, exclude_if=lambda v: v is None, description="Extra data, when any"
    )


class ErrorResponse(BaseModel):
    error: ErrorInfo


# --- requests (documentation of the JSON bodies; the bytes are parsed in the sandboxed worker) ---


class PointsRequest(BaseModel):
    points: list[list[float]] = Field(description="The point cloud, [[x, y, z], ...]")


class BatchPointsRequest(BaseModel):
    items: list[PointsRequest]


# --- answers ---


class ModelAnswer(BaseModel):
    model: str = Field(description="Model name in the repository (embed, classify, segment)")
    version: str = Field(description="The model version that produced this answer")
    receipt: dict[str, Any] = Field(description="Preprocessing receipt (crosspoint.geometry)")


class TrustFields(BaseModel):
    ood_score: float | None = Field(
        default=None,
        description="Out-of-distribution score of the embedding: squared Mahalanobis distance to the nearest "
        "ModelNet40 class mean / dimension (about 1 for training shapes; higher = less like the training data). "
        "null only when the served version has no calibration.json",
    )
    in_distribution: bool | None = Field(
        default=None,
        description="ood_score <= the version's threshold (chosen so 95% of validation shapes pass); null as "
        "ood_score",
    )


class EmbedResponse(TrustFields, ModelAnswer):
    embedding: list[float] = Field(description="The 2048-d CrossPoint embedding")
    projection: list[float] | None = Field(
        default=None, description="The 256-d projection (include_projection=true)"
    )

    @model_serializer(mode="wrap")
    def _drop_absent_projection(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("projection") is None:
            data.pop("projection", None)
        return data


AnswerT = TypeVar("AnswerT", bound=ModelAnswer)


class Prediction(BaseModel):
    label: str
    index: int
    probability: float


class ClassifyResponse(TrustFields, ModelAnswer):
    predictions: list[Prediction] = Field(
        description="Top-k classes, most probable first (softmax of the logits / the version's calibrated "
        "temperature)"
    )


class SegmentResponse(ModelAnswer):
    point_labels: list[int] = Field(description="Per sampled point: index into part_names")
    points: list[list[float]] = Field(description="The sampled points [N, 3] in the model frame")
    vertex_labels: list[int] | None = Field(
        description="Per original vertex/point: index into part_names (-1: a non-finite vertex); null when "
        "not requested or over max_vertex_labels"
    )
    part_names: list[str] = Field(description="The category's parts")
    part_ids: list[int] = Field(description="ShapeNetPart global part id of each entry of part_names")
    category: str
    category_source: Literal["given", "predicted"]
    category_scores: dict[str, float] | None = Field(
        default=None,
        description="When predicted: mean log-likelihood of the best labelling under each category",
    )


class BatchItem(BaseModel, Generic[AnswerT]):
    index: int = Field(description="Position of the input in the request")
    name: str | None = Field(default=None, description="The uploaded file name, when there was one")
    status: int = Field(description="The HTTP status this item would have had on its own")
    result: AnswerT | None = None
    error: ErrorInfo | None = None


class BatchResponse(BaseModel, Generic[AnswerT]):
    items: list[BatchItem[AnswerT]] = Field(
        description="One entry per input, in order; failed inputs carry `error`"
    )
    model: str
    version: str


# --- operations ---


class InputSettings(BaseModel):
    num_points: int = Field(description="Points sampled when the request does not say")
    min_points: int
    max_points: int
    k: int = Field(description="kNN neighbours inside the model")
    up_axis: str = Field(description="Up axis of the model frame")
    normalization: str | None = None


class CalibrationCard(BaseModel):
    temperature: float | None = Field(description="Softmax temperature of the logits (classify)")
    ood_method: str = Field(description="How ood_score is computed from the embedding")
    ood_threshold: float = Field(description="in_distribution = ood_score <= this")


class VersionStatus(BaseModel):
    version: str
    status: Literal["serving", "available", "failed"] = Field(
        description="serving; available (present, not loaded); failed (could not be loaded: not used)"
    )
    error: str | None = Field(default=None, description="Why a failed version could not be loaded")


class ModelCard(BaseModel):
    name: str
    version: str = Field(description="The version being served")
    versions: list[str] = Field(description="Complete versions present in the repository")
    version_status: list[VersionStatus] = Field(
        default_factory=list, description="Each version present and whether it serves, could, or failed"
    )
    backend: str
    precision: Literal["fp32", "bf16", "int8"] = Field(
        default="fp32",
        description="Precision this model runs at (fp32 unless its precision.json passed a lower one "
        "within the budget and CROSSPOINT_PRECISION is not fp32)",
    )
    runtime: str = Field(default="onnxruntime", description="onnxruntime | openvino | triton")
    inputs: InputSettings
    outputs: list[str]
    class_names: list[str] | None = None
    category_names: list[str] | None = None
    part_names: list[str] | None = None
    category_parts: dict[str, list[int]] | None = None
    checkpoint_sha256: str | None = None
    calibration: CalibrationCard | None = Field(
        default=None,
        description="The version's calibration.json (null: no ood_score, no up_axis=auto for embed)",
    )


class ModelsResponse(BaseModel):
    models: list[ModelCard]


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Any]
    error: ErrorInfo | None = Field(default=None, exclude_if=lambda v: v is None)


# --- collections ---


class CollectionCreateRequest(BaseModel):
    name: str = Field(
        description="1-63 characters: lower-case letters, digits, '_' and '-'", min_length=1, max_length=63
    )
    description: str = Field(default="", max_length=1000)


class CollectionInfoResponse(BaseModel):
    name: str
    description: str
    count: int = Field(description="Items in the collection")
    labels: dict[str, int] = Field(description="Each label with its item count")
    model: str = Field(description="The model whose embeddings the collection holds")
    version: str = Field(description="The model version the collection is pinned to")
    served_version: str | None = Field(
        description="The version the gateway serves now; when it differs, run `crosspoint collections reembed`"
    )
    dim: int = Field(description="Embedding size")
    created_at: float = Field(description="Unix time")


class CollectionsResponse(BaseModel):
    collections: list[CollectionInfoResponse]


class CollectionItemRequest(BaseModel):
    id: str = Field(description="Item id (the same id again replaces the item)", max_length=128)
    points: list[list[float]] | None = Field(default=None, description="The shape as [[x, y, z], ...]")
    embedding: list[float] | None = Field(
        default=None, description="Or an embedding of the collection's version"
    )
    version: str | None = Field(
        default=None, description="The model version of `embedding` (checked when given)"
    )
    label: str | None = Field(default=None, max_length=128)
    metadata: dict[str, Any] | None = Field(default=None, description="Any JSON object (size-limited)")


class CollectionItemsBatchRequest(BaseModel):
    items: list[CollectionItemRequest]


class CollectionQueryRequest(BaseModel):
    id: str | None = Field(default=None, description="A stored item (it is left out of its own matches)")
    points: list[list[float]] | None = None
    embedding: list[float] | None = None


class ItemAnswer(BaseModel):
    id: str
    label: str | None
    metadata: dict[str, Any] | None
    created: bool = Field(description="false: an item with this id was replaced")
    model: str
    version: str = Field(description="The model version that embedded the item (the collection's)")
    receipt: dict[str, Any] | None = Field(description="Preprocessing receipt (null for a given embedding)")


class ItemDetail(BaseModel):
    id: str
    label: str | None
    metadata: dict[str, Any] | None
    model: str
    version: str
    receipt: dict[str, Any] | None
    num_points: int | None = Field(
        description="Prepared points kept for re-embedding (null: added as embedding)"
    )
    updated_at: float
    embedding: list[float] | None = Field(default=None, exclude_if=lambda v: v is None)


class ItemsBatchEntry(BaseModel):
    index: int
    id: str | None
    name: str | None = Field(default=None, description="The uploaded file name, when there was one")
    status: int = Field(description="201 added, 200 replaced, or the error's HTTP status")
    result: ItemAnswer | None = None
    error: ErrorInfo | None = None


class ItemsBatchResponse(BaseModel):
    items: list[ItemsBatchEntry] = Field(
        description="One entry per input, in order; all successes commit together"
    )
    model: str
    version: str


class MatchAnswer(BaseModel):
    id: str
    score: float = Field(description="Cosine similarity of the embeddings (1 = same direction)")
    label: str | None
    metadata: dict[str, Any] | None


class SearchResponse(BaseModel):
    matches: list[MatchAnswer] = Field(description="Nearest items, most similar first")
    collection: str
    model: str
    version: str = Field(description="The collection's model version (the query was embedded with it)")
    receipt: dict[str, Any] | None = Field(default=None, description="Receipt of an uploaded query shape")


class CollectionClassifyResponse(BaseModel):
    predictions: list[Prediction] = Field(description="Top-k labels of the collection, most probable first")
    method: str = Field(description="Few-shot method: mean (nearest class mean), knn or logistic")
    collection: str
    model: str
    version: str
    receipt: dict[str, Any] | None = None
