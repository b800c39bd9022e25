"""/healthz (process alive), /readyz (models loaded, backend reachable, parse workers up), /metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from server.api.deps import BackendDep, PoolDep, SettingsDep
from server.schemas import ErrorInfo, HealthResponse, ReadyResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthResponse)
async def healthz() -> HealthResponse:
    """The process is alive and answering."""
    return HealthResponse(status="ok")


@router.get("/readyz", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def readyz(request: Request, backend: BackendDep, pool: PoolDep, settings: SettingsDep) -> Any:
    """Ready when every configured model is loaded, the backend answers and a parse worker is up."""
    served = {m.info.name: m.info.version for m in backend.served()}
    missing = {
        name: backend.last_error.get(name, "not loaded") for name in settings.models if name not in served
    }
    backend_check = await backend.check()
    checks: dict[str, Any] = {
        "models": served,
        "missing_models": missing,
        # A version that failed to load is not served (an older one is, if any loads); ready all the same.
        "load_failures": {name: dict(failed) for name, failed in backend.load_failures.items() if failed},
        "backend": {"kind": backend.kind, **backend_check},
        "parse_workers": pool.alive,
        "shutting_down": bool(getattr(request.app.state, "shutting_down", False)),
    }
    ok = not missing and backend_check.get("ok") and pool.alive > 0 and not checks["shutting_down"]
    if ok:
        return ReadyResponse(status="ready", checks=checks)
    problems = [f"{name}: {why}" for name, why in missing.items()]
    if not backend_check.get("ok"):
        problems.append(f"backend {backend.kind} not ready")
    if pool.alive == 0:
        problems.append("no parse worker alive")
    if checks["shutting_down"]:
        problems.append("shutting down")
    body = ReadyResponse(
        status="not_ready", checks=checks, error=ErrorInfo(code="not_ready", message="; ".join(problems))
    )
    request.state.error_code = "not_ready"
    return JSONResponse(body.model_dump(exclude_none=True), status_code=503)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
