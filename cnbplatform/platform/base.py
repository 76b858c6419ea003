"""``cnb base create``: build and run images from a recipe, written to any store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnbplatform.builder.base import BaseRecipe, create_base
from cnbplatform.oci.address import parse_address
from cnbplatform.oci.layercache import LayerCache
from cnbplatform.oci.model import Descriptor
from cnbplatform.oci.stores import Stores
from cnbplatform.platform.context import PlatformContext


@dataclass(frozen=True)
class BaseOutcome:
    build: Descriptor
    run: Descriptor


def layer_cache(ctx: PlatformContext) -> tuple[LayerCache, Path]:
    """The layer cache and blob dir shared by every command on this machine."""
    return LayerCache(ctx.home / "layer-cache"), ctx.home / "blobs"


def create_base_images(ctx: PlatformContext, config: Path, build_image: str, run_image: str) -> BaseOutcome:
    recipe = BaseRecipe.load(config)
    cache, blobs = layer_cache(ctx)
    images = create_base(recipe, cache, blobs)
    with Stores(ctx.store_options()) as stores:
        for image, where in ((images.build, build_image), (images.run, run_image)):
            store, ref = stores.open(parse_address(where))
            store.write(image, ref)
    return BaseOutcome(images.build.descriptor, images.run.descriptor)
