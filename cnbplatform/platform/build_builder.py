"""The builder of a ``cnb build``: an image in any store (pulled per ``--pull-policy``) or a directory with a
``builder.toml``, assembled into a builder image on the fly and cached by content in the local store."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.errors import NotFoundError, UsageError
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.address import StoreKind, parse_address, pinned_address
from cnbplatform.oci.image import Image, as_image, is_index, resolve_platform
from cnbplatform.oci.stores import Stores
from cnbplatform.platform.context import PlatformContext
from cnbplatform.platform.run import host_os_arch

PULL_POLICIES = ("always", "if-not-present", "never")


@dataclass(frozen=True)
class BuilderRef:
    address: str  # reads back exactly this image (``local:name@digest`` …)
    image: Image


def _read(stores: Stores, address: str) -> Image:
    store, ref = stores.open(parse_address(address))
    artifact = store.read(ref)
    if is_index(artifact):
        artifact = resolve_platform(artifact, host_os_arch())
    return as_image(artifact)


def resolve_builder(ctx: PlatformContext, name: str, pull_policy: str, reporter: Reporter) -> BuilderRef:
    if pull_policy not in PULL_POLICIES:
        raise UsageError(f"--pull-policy must be one of {', '.join(PULL_POLICIES)}")
    directory = Path(name)
    if (directory / "builder.toml").is_file() or name.endswith(".toml"):
        config = directory / "builder.toml" if directory.is_dir() else directory
        return builder_from_config(ctx, config, reporter)
    if name.startswith(("/", "./", "../", "~")) or directory.is_dir():
        where = "has no builder.toml" if directory.is_dir() else "does not exist"
        raise NotFoundError(f"builder {name}: the directory {where} (a builder is an image or a dir with builder.toml)")
    address = parse_address(name)
    with Stores(ctx.store_options()) as stores:
        if address.kind is not StoreKind.REGISTRY:
            image = _read(stores, name)
            return BuilderRef(pinned_address(address, image.descriptor.digest), image)
        assert address.reference is not None
        local = f"local:{address.reference}"
        if pull_policy != "always":
            try:
                image = _read(stores, local)
                return BuilderRef(f"local:{address.reference.name}@{image.descriptor.digest}", image)
            except NotFoundError:
                if pull_policy == "never":
                    raise NotFoundError(f"builder {name} is not in the local store (--pull-policy never)") from None
        reporter.info(f"pulling builder {name}")
        remote = _read(stores, name)
        local_store, ref = stores.open(parse_address(local))
        local_store.write(remote, ref)
        return BuilderRef(f"local:{address.reference.name}@{remote.descriptor.digest}", remote)


def builder_from_config(ctx: PlatformContext, config: Path, reporter: Reporter) -> BuilderRef:
    """Assemble the builder described by *config* (pack's builder.toml) and keep it in the local store.

    The builder is made again each time (cheap: its layers come from the layer cache by fingerprint) and kept under
    a name derived from the config's path, so a rebuild with an unchanged builder.toml reuses every layer."""
    if not config.is_file():
        raise NotFoundError(f"builder config {config} not found")
    from cnbplatform.platform.builder import create_builder_image

    key = hashlib.sha256(str(config.resolve()).encode()).hexdigest()[:12]
    name = f"cnb-builders/{config.resolve().parent.name.lower() or 'builder'}-{key}:latest"
    outcome = create_builder_image(ctx, config, f"local:{name}", reporter=reporter)
    with Stores(ctx.store_options()) as stores:
        image = _read(stores, f"local:{name}@{outcome.descriptor.digest}")
    return BuilderRef(pinned_address(parse_address(f"local:{name}"), outcome.descriptor.digest), image)


def add_packaged_buildpack(ctx: PlatformContext, ref: str, buildpacks_dir: Path) -> tuple[str, str]:
    """A buildpackage (``.cnb`` file, ``.tgz`` or image) unpacked into *buildpacks_dir*; returns its id and version."""
    import shutil
    import tempfile

    from cnbplatform.builder.modules import ModuleResolver
    from cnbplatform.files.buildpack_toml import escape_id
    from cnbplatform.oci.stores import StoreOptions

    with (
        tempfile.TemporaryDirectory(prefix="cnb-buildpack-") as work,
        Stores(StoreOptions(home=buildpacks_dir.parent)) as stores,
    ):
        resolved = ModuleResolver(stores, Path(work), platform=host_os_arch()).resolve(ref, Path.cwd())
        for module in resolved.all:
            target = buildpacks_dir / escape_id(module.descriptor.id) / module.descriptor.version
            if not target.exists():
                shutil.copytree(module.directory, target, symlinks=True)
    return resolved.main.descriptor.id, resolved.main.descriptor.version
