"""`crosspoint triton up|down|status`: the local tritonserver (`crosspoint.triton.local`) from the shell."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="A local tritonserver (nvidia-pytriton's binary, python shim backends) for tests and local use.",
    no_args_is_help=True,
)


@app.command("up")
def triton_up(
    model_repository: Path = typer.Option(Path("model_repository"), help="Triton model repository."),
    http_port: int = typer.Option(8000, help="HTTP port on 127.0.0.1 (the gateway also defaults to 8000)."),
    grpc_port: int = typer.Option(8001, help="gRPC port on 127.0.0.1."),
    metrics_port: int = typer.Option(8002, help="Prometheus metrics port on 127.0.0.1."),
    timeout: float = typer.Option(120.0, help="Seconds to wait for every model to load."),
    poll_seconds: int = typer.Option(1, help="How often Triton looks for new model versions."),
) -> None:
    """Start Triton on the repository in the foreground until Ctrl-C (or `crosspoint triton down`)."""
    from crosspoint.triton.local import serve_foreground
    from crosspoint.triton.server import TritonStartError

    try:
        code = serve_foreground(
            model_repository, http_port, grpc_port, metrics_port, timeout, poll_seconds, typer.echo
        )
    except TritonStartError as error:
        typer.echo(f"Triton did not start: {error}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@app.command("down")
def triton_down(
    http_port: int = typer.Option(8000, help="HTTP port of the `crosspoint triton up` to stop."),
) -> None:
    """Stop the `crosspoint triton up` serving on that HTTP port."""
    from crosspoint.triton.local import stop_foreground

    try:
        typer.echo(stop_foreground(http_port))
    except RuntimeError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(1) from None


@app.command("status")
def triton_status(
    url: str = typer.Option("127.0.0.1:8000", help="Triton HTTP endpoint, host:port."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Is Triton live and ready, and which models has it loaded? Exit code 1 when not ready."""
    import json

    from crosspoint.triton.local import server_status

    status = server_status(url)
    if as_json:
        typer.echo(json.dumps(status, indent=2))
    else:
        typer.echo(
            f"{status['url']}: live={status['live']} ready={status['ready']} {status.get('error', '')}"
        )
        for model in status["models"]:
            typer.echo(
                f"  {model['name']:<16} v{model['version'] or '-':<4} {model['state']:<12} {model['reason']}"
            )
    if not status["ready"]:
        raise typer.Exit(1)
