"""Find an image builder by name: the built-ins, then the ``cnb.image_builders`` entry-point group.

A third-party package registers ``[project.entry-points."cnb.image_builders"] NAME = "pkg.module:factory"``;
the factory is called with no arguments and returns an object with the
:class:`~cnbplatform.imagebuilders.base.ImageBuilder` methods.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from cnbplatform.errors import CnbError, UsageError
from cnbplatform.imagebuilders.base import ENTRY_POINT_GROUP, BuiltImage, ImageBuilder, Pushed, SourceBuild
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.registry import Credential
from cnbplatform.platform.context import PlatformContext

T = TypeVar("T")

# kbld's source builder keys -> cnb's builder names
KBLD_BUILDERS = {"docker": "dockerfile", "pack": "buildpacks", "ko": "go"}


def _builtin(name: str) -> Callable[[], ImageBuilder] | None:
    if name == "buildpacks":
        from cnbplatform.imagebuilders.buildpacks import BuildpacksBuilder

        return BuildpacksBuilder
    if name == "dockerfile":
        from cnbplatform.imagebuilders.dockerfile import DockerfileBuilder

        return DockerfileBuilder
    if name == "go":
        from cnbplatform.imagebuilders.go import GoBuilder

        return GoBuilder
    return None


def available() -> list[str]:
    """Every builder name: the built-ins and those installed packages register."""
    names = {"buildpacks", "dockerfile", "go"}
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def builder_named(name: str) -> ImageBuilder:
    factory = _builtin(name)
    if factory is None:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
        if not matches:
            raise UsageError(f"unknown image builder {name!r} (available: {', '.join(available())})")
        try:
            factory = matches[0].load()
        except Exception as exc:  # a broken plug-in is the user's one-line problem, not a traceback
            raise UsageError(f"load image builder {name!r} from {matches[0].value}: {exc}") from exc
    builder = factory()
    if not isinstance(builder, ImageBuilder):
        raise UsageError(f"image builder {name!r} does not have build, push and pull_credential")
    return builder if _builtin(name) is not None else _Guarded(name, builder)


class _Guarded:
    """A third-party builder whose unexpected exceptions become one-line errors naming it (not tracebacks)."""

    def __init__(self, name: str, inner: ImageBuilder) -> None:
        self.name = name
        self._inner = inner

    def _call(self, what: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except CnbError:
            raise
        except Exception as exc:
            raise CnbError(f"image builder {self.name!r} failed to {what}: {type(exc).__name__}: {exc}") from exc

    def build(self, ctx: PlatformContext, request: SourceBuild, reporter: Reporter) -> BuiltImage:
        return self._call("build", lambda: self._inner.build(ctx, request, reporter))

    def push(self, ctx: PlatformContext, image: BuiltImage, destination: str, tags: tuple[str, ...] = ()) -> Pushed:
        return self._call("push", lambda: self._inner.push(ctx, image, destination, tags))

    def pull_credential(self, ctx: PlatformContext, registry: str) -> Credential | None:
        return self._call("give pull credentials", lambda: self._inner.pull_credential(ctx, registry))


def builder_for_kbld(kind: str, where: str) -> ImageBuilder:
    """The builder for a kbld ``sources[]`` entry's builder key (``docker``, ``pack``, ``ko``)."""
    if kind not in KBLD_BUILDERS:
        raise UsageError(f"{where}: the {kind!r} builder is not supported (use docker, pack or ko)")
    return builder_named(KBLD_BUILDERS[kind])
