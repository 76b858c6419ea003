"""Finding a buildpack or an extension on disk by id and version (docs/spec-notes.md §1.1):
``<dir>/<escaped id>/<version>/buildpack.toml``, the highest version when none is asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from cnbplatform.errors import NotFoundError
from cnbplatform.files.buildpack_toml import BuildpackDescriptor, Descriptor, ExtensionDescriptor, escape_id
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.untrusted import check_module_id, check_version, join

_D = TypeVar("_D", bound=Descriptor)


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key for picking the highest version: numeric fields compare as numbers, a pre-release
    (``1.0.0-rc1``) sorts before its release, build metadata (``+…``) is ignored."""
    core, _, pre = version.removeprefix("v").split("+", 1)[0].partition("-")
    fields = tuple((1, int(p), "") if p.isdigit() else (0, 0, p) for p in core.split("."))
    return (fields, 0 if pre else 1, pre)


def _find(cls: type[_D], modules_dir: Path, module_id: str, version: str) -> _D:
    kind = cls.KIND
    check_module_id(module_id, key=f"{kind} id")
    base = join(Path(modules_dir), escape_id(module_id))
    if not version:
        versions = [d.name for d in base.iterdir() if (d / cls.FILE_NAME).is_file()] if base.is_dir() else []
        if not versions:
            raise NotFoundError(f"{kind} {module_id} not found in {modules_dir}: no {base}/<version>/{cls.FILE_NAME}")
        version = max(versions, key=version_key)
    file = join(base, check_version(version, key=f"{kind} {module_id} version"), cls.FILE_NAME)
    if not file.is_file():
        raise NotFoundError(f"{kind} {module_id}@{version} not found in {modules_dir}: no {file}")
    found = cls.load(file)
    if found.id != module_id:
        raise SpecFileError(file, f"declares id {found.id!r}, expected {module_id!r}", key=f"{kind}.id")
    if found.version != version:
        raise SpecFileError(file, f"declares version {found.version!r}, expected {version!r}", key=f"{kind}.version")
    return found


def find_buildpack(buildpacks_dir: Path, buildpack_id: str, version: str = "") -> BuildpackDescriptor:
    """Load ``<buildpacks_dir>/<escaped id>/<version>/buildpack.toml``. An empty *version* picks the only or highest
    version present. Raises NotFoundError naming ``id@version`` and the directory."""
    return _find(BuildpackDescriptor, buildpacks_dir, buildpack_id, version)


def find_extension(extensions_dir: Path, extension_id: str, version: str = "") -> ExtensionDescriptor:
    """Like :func:`find_buildpack` for ``<extensions_dir>/<escaped id>/<version>/extension.toml``."""
    return _find(ExtensionDescriptor, extensions_dir, extension_id, version)
