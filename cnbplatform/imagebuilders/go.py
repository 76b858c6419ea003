"""The ``go`` builder (kbld's ``ko`` source): a Go module built by the ``cnb/go`` buildpack onto a static run image.

ko's conventions (``CGO_ENABLED=0 go build -trimpath``, the binary as the entrypoint, ``kodata/`` at
``KO_DATA_PATH``) are ``cnb/go``'s; the build is ``cnb build`` with the trixie builder (``builders/trixie``) and its
static run image, named by ``CNB_GO_BUILDER`` (default ``cnb/trixie-builder``) and ``CNB_GO_RUN_IMAGE`` (default
``cnb/trixie-static``). ko's ``rawOptions`` have no ``cnb build`` equivalent: any is refused.
"""

from __future__ import annotations

from cnbplatform.errors import UsageError
from cnbplatform.imagebuilders import common
from cnbplatform.imagebuilders.base import BuiltImage, Pushed, SourceBuild
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.registry import Credential
from cnbplatform.platform.build import BuildRequest, run_build
from cnbplatform.platform.context import PlatformContext

DEFAULT_BUILDER = "cnb/trixie-builder"
DEFAULT_RUN_IMAGE = "cnb/trixie-static"


def go_request(ctx: PlatformContext, request: SourceBuild, target: str) -> BuildRequest:
    """The ``cnb build`` request for *request* (see the module doc)."""
    for key in request.options:  # kbld's ko.build
        if key != "rawOptions":
            raise UsageError(f"build {request.name}: ko.build.{key} is not a field cnb knows (rawOptions)")
    if request.options.get("rawOptions"):
        raise UsageError(f"build {request.name}: ko.build.rawOptions have no cnb build equivalent")
    if not (request.source / "go.mod").is_file():
        raise UsageError(
            f"build {request.name}: {request.source} has no go.mod (the go builder builds a Go module with the "
            "cnb/go buildpack)"
        )
    return BuildRequest(
        image=target,
        path=request.source,
        builder=ctx.env.get("CNB_GO_BUILDER") or DEFAULT_BUILDER,
        run_image=ctx.env.get("CNB_GO_RUN_IMAGE") or DEFAULT_RUN_IMAGE,
    )


class GoBuilder:
    name = "go"

    def build(self, ctx: PlatformContext, request: SourceBuild, reporter: Reporter) -> BuiltImage:
        target = f"local:{common.scratch_name(request.name)}"
        outcome = run_build(ctx, go_request(ctx, request, target), reporter)
        return BuiltImage(target, outcome.digest)

    def push(self, ctx: PlatformContext, image: BuiltImage, destination: str, tags: tuple[str, ...] = ()) -> Pushed:
        return common.push(ctx, image, destination, tags)

    def pull_credential(self, ctx: PlatformContext, registry: str) -> Credential | None:
        return common.pull_credential(ctx, registry)
