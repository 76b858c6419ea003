"""``cnb base``: build and run images from a recipe in ``builders/``."""

from __future__ import annotations

from pathlib import Path

import typer

from cnbplatform.cli.output import OPTIONS, out_console
from cnbplatform.cli.params import typer_option
from cnbplatform.platform.context import context_from_env

app = typer.Typer(rich_markup_mode=None, help="Base (build and run) images.", no_args_is_help=True)


@app.command("create")
def create(
    config: Path = typer_option("base create", "config"),
    build_image: str = typer_option("base create", "build_image"),
    run_image: str = typer_option("base create", "run_image"),
    static_run_image: str | None = typer_option("base create", "static_run_image"),
    extra_run_package: list[str] = typer_option("base create", "extra_run_package"),
    mirror: str | None = typer_option("base create", "mirror"),
    insecure_registry: list[str] = typer_option("base create", "insecure_registry"),
) -> None:
    """Create a build image and a run image from a base recipe."""
    from cnbplatform.platform.base import create_base_images

    ctx = context_from_env(insecure_registries=insecure_registry)
    outcome = create_base_images(
        ctx,
        config,
        build_image,
        run_image,
        extra_run_packages=extra_run_package,
        mirror=mirror,
        static_run_image=static_run_image,
    )
    if not OPTIONS.quiet:
        out_console.print(f"build image {build_image} {outcome.build.digest}")
        out_console.print(f"run image   {run_image} {outcome.run.digest}")
        if outcome.static is not None:
            out_console.print(f"static run image {static_run_image} {outcome.static.digest}")
