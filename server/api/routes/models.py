"""GET /v1/models: what is served, which versions exist, and the input settings of each model."""

from __future__ import annotations

from fastapi import APIRouter

from server.api.deps import BackendDep, ServiceDep
from server.backends.base import MODEL_OUTPUTS, InferenceBackend, ServedModel
from server.errors import ApiError
from server.schemas import (
    CalibrationCard,
    ErrorResponse,
    InputSettings,
    ModelCard,
    ModelsResponse,
    VersionStatus,
)
from server.services.inference import InferenceService

router = APIRouter(prefix="/v1", tags=["models"])


def model_card(backend: InferenceBackend, served: ServedModel, service: InferenceService) -> ModelCard:
    info = served.info
    trust = service.trust(info) if info.name in ("embed", "classify") else None
    normalization = info.metadata.normalization
    return ModelCard(
        name=info.name,
        version=info.version,
        versions=backend.versions(info.name),
        version_status=[VersionStatus.model_validate(state) for state in backend.version_states(info.name)],
        backend=backend.kind,
        precision=getattr(served, "precision", "fp32"),
        runtime=getattr(served, "runtime", backend.kind),
        inputs=InputSettings(
            num_points=info.num_points,
            min_points=info.min_points,
            max_points=info.max_points,
            k=info.k,
            up_axis=info.up_axis,
            normalization=None if normalization is None else str(normalization),
        ),
        outputs=list(getattr(served, "outputs", MODEL_OUTPUTS[info.name])),
        class_names=info.names("class_names") or None,
        category_names=info.names("category_names") or None,
        part_names=info.names("part_names") or None,
        category_parts=info.category_parts or None,
        checkpoint_sha256=info.checkpoint_sha256,
        calibration=None
        if trust is None
        else CalibrationCard(
            temperature=trust.temperature,
            ood_method=str(trust.document["ood"]["method"]),
            ood_threshold=trust.threshold,
        ),
    )


@router.get("/models", response_model=ModelsResponse)
async def list_models(backend: BackendDep, service: ServiceDep) -> ModelsResponse:
    """Every model being served, with its version, class/part names and input settings."""
    return ModelsResponse(models=[model_card(backend, served, service) for served in backend.served()])


@router.get("/models/{name}", response_model=ModelCard, responses={404: {"model": ErrorResponse}})
async def get_model(name: str, backend: BackendDep, service: ServiceDep) -> ModelCard:
    """One model's card."""
    if name not in MODEL_OUTPUTS:
        raise ApiError(404, "not_found", f"no model named {name!r}; models: {', '.join(MODEL_OUTPUTS)}")
    return model_card(backend, backend.model(name), service)
