"""The `crosspoint` command line.

Each area owns a typer sub-app in its own module; heavy imports (torch, onnxruntime, uvicorn) happen
inside the commands, so `crosspoint --help` stays fast and the serving image needs no torch.
"""

from __future__ import annotations

import typer

from clients.cli import register as register_client_commands
from crosspoint.eval.cli import app as eval_app
from crosspoint.train.cli import app as train_app
from crosspoint.triton.cli import app as triton_app
from export.cli import register as register_export_commands
from server.cli import register as register_server_commands

app = typer.Typer(
    name="crosspoint",
    help="CrossPoint point-cloud embeddings: train, evaluate, export, serve and query.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(
    train_app, name="train", help="Pretrain CrossPoint, fit the class head, fine-tune part segmentation."
)
app.add_typer(eval_app, name="eval", help="Linear-SVM, few-shot and part-segmentation evaluation.")
register_export_commands(app)
register_server_commands(app)
register_client_commands(app)
app.add_typer(triton_app, name="triton")


@app.command("models")
def list_models_command() -> None:
    """List the registered networks with their parameter counts and default configs."""
    import dataclasses

    from rich.console import Console
    from rich.table import Table

    from crosspoint.models import count_parameters, create_model, list_models

    table = Table("model", "parameters", "without heads", "config")
    for name in list_models():
        model = create_model(name)
        heads = sum(count_parameters(getattr(model, h)) for h in ("projection", "head") if hasattr(model, h))
        table.add_row(
            name,
            f"{count_parameters(model):,}",
            f"{count_parameters(model) - heads:,}",
            str(dataclasses.asdict(model.config)),  # type: ignore[call-overload]
        )
    Console().print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
