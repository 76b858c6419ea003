"""``cnb base create``: build and run images from a recipe, written to any store (docs/design.md §3 decision 8)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.builder.base import BaseRecipe, create_base
from cnbplatform.errors import UsageError
from cnbplatform.oci.address import parse_address
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.model import Descriptor
from cnbplatform.oci.store.stores import Stores
from cnbplatform.platform.context import PlatformContext

#: Variables passed on to mmdebstrap (and so to apt) for Debian recipes.
TOOL_ENV = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "TMPDIR")


@dataclass(frozen=True)
class BaseOutcome:
    build: Descriptor
    run: Descriptor
    static: Descriptor | None = None


def layer_cache(ctx: PlatformContext) -> tuple[LayerCache, Path]:
    """The layer cache and blob dir shared by every command on this machine."""
    return LayerCache(ctx.home / "layer-cache"), ctx.home / "blobs"


def create_base_images(
    ctx: PlatformContext,
    config: Path,
    build_image: str,
    run_image: str,
    *,
    extra_run_packages: Sequence[str] = (),
    mirror: str | None = None,
    static_run_image: str | None = None,
) -> BaseOutcome:
    """Build the recipe *config* (plus ``--extra-run-package``/``--mirror``) and write both images."""
    recipe = BaseRecipe.load(config).with_overrides(extra_run_packages=extra_run_packages, mirror=mirror)
    addresses = (parse_address(build_image), parse_address(run_image))  # bad addresses fail before any work
    static_address = parse_address(static_run_image) if static_run_image else None
    if static_address is not None and not (recipe.debian and recipe.debian.static_run_image):
        raise UsageError(f"--static-run-image: the recipe {config} makes no static run image (static-run-image = true)")
    cache, blobs = layer_cache(ctx)
    tool_env = {name: ctx.env[name] for name in TOOL_ENV if ctx.env.get(name)}
    images = create_base(recipe, cache, blobs, work_dir=ctx.home / "tmp", tool_env=tool_env)
    with Stores(ctx) as stores:
        for image, address in zip((images.build, images.run), addresses, strict=True):
            store, ref = stores.open(address)
            store.write(image, ref)
        if static_address is not None and images.static is not None:
            store, ref = stores.open(static_address)
            store.write(images.static, ref)
    static = images.static.descriptor if static_address is not None and images.static is not None else None
    return BaseOutcome(images.build.descriptor, images.run.descriptor, static)
