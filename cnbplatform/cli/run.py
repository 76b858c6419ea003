"""``cnb run IMAGE [--process TYPE] [-- ARGS]``: run an image without a daemon."""

from __future__ import annotations

import typer

from cnbplatform.platform.context import context_from_env


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
    if network not in ("host", "none"):
        raise typer.BadParameter("--network must be host or none")
    extra = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--env {item!r}: expected KEY=VALUE")
        extra[key] = value
    from cnbplatform.platform.run import RunOptions, run_image

    ctx = context_from_env(insecure_registries=insecure_registry)
    code = run_image(
        ctx, RunOptions(image=image, process=process, args=args or (), env=extra, network=network == "host")
    )
    raise typer.Exit(code)
