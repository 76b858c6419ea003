"""The ``cnb`` command. The only place an exception becomes an exit code (docs/design.md §2 ``cli/``)."""

from __future__ import annotations

from typing import Any

import typer
import typer.main

from cnbplatform import __version__
from cnbplatform.cli import base, builder, config, deploy, image, inspect_cmd, k8s, lifecycle, prune, sbom
from cnbplatform.cli.output import OPTIONS, setup_logging
from cnbplatform.cli.params import add_table_commands, conventional_help, typer_option

app = typer.Typer(
    name="cnb",
    help="Cloud Native Buildpacks without a Docker daemon: build, rebase and inspect OCI images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
add_table_commands({"": app, "image": image.app, "lifecycle": lifecycle.app})
app.add_typer(image.app, name="image")
app.add_typer(base.app, name="base")
app.add_typer(lifecycle.app, name="lifecycle")
app.add_typer(config.app, name="config")
app.add_typer(builder.builder_app, name="builder")
app.add_typer(builder.buildpack_app, name="buildpack")
app.add_typer(sbom.app, name="sbom")
app.command("inspect")(inspect_cmd.inspect)
app.command("prune")(prune.prune)
app.add_typer(k8s.app, name="k8s")
app.command("deploy")(deploy.deploy)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cnb {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: int = typer_option("cnb", "verbose"),
    quiet: bool = typer_option("cnb", "quiet"),
    version: bool = typer_option("cnb", "version", callback=_version, is_eager=True),
) -> None:
    """cnb: a daemonless Cloud Native Buildpacks platform."""
    OPTIONS.quiet = quiet
    setup_logging(verbose)


def command() -> Any:
    """The whole ``cnb`` command as typer's click group, its help in click's conventions."""
    group = typer.main.get_command(app)
    conventional_help(group)
    return group


def main() -> None:
    """The ``cnb`` entry point (kept for callers of ``cnbplatform.cli.main:main``)."""
    from cnbplatform.cli.entry import main as entry_main

    entry_main()
