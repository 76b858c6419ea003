"""The builder of a ``cnb build``: an image in any store (pulled per ``--pull-policy``) or a directory with a
``builder.toml``, assembled into a builder image on the fly and cached by content in the local store.

An assembled builder is remembered in ``$CNB_HOME/builder-cache/<key>.json`` with what went into it: the bytes of
builder.toml (by digest), the stat fingerprint of every buildpack directory (taken before its files were read, and
trusted only outside the racy margin, :mod:`cnbplatform.oci.layers.fingerprint`), the digest of every image it read (the
build image) and cnb's version. When all of these still match and the local store still holds the builder under its
name, the builder is used as it is, without reading builder.toml's buildpacks again. Anything else (an archive, a
package image or a download among the buildpacks, an unreadable or torn record) assembles the builder as before.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbplatform import __version__
from cnbplatform.errors import CnbError, NotFoundError, UsageError
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.address import parse_address, pinned_address
from cnbplatform.oci.image import Image, as_image, is_index, resolve_platform
from cnbplatform.oci.store.pull import check_pull_policy, fetch, host_platform
from cnbplatform.oci.store.stores import Stores
from cnbplatform.platform.context import PlatformContext


@dataclass(frozen=True)
class BuilderRef:
    address: str  # reads back exactly this image (``local:name@digest`` …)
    image: Image


def _read(stores: Stores, address: str) -> Image:
    store, ref = stores.open(parse_address(address))
    artifact = store.read(ref)
    if is_index(artifact):
        artifact = resolve_platform(artifact, host_platform())
    return as_image(artifact)


def resolve_builder(ctx: PlatformContext, name: str, pull_policy: str, reporter: Reporter) -> BuilderRef:
    check_pull_policy(pull_policy)
    directory = Path(name)
    if (directory / "builder.toml").is_file() or name.endswith(".toml"):
        config = directory / "builder.toml" if directory.is_dir() else directory
        return builder_from_config(ctx, config, reporter)
    if name.startswith(("/", "./", "../", "~")) or directory.is_dir():
        where = "has no builder.toml" if directory.is_dir() else "does not exist"
        raise NotFoundError(f"builder {name}: the directory {where} (a builder is an image or a dir with builder.toml)")
    with Stores(ctx) as stores:
        try:
            fetched = fetch(stores, name, pull_policy=pull_policy, platform=host_platform(), announce=reporter.info)
        except NotFoundError as exc:
            raise NotFoundError(f"builder {name}: {exc.message}") from exc
    return BuilderRef(fetched.address, fetched.image)


#: Bumped when what goes into an assembled builder changes in a way cnb's version does not tell.
RECORD_FORMAT = 1


def builder_from_config(ctx: PlatformContext, config: Path, reporter: Reporter) -> BuilderRef:
    """Assemble the builder described by *config* (pack's builder.toml) and keep it in the local store.

    The builder is kept under a name derived from the config's path. It is reused as it is when its inputs are
    unchanged (module docstring), else made again (cheap: its layers come from the layer cache by fingerprint)."""
    try:
        config_bytes = config.read_bytes()
    except OSError:
        raise NotFoundError(f"builder config {config} not found") from None
    resolved = config.resolve()
    key = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    name = f"cnb-builders/{resolved.parent.name.lower() or 'builder'}-{key}:latest"
    record_path = ctx.home / "builder-cache" / f"{key}.json"
    config_digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    with Stores(ctx) as stores:
        reused = _reuse(stores, record_path, config_digest, name)
    if reused is not None:
        reporter.debug(f"builder {config}: inputs unchanged, using {reused.address}")
        return reused
    from cnbplatform.platform.builder import create_builder_image

    try:
        outcome = create_builder_image(ctx, config, f"local:{name}", reporter=reporter)
    except NotFoundError as exc:
        raise NotFoundError(exc.message + _base_hint(config, exc.message)) from exc
    with Stores(ctx) as stores:
        image = _read(stores, f"local:{name}@{outcome.descriptor.digest}")
    if outcome.inputs.complete:
        record = {
            "format": RECORD_FORMAT,
            "cnb": __version__,
            "config": config_digest,
            "directories": outcome.inputs.directories,
            "images": outcome.inputs.images,
            "builder": name,
            "digest": outcome.descriptor.digest,
        }
        _write_record(record_path, record)
    return BuilderRef(pinned_address(parse_address(f"local:{name}"), outcome.descriptor.digest), image)


def _base_hint(config: Path, message: str) -> str:
    """How to make the base images, when *message* is about the build or run image of *config* and the builder's
    dir has the recipe for them (builders/<name>/base.toml)."""
    recipe = config.parent / "base.toml"
    if not recipe.is_file():
        return ""
    from cnbplatform.files.builder_toml import BuilderConfig

    try:
        builder = BuilderConfig.load(config)
    except CnbError:
        return ""
    names = [builder.build_image, *(r.image for r in builder.run_images)]
    if not builder.run_images or not any(f" {name}:" in message for name in names):
        return ""  # some other input is missing (a buildpack, say): base.toml would not help
    build, run = builder.build_image, builder.run_images[0].image
    return f" (make the base images with: cnb base create --config {recipe} --build-image {build} --run-image {run})"


def _reuse(stores: Stores, record_path: Path, config_digest: str, name: str) -> BuilderRef | None:
    """The builder *record_path* describes, when everything that went into it is unchanged; else None."""
    from cnbplatform.oci.layers.fingerprint import fingerprint_tree

    try:
        record: Any = json.loads(record_path.read_bytes())
        expected = (RECORD_FORMAT, __version__, config_digest, name)
        if (record["format"], record["cnb"], record["config"], record["builder"]) != expected:
            return None
        for directory, digest in record["directories"].items():
            fingerprint = fingerprint_tree(Path(directory))
            if not fingerprint.stable or fingerprint.digest != digest:
                return None
        for where, digest in record["images"].items():
            if fetch(stores, where, pull_policy="never", platform=host_platform()).image.descriptor.digest != digest:
                return None
        image = _read(stores, f"local:{name}")
        if image.descriptor.digest != record["digest"]:
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError, CnbError):
        return None  # no record, a torn one, or an input gone: assemble again
    return BuilderRef(pinned_address(parse_address(f"local:{name}"), image.descriptor.digest), image)


def _write_record(path: Path, record: dict[str, Any]) -> None:
    """Write the record atomically; failing to is no error (the next build assembles the builder again)."""
    tmp = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(record, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def add_packaged_buildpack(ctx: PlatformContext, ref: str, buildpacks_dir: Path) -> tuple[str, str]:
    """A buildpackage (``.cnb`` file, ``.tgz`` or image) unpacked into *buildpacks_dir*; returns its id and version."""
    import shutil
    import tempfile

    from cnbplatform.builder.modules import ModuleResolver
    from cnbplatform.files.buildpack_toml import escape_id
    from cnbplatform.files.untrusted import join

    with (
        tempfile.TemporaryDirectory(prefix="cnb-buildpack-") as work,
        Stores(ctx) as stores,
    ):
        resolved = ModuleResolver(stores, Path(work), platform=host_platform()).resolve(ref, Path.cwd())
        for module in resolved.all:
            target = join(buildpacks_dir, escape_id(module.descriptor.id), module.descriptor.version)
            if not target.exists():
                shutil.copytree(module.directory, target, symlinks=True)
    return resolved.main.descriptor.id, resolved.main.descriptor.version


#: The buildpack registry's API (https://github.com/buildpacks/registry-api); ``CNB_BUILDPACK_REGISTRY_URL`` sets
#: another (a mirror of it, or a test's).
BUILDPACK_REGISTRY_API = "https://registry.buildpacks.io/api/v1"


def buildpack_registry_image(ctx: PlatformContext, locator: str) -> str:
    """The buildpackage image of ``urn:cnb:registry:NS/NAME[@VERSION]``: the ``addr`` the buildpack registry gives
    for that version (the latest without one). Offline, or with the registry unreachable, a one-line error."""
    import httpx

    wanted = locator.removeprefix("urn:cnb:registry:")
    name, _, version = wanted.partition("@")
    if name.count("/") != 1 or not all(name.split("/")):
        raise UsageError(f"--buildpack {locator}: expected urn:cnb:registry:NAMESPACE/NAME[@VERSION]")
    base = (ctx.env.get("CNB_BUILDPACK_REGISTRY_URL") or BUILDPACK_REGISTRY_API).rstrip("/")
    url = f"{base}/buildpacks/{name}" + (f"/{version}" if version else "")
    try:
        response = httpx.get(url, timeout=15, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise CnbError(
            f"--buildpack {locator}: the buildpack registry ({base}) cannot be reached, and urn:cnb:registry: "
            f"locators are not supported offline; give the buildpackage image instead ({exc.__class__.__name__})"
        ) from None
    if response.status_code == 404:
        raise NotFoundError(f"--buildpack {locator}: the buildpack registry has no {wanted}")
    try:
        response.raise_for_status()
        data: Any = response.json()
        entry = data if version else data.get("latest", data)
        address = entry["addr"]
        if not isinstance(address, str) or not address:
            raise TypeError("addr")
    except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CnbError(f"--buildpack {locator}: the buildpack registry's answer has no image address ({exc})") from None
    return address
