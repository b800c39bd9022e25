"""`crosspoint` commands owned by `clients/`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root CLI."""
    # Gateway queries (embed/classify/segment) and batch inference live in their own modules.
    from clients.batch.cli import register_batch_commands
    from clients.commands import register_query_commands

    register_query_commands(app)
    register_batch_commands(app)
    from clients.collections_cli import app as collections_app

    app.add_typer(collections_app, name="collections")
