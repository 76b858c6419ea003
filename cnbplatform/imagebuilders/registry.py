"""Find an image builder by name: the built-ins, then the ``cnb.image_builders`` entry-point group.

A third-party package registers ``[project.entry-points."cnb.image_builders"] NAME = "pkg.module:factory"``;
the factory is called with no arguments and returns an object with the
:class:`~cnbplatform.imagebuilders.base.ImageBuilder` methods.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points

from cnbplatform.errors import UsageError
from cnbplatform.imagebuilders.base import ENTRY_POINT_GROUP, ImageBuilder

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
    return builder


def builder_for_kbld(kind: str, where: str) -> ImageBuilder:
    """The builder for a kbld ``sources[]`` entry's builder key (``docker``, ``pack``, ``ko``)."""
    if kind not in KBLD_BUILDERS:
        raise UsageError(f"{where}: the {kind!r} builder is not supported (use docker, pack or ko)")
    return builder_named(KBLD_BUILDERS[kind])
