"""The FastAPI app: `create_app(settings)`; `crosspoint serve` runs it under uvicorn.

crosspoint serve --host 127.0.0.1 --port 8000            # ONNX Runtime in-process
crosspoint serve --backend triton --triton-url host:8001  # a Triton server on model_repository/
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from server.api.deps import require_api_key
from server.api.errors import install_error_handlers
from server.api.middleware import BodyLimitMiddleware, RequestContextMiddleware
from server.api.routes import collections, docs, health, inference, models
from server.backends.base import InferenceBackend
from server.core.config import Settings
from server.core.logging import configure_logging
from server.core.memory import child_malloc_env, fix_mmap_threshold
from server.metrics import Metrics
from server.services.collection_store import CollectionStore
from server.services.collections import CollectionService
from server.services.inference import InferenceService
from server.services.parsing import UploadParser
from server.services.workers import ParsePool

logger = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"


def make_backend(settings: Settings, metrics: Metrics) -> InferenceBackend:
    if settings.backend == "triton":
        from server.backends.triton import TritonBackend

        return TritonBackend(settings, metrics)
    from server.backends.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(settings, metrics)


async def _poll_for_new_versions(backend: InferenceBackend, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await backend.reload()
        except Exception:
            logger.exception("model reload check failed")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    metrics: Metrics = app.state.metrics
    pool = ParsePool(
        settings.parse_workers,
        memory_mb=settings.parse_memory_mb,
        max_tasks_per_worker=settings.parse_max_tasks_per_worker,
        start_timeout_s=settings.parse_start_timeout_s,
        max_waiting=settings.parse_max_waiting,
        metrics=metrics,
        worker_env=child_malloc_env(settings.malloc_mmap_threshold_bytes),
    )
    backend = make_backend(settings, metrics)
    await pool.start()
    try:
        await backend.start()
    except BaseException:
        await pool.stop()
        raise
    app.state.pool, app.state.backend = pool, backend
    app.state.service = InferenceService(backend, UploadParser(pool, settings), settings)
    store = CollectionStore(settings.data_dir, snapshot_every=settings.collection_snapshot_every)
    app.state.collections = CollectionService(store, app.state.service, settings)
    app.state.shutting_down = False
    poller = (
        asyncio.create_task(_poll_for_new_versions(backend, settings.reload_interval_s))
        if settings.reload_interval_s
        else None
    )
    logger.info(
        "gateway ready",
        extra={"fields": {"backend": backend.kind, "models": [m.info.name for m in backend.served()]}},
    )
    try:
        yield
    finally:
        # uvicorn has already finished (or timed out) the in-flight requests; drain what is left.
        app.state.shutting_down = True
        if poller is not None:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        await backend.stop()
        await pool.stop()
        store.close()  # writes each changed collection's index snapshot
        logger.info("gateway stopped")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    fix_mmap_threshold(settings.malloc_mmap_threshold_bytes)
    app = FastAPI(
        title="CrossPoint gateway",
        version="1",
        summary="Point-cloud embeddings, classes and part labels from the CrossPoint models.",
        lifespan=lifespan,
        docs_url=None,  # served by server.api.routes.docs from local files (FastAPI's loads a CDN)
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics = Metrics()
    install_error_handlers(app)
    for router in (inference.router, models.router, collections.router):
        app.include_router(router, dependencies=[Depends(require_api_key)])
    app.include_router(health.router)
    app.include_router(docs.router)
    if (STATIC / "index.html").is_file():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")
        app.add_api_route("/", lambda: FileResponse(STATIC / "index.html"), include_in_schema=False)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app
