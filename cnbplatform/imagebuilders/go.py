"""The ``go`` builder (kbld's ``ko`` source): a Go module built by the ``cnb/go`` buildpack onto a static run image.

It needs a builder that carries ``cnb/go``; cnb has none yet, so this builder says so instead of guessing.
"""

from __future__ import annotations

from cnbplatform.errors import UsageError
from cnbplatform.imagebuilders import common
from cnbplatform.imagebuilders.base import BuiltImage, Pushed, SourceBuild
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.registry import Credential
from cnbplatform.platform.context import PlatformContext


class GoBuilder:
    name = "go"

    def build(self, ctx: PlatformContext, request: SourceBuild, reporter: Reporter) -> BuiltImage:
        raise UsageError(
            f"build {request.name}: the go builder (kbld's ko source) needs the cnb/go buildpack, which cnb does "
            "not ship yet; build Go apps with a pack source and a builder that has a Go buildpack"
        )

    def push(self, ctx: PlatformContext, image: BuiltImage, destination: str, tags: tuple[str, ...] = ()) -> Pushed:
        return common.push(ctx, image, destination, tags)

    def pull_credential(self, ctx: PlatformContext, registry: str) -> Credential | None:
        return common.pull_credential(ctx, registry)
