"""Image commands of the platform: copy, list, inspect, remove, tag, across every store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cnbplatform.errors import UsageError
from cnbplatform.oci.address import ImageAddress, StoreKind, parse_address, parse_destination
from cnbplatform.oci.image import Artifact, Image, as_image, is_index, resolve_platform
from cnbplatform.oci.model import Descriptor, Platform
from cnbplatform.oci.reference import parse_reference
from cnbplatform.oci.store.protocol import Progress, StoredRef, WriteResult
from cnbplatform.oci.store.stores import Stores
from cnbplatform.platform.context import PlatformContext


@dataclass(frozen=True)
class CopyOutcome:
    source: ImageAddress
    destination: ImageAddress
    descriptor: Descriptor
    result: WriteResult


def copy_image(
    ctx: PlatformContext,
    source: str,
    destination: str,
    *,
    platform: str | None = None,
    progress: Progress | None = None,
) -> CopyOutcome:
    """Copy an image or index between any two stores; with *platform*, only the matching image."""
    src_addr, dst_addr = parse_address(source), parse_destination(destination)
    wanted = Platform.parse(platform) if platform else None
    with Stores(ctx) as stores:
        src_store, src_ref = stores.open(src_addr)
        dst_store, dst_ref = stores.open(dst_addr)
        artifact = resolve_platform(src_store.read(src_ref), wanted)
        if dst_addr.kind is StoreKind.LAYOUT and dst_ref is None and src_addr.kind is not StoreKind.LAYOUT:
            dst_ref = src_addr.reference.familiar() if src_addr.reference else None
        result = dst_store.write(artifact, dst_ref, progress)
    return CopyOutcome(src_addr, dst_addr, artifact.descriptor, result)


def list_images(ctx: PlatformContext, where: str | None = None) -> Sequence[StoredRef]:
    with Stores(ctx) as stores:
        if where is None:
            return stores.local().list()
        address = parse_address(where)
        store, _ = stores.open(address)
        return store.list()


@dataclass(frozen=True)
class ImageDetails:
    """What ``cnb image inspect`` shows: the artifact read (an image, or an index and maybe its child)."""

    address: ImageAddress
    descriptor: Descriptor
    index: tuple[Descriptor, ...] | None
    image: Image | None


def inspect_image(ctx: PlatformContext, where: str, *, platform: str | None = None) -> ImageDetails:
    address = parse_address(where)
    with Stores(ctx) as stores:
        store, ref = stores.open(address)
        artifact: Artifact = store.read(ref)
        top = artifact.descriptor
        index = artifact.index.manifests if is_index(artifact) else None
        if platform:
            artifact = resolve_platform(artifact, Platform.parse(platform))
        image = None if is_index(artifact) else as_image(artifact)
        if image is not None:
            _ = image.config  # read while the store is open
        return ImageDetails(address, top, index, image)


def remove_image(ctx: PlatformContext, where: str) -> None:
    address = parse_address(where)
    with Stores(ctx) as stores:
        store, ref = stores.open(address)
        if ref is None:
            raise UsageError(f"{where}: name the tag to remove")
        store.delete(ref)


def tag_image(ctx: PlatformContext, where: str, new_name: str) -> str:
    """Add *new_name* to the image at *where*, in the same store; returns the new name as stored."""
    address = parse_address(where)
    with Stores(ctx) as stores:
        store, ref = stores.open(address)
        if ref is None:
            raise UsageError(f"{where}: name the image to tag")
        if address.kind is StoreKind.REGISTRY:
            assert address.reference is not None
            target = new_name
            if ":" in new_name or "/" in new_name:
                new = parse_reference(new_name)
                if new.name != address.reference.name or new.tag is None:
                    raise UsageError(f"{new_name}: a registry tag must stay in {address.reference.name}")
                target = new.tag
            store.tag(ref, target)
            return str(address.reference.with_tag(target))
        if address.kind is StoreKind.DAEMON:
            new_name = parse_reference(new_name).familiar()
        store.tag(ref, new_name)
        return new_name
