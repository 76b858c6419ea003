"""Input images come from where their name says, the way Docker reads names (docs/design.md §3 decision 11).

:func:`fetch` reads an input image (a builder, a build or run image, a buildpackage, a previous image):

| name | read from |
| --- | --- |
| ``local:NAME`` | the local store only |
| ``oci:DIR[:TAG]``, ``docker-daemon:REF`` | that layout directory, that engine |
| ``docker://REF``, ``registry:REF`` | the registry (``--pull-policy never`` refuses it) |
| any other name (``ubuntu``, ``cnb/run``, ``127.0.0.1:5000/x``) | the local store when it holds the name (unless the \
  policy is ``always``), else the registry of the normalised name (``ubuntu`` → ``docker.io/library/ubuntu:latest``) |

A registry read goes through the configured mirrors first (``registry-mirrors``: registry host, or ``*``, → mirror
``host[/prefix]``; pack's and Docker's idea of a mirror) and falls back to the registry itself. What a registry
gave is written into the local store under the normalised name (only the image for the wanted platform, as Docker
keeps it), and the image returned is the local copy: every later read of it is a local read, valid after the
registry clients are closed. With ``keep=False`` (a build that publishes to a registry) the image is read remotely
and nothing is copied: its layers go registry to registry.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from cnbplatform.errors import CnbError, NotFoundError, UsageError
from cnbplatform.oci.address import ImageAddress, StoreKind, parse_address, pinned_address
from cnbplatform.oci.image import Image, as_image, resolve_platform
from cnbplatform.oci.model import Platform
from cnbplatform.oci.reference import Reference, normal_registry

if TYPE_CHECKING:
    from cnbplatform.oci.store.stores import Stores

PULL_POLICIES = ("always", "if-not-present", "never")
_EXPLICIT_REGISTRY = ("docker://", "registry:")


@dataclass(frozen=True)
class Fetched:
    """An input image and how to name it.

    ``address`` reads back exactly this image (``local:NAME@sha256:…`` after a pull); ``reference`` is the valid
    image reference to record in labels and analyzed.toml (``docker.io/cnb/run@sha256:…``; an ``oci:``/engine
    address where the image has no registry name); ``source`` says where it came from (``local``, ``pulled``,
    ``registry``, ``layout``, ``daemon``)."""

    image: Image
    address: str
    reference: str
    source: str
    top_digest: str  # the digest of what the name resolved to (an index's, for a multi-platform image)


def check_pull_policy(policy: str) -> str:
    if policy not in PULL_POLICIES:
        raise UsageError(f"--pull-policy must be one of {', '.join(PULL_POLICIES)}")
    return policy


def record_reference(address: ImageAddress, digest: str) -> str:
    """The reference recorded for the image with *digest* read at *address*: ``NAME@digest`` with NAME the
    normalised name for the local store and registries; :func:`pinned_address` for layouts and engines."""
    if address.kind in (StoreKind.LOCAL, StoreKind.REGISTRY) and address.reference is not None:
        return f"{address.reference.name}@{digest}"
    return pinned_address(address, digest)


def mirror_for(ref: Reference, mirrors: dict[str, str] | None) -> Reference | None:
    """*ref* on the mirror configured for its registry (or for ``*``); None without one."""
    if not mirrors:
        return None
    normal = {normal_registry(k): v for k, v in mirrors.items()}
    mirror = normal.get(ref.registry) or normal.get("*")
    if not mirror:
        return None
    mirror = mirror.removeprefix("https://").removeprefix("http://").strip("/")
    host, _, prefix = mirror.partition("/")
    if not host or host == ref.registry:
        return None
    repository = f"{prefix}/{ref.repository}" if prefix else ref.repository
    return replace(ref, registry=host, repository=repository)


def fetch(
    stores: Stores,
    text: str,
    *,
    pull_policy: str = "if-not-present",
    platform: Platform | None = None,
    keep: bool = True,
    announce: Callable[[str], None] | None = None,
) -> Fetched:
    """The image *text* names, read as the module docstring says; an index gives its *platform* entry (the first
    entry without a platform). Raises NotFoundError when no store that the name allows has it."""
    check_pull_policy(pull_policy)
    address = parse_address(text)
    if address.kind in (StoreKind.LAYOUT, StoreKind.DAEMON):
        store, ref = stores.open(address)
        artifact = store.read(ref)
        image = as_image(resolve_platform(artifact, platform or host_platform()))
        digest = image.descriptor.digest
        return Fetched(image, pinned_address(address, digest), record_reference(address, digest),
                       address.kind.value, artifact.descriptor.digest)  # fmt: skip
    if address.kind is StoreKind.LOCAL and text.startswith("local:"):
        return _local(stores, address, platform)
    assert address.reference is not None
    explicit = text.startswith(_EXPLICIT_REGISTRY)
    if not explicit and pull_policy != "always":
        try:
            return _local(stores, address, platform)
        except NotFoundError:
            pass
    if pull_policy == "never":
        where = "a registry" if explicit else "the local store"
        raise NotFoundError(f"image {text} is not in {where} and --pull-policy is never")
    try:
        remote, top, origin = _remote(stores, address.reference, platform, text)
    except CnbError as exc:
        if explicit or pull_policy == "always" or isinstance(exc, NotFoundError):
            raise
        # not here, and its registry could not say: what the user needs to hear is both
        raise NotFoundError(f"image {text} is not in the local store, and {exc.message}") from exc
    if not keep:
        digest = remote.descriptor.digest
        return Fetched(remote, f"docker://{origin.name}@{digest}",
                       record_reference(address, digest), "registry", top)  # fmt: skip
    if announce is not None:
        announce(f"pulling {address.reference.familiar()}")
    local = stores.local()
    name = str(address.reference)
    local.write(remote, name)
    local_address = parse_address(f"local:{name}")
    image = as_image(local.read(f"{address.reference.name}@{remote.descriptor.digest}"))
    digest = image.descriptor.digest
    return Fetched(image, pinned_address(local_address, digest), record_reference(local_address, digest), "pulled", top)


def _local(stores: Stores, address: ImageAddress, platform: Platform | None) -> Fetched:
    store, ref = stores.local(), address.tag
    artifact = store.read(ref)
    image = as_image(resolve_platform(artifact, platform or host_platform()))
    local_address = address if address.reference is None else parse_address(f"local:{address.reference}")
    digest = image.descriptor.digest
    return Fetched(image, pinned_address(local_address, digest) if address.reference else f"local:{digest}",
                   record_reference(local_address, digest), "local", artifact.descriptor.digest)  # fmt: skip


def _remote(stores: Stores, ref: Reference, platform: Platform | None, text: str) -> tuple[Image, str, Reference]:
    """The image from the registry of *ref*, through its mirror first: (image, digest of what the name resolved
    to, the reference read)."""
    mirrored = mirror_for(ref, dict(stores.options.mirrors))
    failure: CnbError | None = None
    for candidate in (mirrored, ref):
        if candidate is None:
            continue
        try:
            artifact = stores.remote(candidate).read(candidate.identifier)
            chosen = resolve_platform(artifact, platform or host_platform())
            return as_image(chosen), artifact.descriptor.digest, candidate
        except CnbError as exc:
            if candidate is ref and failure is not None and isinstance(exc, NotFoundError):
                reason = f"not on the mirror ({failure.message}) nor at {ref.registry}"
                raise NotFoundError(f"image {text}: {reason}") from exc
            if candidate is ref:
                raise
            failure = exc
    raise NotFoundError(f"image {text} not found")  # unreachable: the loop returns or raises


def host_platform() -> Platform:
    """This machine's ``linux/<arch>`` (an index read without a wanted platform gives this entry)."""
    machine = os.uname().machine.lower()
    return Platform("linux", {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine))
