"""``cnb builder create|inspect`` and ``cnb buildpack package|new``: the platform side of builders and buildpackages
(docs/spec-notes.md §10; docs/design.md §1: builder.toml and package.toml are read in pack's schemas, unchanged).

This layer picks the stores (the local store by default, a registry with ``--publish``, any address otherwise),
the layer cache and a scratch directory under ``$CNB_HOME/tmp``, and downloads ``http(s)://`` buildpack uris.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.builder.builder import (
    LifecycleLayer,
    create_builder,
    lifecycle_image,
    lifecycle_info,
    lifecycle_info_of,
    lifecycle_layer_spec,
)
from cnbplatform.builder.buildpackage import create_package, file_layer, write_package_file
from cnbplatform.builder.lifecycle_bundle import BundleError, bundle_dir
from cnbplatform.builder.modules import ModuleResolver, ReadInputs, Reporter
from cnbplatform.builder.scaffold import scaffold_buildpack
from cnbplatform.errors import CnbError, UsageError
from cnbplatform.files import builder_labels as bl
from cnbplatform.files.builder_toml import BuilderConfig
from cnbplatform.files.buildpack_toml import ModuleInfo, Target
from cnbplatform.files.labels import decode_label
from cnbplatform.files.order import OrderGroup
from cnbplatform.files.package_toml import PackageConfig
from cnbplatform.files.run_toml import RunImage
from cnbplatform.files.system import SystemConfig
from cnbplatform.oci.address import ImageAddress, StoreKind, parse_address
from cnbplatform.oci.image import FileLayer
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.model import Descriptor, Platform
from cnbplatform.oci.store.protocol import WriteResult
from cnbplatform.oci.store.pull import fetch
from cnbplatform.oci.store.stores import Stores
from cnbplatform.platform.base import layer_cache
from cnbplatform.platform.context import PlatformContext


def _platform(targets: tuple[Target, ...]) -> Platform:
    first = targets[0] if targets else Target()
    return Platform(first.os or "linux", first.arch or "amd64", first.variant or None)


def output_address(image: str, *, publish: bool) -> ImageAddress:
    """Where to write: *image* as any address; with ``--publish`` it must be (and bare names become) a registry."""
    address = parse_address(image)
    if not publish or address.kind is StoreKind.REGISTRY:
        return address
    if address.kind is StoreKind.LOCAL and not image.startswith("local:"):
        return parse_address(f"docker://{image}")
    raise UsageError(f"--publish writes to a registry; {image} is not a registry reference")


def download(url: str, target: Path) -> None:
    """Fetch a buildpack archive or ``.cnb`` file over HTTP(S)."""
    import httpx

    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
            response.raise_for_status()
            with open(target, "wb") as out:
                for chunk in response.iter_bytes():
                    out.write(chunk)
    except httpx.HTTPError as exc:
        raise CnbError(f"downloading {url}: {exc}") from exc


@contextmanager
def _resolver(ctx: PlatformContext, stores: Stores, platform: Platform) -> Iterator[ModuleResolver]:
    scratch = ctx.home / "tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="modules-", dir=scratch, ignore_cleanup_errors=True) as work:
        yield ModuleResolver(stores, Path(work), platform=platform, downloader=download)


# -- builder create ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuilderOutcome:
    """The builder written: where, its manifest, its modules (``id@version``), and what went into it."""

    address: ImageAddress
    descriptor: Descriptor
    buildpacks: tuple[str, ...]
    result: WriteResult
    inputs: ReadInputs = field(default_factory=ReadInputs)


def bundled_lifecycle_layer(ctx: PlatformContext) -> FileLayer:
    """cnb's own lifecycle as a layer, compressed once per machine next to the bundle (not once per CNB_HOME)."""
    bundle = bundle_dir(ctx.env)
    shared = LayerCache(bundle.parent / "layer-cache")
    return file_layer(lifecycle_layer_spec(bundle), shared, bundle.parent / "blobs")


def lifecycle_layer(
    ctx: PlatformContext, source: str, resolver: ModuleResolver, reporter: Reporter
) -> LifecycleLayer | None:
    """The lifecycle ``--lifecycle`` asks for: ``cnb`` (cnb's own bundle), ``none``, or a lifecycle image (its last
    layer holds ``/cnb/lifecycle``, as kpack's ClusterLifecycle reads it)."""
    if source == "none":
        return None
    if source == "cnb":
        try:
            return LifecycleLayer(bundled_lifecycle_layer(ctx), lifecycle_info(), "cnb")
        except BundleError as exc:  # e.g. no gcc here: the builder still serves cnb build, not Tekton or kpack
            reporter.warn(f"{exc.message}; the builder has no /cnb/lifecycle (Tekton and kpack cannot use it)")
            return None
    image = resolver.read_image(source, what="lifecycle image")
    layers = image.layers()
    if not layers:
        raise CnbError(f"lifecycle image {source}: it has no layers")
    info = lifecycle_info_of(dict(image.config.labels)) or lifecycle_info()
    return LifecycleLayer(layers[-1], info, source)


def write_lifecycle_image(
    ctx: PlatformContext, image: str, *, publish: bool = False, reporter: Reporter
) -> tuple[ImageAddress, str]:
    """``cnb lifecycle image``: cnb's lifecycle layer alone, labelled as the Go lifecycle's image is."""
    address = output_address(image, publish=publish)
    layer = bundled_lifecycle_layer(ctx)
    built = lifecycle_image(layer, lifecycle_info())
    reporter.info(f"lifecycle {lifecycle_info().version}: layer {layer.descriptor.digest}")
    with Stores(ctx) as stores:
        store, ref = stores.open(address)
        store.write(built, ref)
    return address, built.descriptor.digest


def create_builder_image(
    ctx: PlatformContext,
    config_path: Path,
    image: str,
    *,
    publish: bool = False,
    reporter: Reporter,
    lifecycle: str = "cnb",
) -> BuilderOutcome:
    """Read builder.toml, build the builder image and write it to *image* (§10.2)."""
    config = BuilderConfig.load(config_path)
    for warning in config.warnings:
        reporter.warn(warning)
    address = output_address(image, publish=publish)
    cache, blobs = layer_cache(ctx)
    with Stores(ctx) as stores, _resolver(ctx, stores, _platform(config.targets)) as resolver:
        carried = lifecycle_layer(ctx, lifecycle, resolver, reporter)
        built = create_builder(
            config, resolver=resolver, layer_cache=cache, blobs_dir=blobs, reporter=reporter, lifecycle=carried
        )
        store, ref = stores.open(address)
        result = store.write(built, ref)
        inputs = resolver.read_inputs
    modules = bl.BuilderMetadata.from_json(built.config.labels[bl.BUILDER_METADATA_LABEL]).buildpacks
    return BuilderOutcome(address, built.descriptor, tuple(f"{m.id}@{m.version}" for m in modules), result, inputs)


# -- builder inspect -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuilderReport:
    """What ``cnb builder inspect`` shows, read from the builder's labels."""

    image: str
    digest: str
    platform: str
    metadata: bl.BuilderMetadata
    order: tuple[OrderGroup, ...] = ()
    order_extensions: tuple[OrderGroup, ...] = ()
    system: SystemConfig = field(default_factory=SystemConfig)
    build_image: dict[str, str] = field(default_factory=dict)
    base: dict[str, str] = field(default_factory=dict)

    @property
    def run_images(self) -> tuple[RunImage, ...]:
        meta = self.metadata
        return meta.run_images or ((meta.stack_run_image,) if meta.stack_run_image else ())

    def to_json_dict(self) -> dict[str, Any]:
        meta = self.metadata

        def module(info: ModuleInfo) -> dict[str, str]:
            return {"id": info.id, "version": info.version, "name": info.name, "homepage": info.homepage}

        def entries(group: tuple[Any, ...] | OrderGroup) -> list[dict[str, Any]]:
            return [{"id": e.id, "version": e.version, "optional": e.optional} for e in group]

        lc = meta.lifecycle
        return {
            "image": self.image,
            "digest": self.digest,
            "platform": self.platform,
            "description": meta.description,
            "createdBy": {"name": meta.created_by[0], "version": meta.created_by[1]},
            "buildImage": dict(self.build_image),
            "base": dict(self.base),
            "runImages": [{"image": r.image, "mirrors": list(r.mirrors)} for r in self.run_images],
            "buildpacks": [module(b) for b in meta.buildpacks],
            "extensions": [module(e) for e in meta.extensions],
            "order": [{"group": entries(g)} for g in self.order],
            "orderExtensions": [{"group": entries(g)} for g in self.order_extensions],
            "system": {"pre": entries(self.system.pre), "post": entries(self.system.post)},
            "lifecycle": {
                "version": lc.version,
                "buildpackApis": {
                    "supported": list(lc.buildpack_apis),
                    "deprecated": list(lc.deprecated_buildpack_apis),
                },
                "platformApis": {"supported": list(lc.platform_apis), "deprecated": list(lc.deprecated_platform_apis)},
            },
        }


def inspect_builder(ctx: PlatformContext, where: str) -> BuilderReport:
    """Read a builder image and its labels; an image without builder metadata is refused. A name is read as
    ``cnb build`` reads it (the local store when it has it, else its registry), without copying anything."""
    with Stores(ctx) as stores:
        image = fetch(stores, where, platform=Platform("linux", "amd64"), keep=False).image
        config = image.config
    labels = config.labels
    if bl.BUILDER_METADATA_LABEL not in labels:
        raise UsageError(f"{where} is not a builder: it has no label {bl.BUILDER_METADATA_LABEL}")
    build_image: dict[str, str] = {}
    if bl.BUILD_IMAGE_LABEL in labels:
        table = decode_label(labels[bl.BUILD_IMAGE_LABEL], bl.BUILD_IMAGE_LABEL)
        build_image = {"image": table.get_str("image"), "digest": table.get_str("digest")}
    base = {
        "id": labels.get("io.buildpacks.base.id", ""),
        "distroName": labels.get("io.buildpacks.base.distro.name", ""),
        "distroVersion": labels.get("io.buildpacks.base.distro.version", ""),
        "stackId": labels.get("io.buildpacks.stack.id", ""),
    }
    return BuilderReport(
        image=where,
        digest=image.descriptor.digest,
        platform=str(config.platform),
        metadata=bl.BuilderMetadata.from_json(labels[bl.BUILDER_METADATA_LABEL]),
        order=bl.parse_order_label(labels.get(bl.BUILDPACK_ORDER_LABEL, "")),
        order_extensions=bl.parse_order_label(labels.get(bl.ORDER_EXTENSIONS_LABEL, ""), bl.ORDER_EXTENSIONS_LABEL),
        system=bl.parse_system_label(labels.get(bl.SYSTEM_LABEL, "")),
        build_image=build_image,
        base=base,
    )


# -- buildpack package / new ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageOutcome:
    destination: str
    format: str
    descriptor: Descriptor
    modules: tuple[str, ...]


def package_buildpack(
    ctx: PlatformContext,
    name: str,
    *,
    config_path: Path | None = None,
    path: Path | None = None,
    fmt: str | None = None,
    publish: bool = False,
    reporter: Reporter,
) -> PackageOutcome:
    """Package the buildpack package.toml names (or the one in *path*) as an image or a ``.cnb`` file (§10.1)."""
    fmt = fmt or ("file" if name.endswith(".cnb") else "image")
    if fmt not in ("image", "file"):
        raise UsageError(f"--format: expected image or file, got {fmt!r}")
    if fmt == "file" and publish:
        raise UsageError("--publish applies to --format image only")
    config = PackageConfig.load(config_path) if config_path else PackageConfig.default(path or Path.cwd())
    base_dir = path.absolute() if path else config.base_dir
    if len(config.targets) > 1:
        reporter.warn(f"package.toml lists {len(config.targets)} targets; the package is made for the first one")
    target = config.targets[0] if config.targets else Target(os=config.os)
    cache, blobs = layer_cache(ctx)
    with Stores(ctx) as stores, _resolver(ctx, stores, _platform((target,))) as resolver:
        entry = resolver.resolve(config.uri, base_dir, kind=config.kind)
        dependencies = list(entry.dependencies)
        for dep in config.dependencies:
            dependencies += resolver.resolve(dep.locator, base_dir, image=bool(dep.image)).all
        image = create_package(
            entry.main, dependencies, layer_cache=cache, blobs_dir=blobs, os_name=target.os or config.os,
            arch=target.arch or "amd64",
        )  # fmt: skip
        if fmt == "file":
            write_package_file(image, Path(name))
        else:
            store, ref = stores.open(output_address(name, publish=publish))
            store.write(image, ref)
    modules = bl.parse_module_layers(
        image.config.labels.get(bl.BUILDPACK_LAYERS_LABEL) or image.config.labels.get(bl.EXTENSION_LAYERS_LABEL, "")
    )
    keys = tuple(f"{i}@{v}" for i, versions in sorted(modules.items()) for v in sorted(versions))
    return PackageOutcome(name, fmt, image.descriptor, keys)


def new_buildpack(
    buildpack_id: str, *, path: Path | None = None, version: str = "1.0.0", api: str = "0.12"
) -> list[Path]:
    """Scaffold a ``sh`` buildpack in *path* (default: ``./<last part of the id>``)."""
    directory = path or Path.cwd() / buildpack_id.rsplit("/", 1)[-1]
    return scaffold_buildpack(directory, buildpack_id, version=version, api=api)
