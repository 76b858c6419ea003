"""Image references with Docker's normalisation (distribution/reference grammar).

``ubuntu`` -> ``docker.io/library/ubuntu:latest``; ``localhost:5000/app@sha256:…``; a first path component is a
registry host when it contains ``.`` or ``:`` or is ``localhost`` (the rule Docker uses).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from cnbplatform.errors import InvalidReferenceError

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
DEFAULT_TAG = "latest"

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_HOST_RE = re.compile(
    r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


@dataclass(frozen=True, order=True)
class Reference:
    """A parsed image reference. ``tag`` and ``digest`` may both be set; at least one is."""

    registry: str
    repository: str
    tag: str | None = DEFAULT_TAG
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def identifier(self) -> str:
        """What a registry API takes as ``<reference>``: the digest if there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def api_host(self) -> str:
        return DOCKER_HUB_API if self.registry == DOCKER_HUB else self.registry

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise InvalidReferenceError(f"invalid tag {tag!r}")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        return replace(self, digest=digest)

    def context(self, repository: str) -> Reference:
        """Another repository on the same registry."""
        return replace(self, repository=repository)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    def familiar(self) -> str:
        """The short form Docker prints: ``ubuntu:latest`` for ``docker.io/library/ubuntu:latest``."""
        name = self.name
        if self.registry == DOCKER_HUB:
            name = self.repository.removeprefix("library/")
        out = name
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def has_registry_host(value: str) -> bool:
    """True when the first path component of *value* names a registry host."""
    if "/" not in value:
        return False
    first = value.split("/", 1)[0]
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")


def is_registry_host(value: str) -> bool:
    """True when *value* is a registry host as a reference names it: ``host[:port]`` or ``[v6]:port``."""
    return bool(_HOST_RE.match(value))


def normal_registry(host: str) -> str:
    """*host* with Docker Hub's other names (``index.docker.io``, ``registry-1.docker.io``) as ``docker.io``."""
    return DOCKER_HUB if host in ("index.docker.io", "registry-1.docker.io") else host


def parse_reference(value: str, *, default_tag: str | None = DEFAULT_TAG) -> Reference:
    """Parse and normalise *value*; raise InvalidReferenceError with the reason when it is not valid."""
    original = value
    if not value or value != value.strip():
        raise InvalidReferenceError(f"invalid image reference {original!r}: empty or has spaces")
    digest: str | None = None
    if "@" in value:
        value, digest = value.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidReferenceError(f"invalid image reference {original!r}: bad digest {digest!r}")
    registry = DOCKER_HUB
    remainder = value
    if has_registry_host(value):
        registry, remainder = value.split("/", 1)
        if not _HOST_RE.match(registry):
            raise InvalidReferenceError(f"invalid image reference {original!r}: bad registry host {registry!r}")
        registry = normal_registry(registry)
    tag: str | None = None
    last = remainder.rsplit("/", 1)[-1]
    if ":" in last:
        remainder, tag = remainder.rsplit(":", 1)
        if not _TAG_RE.match(tag):
            raise InvalidReferenceError(f"invalid image reference {original!r}: bad tag {tag!r}")
    if not remainder:
        raise InvalidReferenceError(f"invalid image reference {original!r}: missing repository")
    if registry == DOCKER_HUB and "/" not in remainder:
        remainder = f"library/{remainder}"
    if not _REPO_RE.match(remainder):
        reason = "repository names must be lowercase" if remainder.lower() != remainder else "bad repository"
        raise InvalidReferenceError(f"invalid image reference {original!r}: {reason} {remainder!r}")
    if len(f"{registry}/{remainder}") > 255:
        raise InvalidReferenceError(f"invalid image reference {original!r}: name longer than 255 characters")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry=registry, repository=remainder, tag=tag, digest=digest)
