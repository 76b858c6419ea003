"""``cnb run IMAGE [--process TYPE] [-- ARGS]``: run an image without a daemon."""

from __future__ import annotations

import typer

from cnbplatform.cli.commands import run_command


def run(
    image: str = typer.Argument(
        ..., help="The image: local name, oci:DIR:TAG, registry reference or docker-daemon:REF."
    ),
    args: list[str] = typer.Argument(None, help="Arguments after -- replace the image's CMD / process args."),
    process: str | None = typer.Option(None, "--process", "-p", help="Run /cnb/process/TYPE instead of the default."),
    env: list[str] = typer.Option([], "--env", "-e", help="KEY=VALUE added to the image's environment."),
    network: str = typer.Option("host", "--network", help="host (share this machine's network) or none."),
    insecure_registry: list[str] = typer.Option([], "--insecure-registry", help="Registry host over plain HTTP."),
) -> None:
    """Run IMAGE in a bwrap sandbox as the image's user (unpacked once per digest). Ctrl-C stops it."""
    code = run_command(
        image=image, args=args, process=process, env=env, network=network, insecure_registry=insecure_registry
    )
    raise typer.Exit(code)
