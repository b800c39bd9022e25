"""`crosspoint serve`: run the gateway under uvicorn (the command owned by `server/`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI."""

    @app.command()
    def serve(
        host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port")] = 8000,
        backend: Annotated[
            str | None, typer.Option(help="onnxruntime (in-process, the default) or triton")
        ] = None,
        triton_url: Annotated[
            str | None, typer.Option(help="Triton gRPC host:port (with --backend triton)")
        ] = None,
        model_repository: Annotated[
            Path | None, typer.Option(help="Model repository (default: ./model_repository of the checkout)")
        ] = None,
        workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes")] = 1,
        parse_workers: Annotated[
            int | None, typer.Option(min=1, help="Upload parse processes per worker")
        ] = None,
        api_key: Annotated[
            str | None, typer.Option(help="Require this key on /v1 (X-API-Key or Bearer)")
        ] = None,
        log_level: Annotated[str | None, typer.Option(help="debug, info, warning, error")] = None,
    ) -> None:
        """Serve the HTTP API (embeddings, classes, part labels) on HOST:PORT."""
        import uvicorn

        from server.core.config import Settings
        from server.core.logging import configure_logging

        # Settings travel as CROSSPOINT_* variables so every uvicorn worker process reads the same ones;
        # options not given leave the environment (and so the Settings defaults) alone.
        overrides = {
            "BACKEND": backend,
            "TRITON_URL": triton_url,
            "MODEL_REPOSITORY": str(model_repository.resolve()) if model_repository else None,
            "PARSE_WORKERS": str(parse_workers) if parse_workers else None,
            "API_KEY": api_key,
            "LOG_LEVEL": log_level.upper() if log_level else None,
        }
        for key, value in overrides.items():
            if value is not None:
                os.environ[f"CROSSPOINT_{key}"] = value
        try:
            settings = Settings()
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        configure_logging(settings.log_level, settings.log_format)
        uvicorn.run(
            "server.app:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=settings.graceful_timeout_s,
            limit_concurrency=None,
        )
