"""The image-builder protocol: build a source dir into an image, push it, and say how a cluster may pull it.

It is the bridge Draft's "container image builders" design asks for (https://github.com/Azure/draft, DEP-009:
``Build``, ``Push``, ``AuthToken``): ``build`` leaves the image where cnb can read it (any store address),
``push`` copies it to a registry with cnb's own client, and ``pull_credential`` is what a pull secret is made
of. Options are a builder's own fields (for the built-ins, kbld's ``sources[].<builder>.build`` fields).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.registry import Credential
from cnbplatform.platform.context import PlatformContext

ENTRY_POINT_GROUP = "cnb.image_builders"


@dataclass(frozen=True)
class SourceBuild:
    """What to build: the source dir, a name for the result (a hint: builders may write elsewhere) and options."""

    source: Path
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltImage:
    """Where a build left its image: an address any cnb command reads (``local:…``, ``oci:DIR:TAG``, …)."""

    address: str
    digest: str


@dataclass(frozen=True)
class Pushed:
    reference: str  # registry/repository@sha256:…
    digest: str


@runtime_checkable
class ImageBuilder(Protocol):
    """A way to turn a source directory into an image."""

    name: str

    def build(self, ctx: PlatformContext, request: SourceBuild, reporter: Reporter) -> BuiltImage: ...

    def push(self, ctx: PlatformContext, image: BuiltImage, destination: str, tags: tuple[str, ...] = ()) -> Pushed: ...

    def pull_credential(self, ctx: PlatformContext, registry: str) -> Credential | None: ...
