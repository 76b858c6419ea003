"""``cnb sbom``: download an image's SBOM layer, export one merged SBOM for an audit, diff two images
(docs/design.md §3 decision 9; docs/spec-notes.md §3.7, §6.4).

Images are read from any store (local store, ``oci:DIR``, registry, Docker engine). ``remote=True`` reads a bare
name from its registry instead of the local store (``docker.io/library/NAME`` for a name without a host), as
``pack sbom download --remote`` does. Only the blobs needed are read: the SBOM download opens the manifest, the
config and the SBOM layer; the export also reads the run-image layers for the OS package databases.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnbplatform.errors import NotFoundError, UsageError
from cnbplatform.oci.address import ImageAddress, StoreKind, parse_address
from cnbplatform.oci.image import Image, as_image, is_index, resolve_platform
from cnbplatform.oci.store.stores import Stores
from cnbplatform.platform.context import PlatformContext
from cnbplatform.platform.run import host_os_arch
from cnbplatform.sbom.collect import lifecycle_metadata, read_sbom_files, write_sbom_files
from cnbplatform.sbom.diff import SbomDiff, diff_inventories
from cnbplatform.sbom.export import Format, render
from cnbplatform.sbom.inventory import collect_inventory
from cnbplatform.sbom.model import Inventory


def sbom_address(where: str, *, remote: bool = False) -> ImageAddress:
    """Parse *where*; with *remote*, a name meant for the local store is read from its registry instead."""
    address = parse_address(where)
    if not remote or address.kind is StoreKind.REGISTRY:
        return address
    if address.kind is StoreKind.LOCAL and not where.startswith("local:"):
        return parse_address(f"docker://{where}")
    raise UsageError(f"{where}: --remote reads from a registry; give a registry reference, not {address.kind} image")


def display_name(address: ImageAddress) -> str:
    """The image name written into documents: the reference as the user would write it, or the layout address."""
    if address.reference is not None:
        return address.reference.familiar() if address.kind is not StoreKind.REGISTRY else str(address.reference)
    return address.text


def _image(stores: Stores, address: ImageAddress) -> Image:
    store, ref = stores.open(address)
    artifact = store.read(ref)
    if is_index(artifact):
        artifact = resolve_platform(artifact, host_os_arch())
    return as_image(artifact)


@dataclass(frozen=True)
class SbomDownload:
    image: str
    digest: str
    files: tuple[Path, ...]


def download_sbom(ctx: PlatformContext, where: str, output_dir: Path, *, remote: bool = False) -> SbomDownload:
    """Write the files of the image's SBOM layer under *output_dir* (``launch/<bp>/<layer>/sbom.<ext>``…)."""
    address = sbom_address(where, remote=remote)
    with Stores(ctx) as stores:
        image = _image(stores, address)
        metadata = lifecycle_metadata(image)
        if metadata.sbom is None:
            raise NotFoundError(
                f"{where}: the image has no SBOM layer (no sbom.sha in io.buildpacks.lifecycle.metadata)"
            )
        files = read_sbom_files(image, metadata)
    written = write_sbom_files(files, output_dir)
    return SbomDownload(display_name(address), image.descriptor.digest, tuple(written))


def image_inventory(ctx: PlatformContext, where: str, *, remote: bool = False, name: str | None = None) -> Inventory:
    """The merged inventory of one image (buildpack SBOMs, OS packages, labels)."""
    address = sbom_address(where, remote=remote)
    with Stores(ctx) as stores:
        image = _image(stores, address)
        return collect_inventory(image, name or display_name(address))


@dataclass(frozen=True)
class SbomExport:
    inventory: Inventory
    text: str


def export_sbom(
    ctx: PlatformContext,
    where: str,
    fmt: Format,
    *,
    remote: bool = False,
    name: str | None = None,
    random_serial: bool = False,
    now: bool = False,
) -> SbomExport:
    """One merged SBOM document for *where* in *fmt* (CycloneDX 1.6, SPDX 2.3 or the HTML report)."""
    inventory = image_inventory(ctx, where, remote=remote, name=name)
    return SbomExport(inventory, render(inventory, fmt, random_serial=random_serial, now=now))


def diff_sboms(ctx: PlatformContext, before: str, after: str, *, remote: bool = False) -> SbomDiff:
    return diff_inventories(image_inventory(ctx, before, remote=remote), image_inventory(ctx, after, remote=remote))
