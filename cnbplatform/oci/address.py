"""Where an image lives, as a user writes it on the command line.

| form | store |
| --- | --- |
| ``oci:DIR`` / ``oci:DIR:TAG`` | OCI image layout directory (like skopeo's ``oci:`` transport) |
| ``docker-daemon:REF`` | a Docker engine |
| ``docker://REF`` / ``registry:REF`` | a registry, always |
| ``local:NAME`` | the local store, always |
| ``host.tld/repo[:tag]``, ``127.0.0.1:5000/x`` | a registry (the first component names a host) |
| ``name[:tag]`` | the local store (docs/design.md §3 decision 7: the default for names without a registry host) |
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from cnbplatform.errors import CnbError, InvalidReferenceError
from cnbplatform.oci.digest import is_digest
from cnbplatform.oci.reference import Reference, has_registry_host, parse_reference


class StoreKind(StrEnum):
    LAYOUT = "layout"
    LOCAL = "local"
    REGISTRY = "registry"
    DAEMON = "daemon"


@dataclass(frozen=True)
class ImageAddress:
    kind: StoreKind
    text: str
    path: Path | None = None
    tag: str | None = None
    reference: Reference | None = None

    def __str__(self) -> str:
        return self.text


def parse_address(value: str) -> ImageAddress:
    """Parse a command-line image address; raise InvalidReferenceError with the reason."""
    if value.startswith("oci:"):
        rest = value[4:]
        if not rest:
            raise InvalidReferenceError(f"invalid image address {value!r}: oci: needs a directory")
        path, _, tag = rest.partition(":")
        return ImageAddress(StoreKind.LAYOUT, value, path=Path(path), tag=tag or None)
    for prefix, kind in (
        ("docker-daemon:", StoreKind.DAEMON),
        ("docker://", StoreKind.REGISTRY),
        ("registry:", StoreKind.REGISTRY),
        ("local:", StoreKind.LOCAL),
    ):
        if value.startswith(prefix):
            rest = value[len(prefix) :]
            return _named(kind, value, rest)
    kind = StoreKind.REGISTRY if has_registry_host(value) else StoreKind.LOCAL
    return _named(kind, value, value)


def parse_destination(value: str) -> ImageAddress:
    """An address to write an image to: as :func:`parse_address`, but a digest is refused. A name is given by a
    tag; a digest names content, and the content written would have a digest of its own."""
    return check_destination(parse_address(value))


def check_destination(address: ImageAddress) -> ImageAddress:
    """*address* if an image may be written to it (:func:`parse_destination`)."""
    value = address.text
    ref = address.reference
    if (ref is not None and ref.digest) or (address.tag is not None and (is_digest(address.tag) or "@" in address.tag)):
        raise InvalidReferenceError(
            f"invalid destination {value!r}: an image is written under a tag, not a digest (drop the @sha256:…)"
        )
    return address


def _named(kind: StoreKind, text: str, name: str) -> ImageAddress:
    if kind is StoreKind.LOCAL and is_digest(name):
        return ImageAddress(kind, text, tag=name)
    ref = parse_reference(name)
    return ImageAddress(kind, text, reference=ref, tag=str(ref))


def pinned_address(address: ImageAddress, digest: str) -> str:
    """An address that reads back exactly the image with *digest* that *address* named (recorded in analyzed.toml
    and labels): ``oci:DIR:TAG@sha256:…``, ``local:NAME@sha256:…``, ``registry/repo@sha256:…``; the Docker engine
    keeps the name (its image IDs are not manifest digests)."""
    if address.kind is StoreKind.LAYOUT:
        return f"oci:{address.path}:{address.tag or ''}@{digest}"
    assert address.reference is not None
    if address.kind is StoreKind.LOCAL:
        return f"local:{address.reference.name}@{digest}"
    if address.kind is StoreKind.DAEMON:
        return f"docker-daemon:{address.reference.familiar()}"
    return f"{address.reference.name}@{digest}"


def image_name(text: str) -> str:
    """*text* without its digest, normalised for comparing image names (the Go lifecycle's ``ParseMaybe``):
    ``tiny-run`` -> ``docker.io/library/tiny-run:latest``, ``busybox@sha256:…`` -> ``docker.io/library/busybox:latest``,
    ``oci:DIR:TAG@sha256:…`` -> ``oci:DIR:TAG``. Text that does not parse compares as given."""
    try:
        address = parse_address(text)
    except CnbError:
        return text
    if address.kind is StoreKind.LAYOUT:
        tag = (address.tag or "").partition("@")[0]
        return f"oci:{address.path}" + (f":{tag}" if tag else "")
    if address.reference is None:
        return text
    try:
        return str(parse_reference(str(replace(address.reference, digest=None))))
    except CnbError:
        return text


def registry_of(text: str) -> str | None:
    """The registry host of the image *text* names (``docker.io`` for Docker Hub); None for an OCI layout, a bare
    digest or text that does not parse."""
    try:
        address = parse_address(text)
    except CnbError:
        return None
    return address.reference.registry if address.reference is not None else None
