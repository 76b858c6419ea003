"""The ``cnb`` command. The only place an exception becomes an exit code (DESIGN.md §2 ``cli/``)."""

from __future__ import annotations

import typer

from cnbplatform import __version__
from cnbplatform.cli import (
    base,
    build,
    builder,
    config,
    deploy,
    image,
    inspect_cmd,
    k8s,
    lifecycle,
    prune,
    rebase,
    resolve,
    sbom,
)
from cnbplatform.cli.output import OPTIONS, setup_logging
from cnbplatform.cli.run import run

app = typer.Typer(
    name="cnb",
    help="Cloud Native Buildpacks without a Docker daemon: build, rebase and inspect OCI images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(image.app, name="image")
app.add_typer(base.app, name="base")
app.add_typer(lifecycle.app, name="lifecycle")
app.command("build")(build.build)
app.add_typer(config.app, name="config")
app.add_typer(builder.builder_app, name="builder")
app.add_typer(builder.buildpack_app, name="buildpack")
app.command("rebase")(rebase.rebase)
app.add_typer(sbom.app, name="sbom")
app.command("inspect")(inspect_cmd.inspect)
app.command("run")(run)
app.command("prune")(prune.prune)
app.command("resolve")(resolve.resolve)
app.add_typer(k8s.app, name="k8s")
app.command("deploy")(deploy.deploy)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cnb {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="Show causes and HTTP exchanges."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print version."),
) -> None:
    """cnb: a daemonless Cloud Native Buildpacks platform."""
    OPTIONS.quiet = quiet
    setup_logging(verbose)


def main() -> None:
    """The ``cnb`` entry point (kept for callers of ``cnbplatform.cli.main:main``)."""
    from cnbplatform.cli.entry import main as entry_main

    entry_main()
