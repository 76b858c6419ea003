"""What the builder does with a buildpack's layers dir after ``bin/build`` (docs/spec-notes.md §3.3, §3.4, §3.10;
§16 items 21, 24, 25).

* :func:`prepare_buildpack_dir` creates ``<layers>/<escaped id>`` before ``bin/build`` starts (item 21).
* :func:`process_layers` decodes every ``<layer>.toml`` (a ``launch``/``build``/``cache`` key outside ``[types]``
  fails the build, item 24) and renames the directory of each layer whose three types are false to
  ``<layer>.ignore`` (item 25). Layer names ``build``, ``launch`` and ``store`` are reserved for the buildpack's
  own ``build.toml``, ``launch.toml`` and ``store.toml``: a directory with one of those names fails the build.

Everything here reads or moves files that untrusted buildpack code wrote, as the lifecycle's user (possibly root)
on the host, so a file read here must be a regular file that stays inside the layers dir after following
symlinks (:func:`checked_file`), and nothing follows a symlink to create, chown or delete.

Failures are :class:`~cnbplatform.errors.PhaseError` with exit code 52 (docs/spec-notes.md §1.3: a build-phase error
other than a failing ``bin/build``; the Go lifecycle also answers bad buildpack output files with 52). The message
names the buildpack, the file and the key.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.buildpack.layers_env import check_confined
from cnbplatform.errors import CnbError, PhaseError
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.layer_toml import LayerToml, LayerTypes
from cnbplatform.files.untrusted import check_name
from cnbplatform.lifecycle.common import EXIT_BUILD_OTHER

PHASE = "build"
RESERVED_LAYER_NAMES = ("build", "launch", "store")
IGNORE_SUFFIX = ".ignore"


@dataclass(frozen=True)
class LayerInfo:
    """A layer a buildpack declared (it has a ``<layer>.toml``). *path* is the layer's host directory as it is
    after processing: ``<layer>.ignore`` for an ignored layer. The directory need not exist (a launch layer may be
    reused from the previous image)."""

    name: str
    types: LayerTypes
    path: Path
    toml: LayerToml

    @property
    def ignored(self) -> bool:
        return not self.types.any


def phase_error(action: str, reason: str, code: int = EXIT_BUILD_OTHER) -> PhaseError:
    return PhaseError(PHASE, code, action, reason)


def checked_file(path: Path, boundary: Path) -> bool:
    """False when *path* does not exist; True when it is a regular file that (following symlinks) stays inside
    *boundary*; SpecFileError otherwise (a symlink leading out, a directory, a FIFO, a dangling symlink)."""
    if not os.path.lexists(path):
        return False
    check_confined(path, boundary)
    if not path.is_file():
        raise SpecFileError(path, "not a regular file")
    return True


def remove_path(path: Path) -> None:
    """Remove *path* whatever it is, never following a symlink."""
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def prepare_buildpack_dir(layers_dir: Path, escaped_id: str, *, buildpack: str) -> Path:
    """Create ``<layers>/<escaped id>`` if needed (§3.3) and return it.

    When the lifecycle runs as root the directory gets the owner of ``<layers>`` itself: the platform hands the
    layers dir to whoever the sandbox runs buildpacks as (``CNB_USER_ID`` for a container sandbox; the invoking
    user for bwrap, whose user namespace maps the buildpack user to it, so a directory owned by ``CNB_USER_ID``
    would not be writable there).
    """
    path = layers_dir / escaped_id
    action = f"create the layers dir of {buildpack}"
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        raise phase_error(action, f"{path} exists and is not a directory")
    try:
        path.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            owner = layers_dir.stat()
            mine = path.lstat()
            if (mine.st_uid, mine.st_gid) != (owner.st_uid, owner.st_gid):
                os.lchown(path, owner.st_uid, owner.st_gid)
    except OSError as exc:
        raise phase_error(action, f"{path}: {exc.strerror or exc}") from exc
    return path


def _layer_toml_names(bp_dir: Path) -> list[str]:
    """Layer names of the ``<layer>.toml`` files in *bp_dir* (directories named ``*.toml`` are not tomls)."""
    names = []
    for entry in os.scandir(bp_dir):
        if not entry.name.endswith(".toml") or entry.is_dir():
            continue
        name = entry.name[: -len(".toml")]
        if name and name not in RESERVED_LAYER_NAMES:
            names.append(name)
    return sorted(names)


def process_layers(bp_dir: Path, boundary: Path, *, buildpack: str) -> list[LayerInfo]:
    """Decode the layer tomls of one buildpack (sorted by name) and set unused layers aside (§3.4).

    *boundary* is the host layers dir: layer tomls must not lead outside it.
    """
    action = f"process the layers of {buildpack}"
    if bp_dir.is_symlink() or not bp_dir.is_dir():
        raise phase_error(action, f"{bp_dir} is no longer a directory")
    for reserved in RESERVED_LAYER_NAMES:
        if (bp_dir / reserved).is_dir():
            raise phase_error(
                action, f"{bp_dir / reserved}: layer name {reserved!r} is reserved (build, launch, store)"
            )
    try:
        names = _layer_toml_names(bp_dir)
    except OSError as exc:
        raise phase_error(action, f"{bp_dir}: {exc.strerror or exc}") from exc
    layers: list[LayerInfo] = []
    for name in names:
        toml_path = bp_dir / f"{name}.toml"
        try:
            check_name(name, file=bp_dir, what="a layer name")
            checked_file(toml_path, boundary)
            toml = LayerToml.load(toml_path)
        except CnbError as exc:
            raise phase_error(action, exc.message) from exc
        path = bp_dir / name
        if not toml.types.any:
            path = _set_aside(path, action)
        layers.append(LayerInfo(name, toml.types, path, toml))
    return layers


def _set_aside(path: Path, action: str) -> Path:
    """Rename the layer dir to ``<layer>.ignore`` (replacing an old one); a missing dir is fine (§3.4)."""
    target = path.with_name(path.name + IGNORE_SUFFIX)
    try:
        if os.path.lexists(path):
            if os.path.lexists(target):
                remove_path(target)
            os.rename(path, target)
    except OSError as exc:
        raise phase_error(action, f"rename {path} to {target.name}: {exc.strerror or exc}") from exc
    return target
