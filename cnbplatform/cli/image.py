"""``cnb image``: copy, list, inspect, remove and tag images in any store."""

from __future__ import annotations

import json

import typer

from cnbplatform.cli.options import ADDRESS_HELP
from cnbplatform.cli.output import OPTIONS, out_console
from cnbplatform.cli.params import typer_option
from cnbplatform.cli.render import image_details_json, print_image_details, print_listing
from cnbplatform.platform import images
from cnbplatform.platform.context import context_from_env

app = typer.Typer(
    rich_markup_mode=None,
    help="Copy, list, inspect, remove and tag images (local store, oci:DIR, registry, engine).",
    no_args_is_help=True,
)

Insecure = typer_option("image ls", "insecure_registry")


@app.command("ls")
def ls(
    where: str | None = typer.Argument(None, help="oci:DIR, a registry repository, or docker-daemon:; default local"),
    as_json: bool = typer_option("image ls", "as_json"),
    insecure_registry: list[str] = Insecure,
) -> None:
    """List images in the local store (or another store)."""
    ctx = context_from_env(insecure_registries=insecure_registry)
    print_listing(images.list_images(ctx, where), as_json)


@app.command("inspect")
def inspect(
    image: str = typer.Argument(..., help=ADDRESS_HELP),
    platform: str | None = typer_option("image inspect", "platform"),
    as_json: bool = typer_option("image inspect", "as_json"),
    insecure_registry: list[str] = Insecure,
) -> None:
    """Show an image's digest, platform, config and layers."""
    ctx = context_from_env(insecure_registries=insecure_registry)
    details = images.inspect_image(ctx, image, platform=platform)
    if as_json:
        typer.echo(json.dumps(image_details_json(details), indent=2))
    else:
        print_image_details(details)


@app.command("rm")
def rm(
    image: list[str] = typer.Argument(..., help=ADDRESS_HELP),
    insecure_registry: list[str] = Insecure,
) -> None:
    """Remove images (tags) from their store."""
    ctx = context_from_env(insecure_registries=insecure_registry)
    for item in image:
        images.remove_image(ctx, item)
        if not OPTIONS.quiet:
            out_console.print(f"removed {item}")


@app.command("tag")
def tag(
    image: str = typer.Argument(..., help=ADDRESS_HELP),
    new_name: str = typer.Argument(..., help="The new name, in the same store."),
    insecure_registry: list[str] = Insecure,
) -> None:
    """Give IMAGE another name in the same store."""
    ctx = context_from_env(insecure_registries=insecure_registry)
    name = images.tag_image(ctx, image, new_name)
    if not OPTIONS.quiet:
        out_console.print(f"tagged {name}")
