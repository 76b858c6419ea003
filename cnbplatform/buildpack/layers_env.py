"""The build environment that ``build = true`` layers contribute to later buildpacks (docs/spec-notes.md §3.9 step 2,
§3.8; §16 items 26 and 27).

After buildpack *i* finishes, each of its build layers, in ascending order of ``<layer>.toml`` name, is applied
to the accumulated build environment:

1. ``<layer>/bin`` is prepended to ``PATH``, ``<layer>/lib`` to ``LD_LIBRARY_PATH`` and ``LIBRARY_PATH``,
   ``<layer>/include`` to ``CPATH`` and ``<layer>/pkgconfig`` to ``PKG_CONFIG_PATH`` (``:``-separated, and only
   for the directories that exist);
2. the files of ``<layer>/env/`` and then of ``<layer>/env.build/`` are applied with the suffix rules of
   :mod:`cnbplatform.buildpack.envdir` (no suffix = override, Buildpack API ≥ 0.5).

Because every buildpack's layers are applied on top of what earlier buildpacks left, later buildpacks' paths come
first (the spec's "reverse group order"), and within one buildpack the alphabetically last layer comes first (LC
prepends layer by layer; the same happens at launch). Layers with ``build = false`` are never passed here.

The lifecycle reads the layers on the host while buildpacks see them elsewhere (``/layers``; docs/design.md §3
decision 1), so a layer is given by both paths: the host one to look at, the buildpack-side one to put into
path variables. Env files are read on the host, so a symlink in an env dir (or the env dir itself, or the layer)
that leads outside *boundary* (the host layers dir) is refused: otherwise a buildpack could have the lifecycle
copy any host file it cannot read itself (credentials, say) into the environment of later buildpacks.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.buildpack.envdir import PATH_LIST_SEPARATOR, EnvOp, apply_env_ops, read_env_dir
from cnbplatform.files.untrusted import confined

#: Sub-directories of a build layer and the path-list variables they are prepended to (§3.9 step 2).
ROOT_DIR_VARS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bin", ("PATH",)),
    ("lib", ("LD_LIBRARY_PATH", "LIBRARY_PATH")),
    ("include", ("CPATH",)),
    ("pkgconfig", ("PKG_CONFIG_PATH",)),
)

#: The env dirs a build layer contributes, in the order they are applied (§3.8).
BUILD_ENV_DIRS = ("env", "env.build")


@dataclass(frozen=True)
class BuildLayer:
    """A ``build = true`` layer: *host_dir* is where the lifecycle finds it, *sandbox_dir* where buildpacks do."""

    host_dir: Path
    sandbox_dir: str


def check_confined(path: Path, boundary: Path) -> None:
    """Raise SpecFileError when *path* exists and (following symlinks) resolves outside *boundary*."""
    if os.path.lexists(path):
        confined(path, boundary)


def root_dir_ops(layer: BuildLayer) -> list[EnvOp]:
    """The prepends for the layer's ``bin``, ``lib``, ``include`` and ``pkgconfig`` dirs that exist.

    A symlink there counts as present: it may point to a path that only exists as buildpacks see the layers.
    """
    ops: list[EnvOp] = []
    for sub, names in ROOT_DIR_VARS:
        host = layer.host_dir / sub
        if host.is_dir() or host.is_symlink():
            value = f"{layer.sandbox_dir.rstrip('/')}/{sub}".encode("utf-8", "surrogateescape")
            ops.extend(EnvOp(name, "prepend", value, PATH_LIST_SEPARATOR) for name in names)
    return ops


def env_dir_ops(layer: BuildLayer, *, boundary: Path | None = None) -> list[EnvOp]:
    """The operations of the layer's ``env/`` then ``env.build/`` files (§3.8), checked against *boundary*."""
    ops: list[EnvOp] = []
    for sub in BUILD_ENV_DIRS:
        directory = layer.host_dir / sub
        if boundary is not None:
            check_confined(layer.host_dir, boundary)
            check_confined(directory, boundary)
            if directory.is_dir():
                for entry in sorted(directory.iterdir()):
                    if entry.is_symlink():
                        check_confined(entry, boundary)
        ops.extend(read_env_dir(directory))
    return ops


def build_layer_ops(layer: BuildLayer, *, boundary: Path | None = None) -> list[EnvOp]:
    """Everything one build layer does to the build environment, in order (§3.9 step 2)."""
    return [*root_dir_ops(layer), *env_dir_ops(layer, boundary=boundary)]


class BuildEnv:
    """The build environment accumulated across buildpacks (§3.9 steps 1-2): starts from the filtered base env;
    each finished buildpack's build layers are applied on top with :meth:`add_layers`."""

    def __init__(self, base: Mapping[str, str]) -> None:
        self._env: dict[str, str] = dict(base)

    def add_layers(self, layers: Iterable[BuildLayer], *, boundary: Path | None = None) -> None:
        """Apply *layers* (one buildpack's build layers, in ``<layer>.toml`` name order) one after the other.

        All file reads happen before anything is applied, so a refused layer leaves the environment unchanged.
        """
        ops: list[EnvOp] = []
        for layer in layers:
            ops.extend(build_layer_ops(layer, boundary=boundary))
        apply_env_ops(self._env, ops)

    def snapshot(self) -> dict[str, str]:
        """A copy of the current environment (what the next buildpack starts from)."""
        return dict(self._env)
