"""The format-neutral SBOM model every reader produces and every writer consumes (docs/design.md §3 decision 9).

An :class:`Inventory` describes one image: the image itself (:class:`Subject`, the root), the *groups* its
components come from (the run image with its OS packages, then each buildpack with the packages its SBOMs list)
and the merged, de-duplicated :class:`Component` list. ``Component.ref`` is the identity used for de-duplication
and as the CycloneDX ``bom-ref``: the canonical purl when there is one, else ``<kind>:<name>@<version>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """Component kinds (a subset of CycloneDX 1.6 ``component.type``, mapped to SPDX package purposes)."""

    APPLICATION = "application"
    CONTAINER = "container"
    FILE = "file"
    FRAMEWORK = "framework"
    LIBRARY = "library"
    OPERATING_SYSTEM = "operating-system"


@dataclass(frozen=True)
class Component:
    """One piece of software: ``licenses`` are SPDX ids or expressions where known, free names otherwise."""

    ref: str
    name: str
    version: str = ""
    kind: Kind = Kind.LIBRARY
    purl: str | None = None
    group: str = ""
    licenses: tuple[str, ...] = ()
    description: str = ""
    supplier: str = ""
    properties: tuple[tuple[str, str], ...] = ()
    found_in: tuple[
        str, ...
    ] = ()  # the files it was read from (``launch/<bp>/sbom.cdx.json``, ``/var/lib/dpkg/status``)

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        return (self.purl or "~", self.name, self.version, self.ref)


def plain_ref(kind: str, name: str, version: str = "") -> str:
    """The identity of a component without a purl."""
    return f"{kind}:{name}@{version}" if version else f"{kind}:{name}"


@dataclass(frozen=True)
class Distro:
    """The operating system of an image, from ``os-release`` (``ID``, ``VERSION_ID``…)."""

    id: str
    version_id: str = ""
    codename: str = ""
    pretty_name: str = ""

    @property
    def qualifier(self) -> str:
        """The purl ``distro`` qualifier value (``debian-12``, ``alpine-3.19.1``); empty without a version."""
        version = self.version_id or self.codename
        return f"{self.id}-{version}" if self.id and version else ""


@dataclass(frozen=True)
class BuildpackInfo:
    id: str
    version: str = ""
    homepage: str = ""


@dataclass(frozen=True)
class RunImageInfo:
    """The run image an app image was built on (``runImage`` of ``io.buildpacks.lifecycle.metadata``, §6.4)."""

    name: str
    reference: str = ""
    digest: str = ""
    top_layer: str = ""


@dataclass(frozen=True)
class Subject:
    """The image the SBOM describes: the root component of every document."""

    name: str
    digest: str
    created: str = ""
    os: str = ""
    architecture: str = ""
    run_image: RunImageInfo | None = None
    buildpacks: tuple[BuildpackInfo, ...] = ()
    launcher_version: str = ""
    distro: Distro | None = None


@dataclass(frozen=True)
class Group:
    """Where components came from: the node (run image, buildpack; ``None``: the image itself) and the refs it
    brings, sorted."""

    key: str
    title: str
    node: Component | None
    members: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inventory:
    """Everything known about one image's software, ready to be written in any format."""

    subject: Subject
    root: Component
    groups: tuple[Group, ...] = ()
    components: tuple[Component, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def component(self, ref: str) -> Component:
        for item in self.components:
            if item.ref == ref:
                return item
        raise KeyError(ref)

    def nodes(self) -> tuple[Component, ...]:
        """Every component besides the root: group nodes first, then the packages (each once)."""
        heads = tuple(g.node for g in self.groups if g.node is not None)
        seen = {node.ref for node in heads}
        return heads + tuple(c for c in self.components if c.ref not in seen)
