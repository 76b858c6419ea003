"""The layers the exporter makes, as layer specs (docs/spec-notes.md §6.1, §6.2; §16 items 34-37).

- buildpack layers: ``<layers>/<bp>/<layer>.toml`` of each group buildpack, sorted by name; a layer's directory
  is archived as ``<layers mount>/<bp>/<layer>/…`` with its contents (and the implied ``/layers``,
  ``/layers/<bp>`` parents) owned by ``CNB_USER_ID:CNB_GROUP_ID``; the spec is the one the cache writer uses for
  ``add_dir``, so a ``launch=true, cache=true`` layer is one tar shared by image and cache;
- ``<layers>/sbom/launch`` (and ``sbom/cache`` for the cache) and ``<layers>/config`` the same way;
- the launcher layer: ``/cnb``, ``/cnb/lifecycle`` (0755) and ``/cnb/lifecycle/launcher`` (0755), all ``0:0``;
- the process-types layer: ``/cnb``, ``/cnb/process`` (0755, ``0:0``) and one symlink per process type
  ``/cnb/process/<type>`` → ``/cnb/lifecycle/launcher`` (``0:0``); a type containing one of ``/><:|&\\`` is an
  error.

Tar normalisation (mtime 1980-01-01T00:00:01Z, no uname/gname, sorted entries) is the layer writer's
(:mod:`cnbplatform.oci.layers.tarlayer`). Every tree root is checked to be a real directory, never a symlink: buildpacks
write the layers dir, and the exporter runs on the host.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbplatform.errors import CnbError, PhaseError
from cnbplatform.files.build_toml import StoreToml
from cnbplatform.files.buildpack_toml import escape_id
from cnbplatform.files.group import GroupMember
from cnbplatform.files.layer_toml import LayerToml
from cnbplatform.files.untrusted import check_name
from cnbplatform.launcher import LAUNCHER_PATH, LAUNCHER_SCRIPT, LIFECYCLE_DIR, PROCESS_DIR
from cnbplatform.lifecycle.build.layers import RESERVED_LAYER_NAMES, checked_file
from cnbplatform.lifecycle.common import EXIT_EXPORT
from cnbplatform.oci.layers.spec import Entry, LayerSpec, TreeSource

PHASE = "export"
#: Characters a process type must not contain (docs/spec-notes.md §6.1 item 7).
FORBIDDEN_TYPE_CHARS = "/><:|&\\"


def export_error(action: str, reason: str = "") -> PhaseError:
    return PhaseError(PHASE, EXIT_EXPORT, action, reason)


def image_path(*parts: str) -> str:
    """An absolute path in the image from mount paths and names (``("/layers", "bp", "l")`` -> ``/layers/bp/l``)."""
    return "/" + "/".join(p.strip("/") for p in parts if p.strip("/"))


def real_dir(path: Path) -> bool:
    """True when *path* is a directory itself (not a symlink to one)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def optional_dir(path: Path, what: str) -> Path | None:
    """*path* if it is a real directory, None if it does not exist; an error if it is anything else."""
    if not os.path.lexists(path):
        return None
    if not real_dir(path):
        raise export_error(f"read {what}", f"{path} is not a directory")
    return path


@dataclass(frozen=True)
class BuildpackLayer:
    """A layer a group buildpack declared: its toml and its directory (None: no local contents)."""

    buildpack: GroupMember
    name: str
    toml: LayerToml
    dir: Path | None

    @property
    def key(self) -> str:
        return f"{self.buildpack.id}:{self.name}"

    @property
    def created_by(self) -> str:
        """The history ``created_by`` of the layer (§6.2)."""
        return f"Layer: '{self.name}', Created by buildpack: {self.buildpack.id}@{self.buildpack.version}"


@dataclass(frozen=True)
class BuildpackDir:
    """What the exporter reads from ``<layers>/<bp>``: the layers (sorted by name) and ``store.toml``."""

    buildpack: GroupMember
    layers: tuple[BuildpackLayer, ...]
    store: dict[str, Any] | None


def _toml_names(bp_dir: Path) -> list[str]:
    names = []
    with os.scandir(bp_dir) as it:
        for entry in it:
            if entry.name.endswith(".toml") and not entry.is_dir(follow_symlinks=False):
                name = entry.name[: -len(".toml")]
                if name and name not in RESERVED_LAYER_NAMES:
                    names.append(name)
    return sorted(names, key=os.fsencode)


def read_buildpack_dir(layers_dir: Path, member: GroupMember) -> BuildpackDir:
    """Read ``<layers>/<bp>``: layer tomls that fail to parse are an export error (§6.7)."""
    bp_dir = layers_dir / escape_id(member.id)
    action = f"read the layers of {member}"
    if optional_dir(bp_dir, f"the layers of {member}") is None:
        return BuildpackDir(member, (), None)
    layers: list[BuildpackLayer] = []
    try:
        for name in _toml_names(bp_dir):
            toml_path = bp_dir / f"{name}.toml"
            check_name(name, file=bp_dir, what="a layer name")
            checked_file(toml_path, layers_dir)
            toml = LayerToml.load(toml_path)
            layer_dir = optional_dir(bp_dir / name, f"layer '{member.id}:{name}'")
            layers.append(BuildpackLayer(member, name, toml, layer_dir))
        store = None
        if checked_file(bp_dir / "store.toml", layers_dir):
            store = StoreToml.load(bp_dir / "store.toml").metadata
    except PhaseError:
        raise
    except CnbError as exc:
        raise export_error(action, exc.message) from exc
    except OSError as exc:
        raise export_error(action, f"{bp_dir}: {exc.strerror or exc}") from exc
    return BuildpackDir(member, tuple(layers), store)


def tree_spec(source: Path, prefix: str, *, uid: int, gid: int) -> LayerSpec:
    """A host directory archived under *prefix*, everything (implied parents too) owned by ``uid:gid``.

    Exactly the spec :meth:`LayerCache.create_layer` builds for the cache's ``add_dir`` (same bytes, same key).
    """
    return LayerSpec(trees=(TreeSource(source, prefix=prefix),), uid=uid, gid=gid)


def buildpack_layer_spec(layer: BuildpackLayer, layers_mount: str, *, uid: int, gid: int) -> LayerSpec:
    assert layer.dir is not None
    prefix = image_path(layers_mount, escape_id(layer.buildpack.id), layer.name)
    return tree_spec(layer.dir, prefix, uid=uid, gid=gid)


def launcher_spec(launcher_file: Path | None) -> LayerSpec:
    """``/cnb/lifecycle/launcher`` (0755, ``0:0``): the sh launcher, or the builder's own launcher binary."""
    if launcher_file is None:
        launcher = Entry.file(LAUNCHER_PATH, LAUNCHER_SCRIPT, mode=0o755, uid=0, gid=0)
    else:
        launcher = Entry.host_file(LAUNCHER_PATH, launcher_file, mode=0o755, uid=0, gid=0)
    dirs = (Entry.directory("/cnb", uid=0, gid=0), Entry.directory(LIFECYCLE_DIR, uid=0, gid=0))
    return LayerSpec(entries=(*dirs, launcher), uid=0, gid=0)


def check_process_type(process_type: str) -> None:
    """A process type becomes a file name in ``/cnb/process``: refuse the characters §6.1 item 7 names."""
    bad = sorted({c for c in process_type if c in FORBIDDEN_TYPE_CHARS})
    if not process_type or bad or process_type in (".", ".."):
        reason = f"it contains {''.join(bad)!r}" if bad else "not a valid file name"
        raise export_error(f"create the process-types layer: invalid process type {process_type!r}", reason)


def process_types_spec(process_types: Sequence[str]) -> LayerSpec:
    """``/cnb/process/<type>`` symlinks to the launcher, one per process type, all ``0:0``."""
    for process_type in process_types:
        check_process_type(process_type)
    dirs = (Entry.directory("/cnb", uid=0, gid=0), Entry.directory(PROCESS_DIR, uid=0, gid=0))
    links = tuple(Entry.symlink(f"{PROCESS_DIR}/{t}", LAUNCHER_PATH, uid=0, gid=0) for t in sorted(set(process_types)))
    return LayerSpec(entries=(*dirs, *links), uid=0, gid=0)
