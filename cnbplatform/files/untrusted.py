"""Paths made from untrusted text: the one place that checks them (docs/design.md, decision 14).

App source and its ``project.toml``, buildpacks and their descriptors and outputs, and image labels are written by
someone else. Wherever their text becomes part of a host path (a buildpack's ``<escaped id>/<version>`` dir, a
layer name, a process type, an SBOM file name, a ``project.toml`` uri) the value is checked here first, and the
path is made by :func:`join`, which also refuses a result that leads outside its root through a symlink.

A refused value is a :class:`UntrustedValueError`: one line naming the file, the key and the value, raised before
anything on disk changes. The rules:

* a **name** (a version, a layer name, a process type, an SBOM file name): one path segment; not empty, not
  ``.`` or ``..``, no ``/``, no NUL, valid UTF-8;
* a **module id** (buildpack or extension, https://github.com/buildpacks/spec/blob/main/buildpack.md): letters,
  digits, ``.``, ``/``, ``-`` and ``_`` (the spec lists all but ``_``; the Go lifecycle and the spec's own fixtures
  use it), no empty, ``.`` or ``..`` segment;
* a **relative path** (a ``project.toml`` uri, a slice glob's base): not absolute, no ``..`` segment, no NUL, valid
  UTF-8.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from cnbplatform.files.common import SpecFileError

_ID_RE = re.compile(r"^[A-Za-z0-9._/-]+$")


class UntrustedValueError(SpecFileError):
    """A value from an untrusted file that would make an unsafe path (absolute, ``..``, NUL, a separator, not
    UTF-8) or a path that leads outside its root."""


def _common(value: str, file: str | Path, key: str) -> None:
    if "\0" in value:
        raise UntrustedValueError(file, f"{value!r} contains a NUL byte", key=key)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UntrustedValueError(file, f"{value!r} is not valid UTF-8", key=key) from None


def check_name(value: str, *, file: str | Path = "", key: str = "", what: str = "a name") -> str:
    """*value* as one path segment (a version, layer name, process type, SBOM file name); returned unchanged."""
    _common(value, file, key)
    if not value:
        raise UntrustedValueError(file, f"{what} must not be empty", key=key)
    if value in (".", ".."):
        raise UntrustedValueError(file, f"{value!r} is not allowed as {what}", key=key)
    if "/" in value:
        why = "is absolute" if value.startswith("/") else "contains '/'"
        raise UntrustedValueError(file, f"{value!r} {why}; {what} is one path segment", key=key)
    return value


def is_name(value: str) -> bool:
    """Whether :func:`check_name` accepts *value* (for readers that skip a bad entry with a warning, as the Go
    lifecycle's restorer does with a layer name from an image label)."""
    try:
        check_name(value)
    except UntrustedValueError:
        return False
    return True


def check_version(value: str, *, file: str | Path = "", key: str = "version") -> str:
    """A buildpack or extension version: a name (it is a directory under ``<escaped id>/``)."""
    return check_name(value, file=file, key=key, what="a version")


def check_module_id(value: str, *, file: str | Path = "", key: str = "id") -> str:
    """A buildpack or extension id: letters, digits, ``.``, ``/``, ``-``, ``_``; no empty, ``.`` or ``..`` segment."""
    _common(value, file, key)
    if not _ID_RE.match(value):
        raise UntrustedValueError(file, f"{value!r}: may only contain letters, digits, '.', '/', '-' and '_'", key=key)
    if any(part in ("", ".", "..") for part in value.split("/")):
        raise UntrustedValueError(file, f"{value!r}: an empty, '.' or '..' segment is not allowed", key=key)
    return value


def check_relative(value: str, *, file: str | Path = "", key: str = "", what: str = "a path") -> str:
    """A relative path that stays below its root: not absolute, no ``..`` segment, no NUL, valid UTF-8."""
    _common(value, file, key)
    if not value:
        raise UntrustedValueError(file, f"{what} must not be empty", key=key)
    if value.startswith("/"):
        raise UntrustedValueError(file, f"{value!r} is absolute; {what} must be relative", key=key)
    if ".." in value.split("/"):
        raise UntrustedValueError(file, f"{value!r} contains '..'; {what} must stay inside its directory", key=key)
    return value


def confined(path: Path, root: Path, *, file: str | Path = "", key: str = "") -> Path:
    """*path* when it (following every symlink that exists) resolves to *root* or below; else refused."""
    real = Path(os.path.realpath(path))
    top = Path(os.path.realpath(root))
    if real != top and not real.is_relative_to(top):
        where = f"{path} " if str(file) else ""
        raise UntrustedValueError(file or path, f"{where}leads outside {root} (to {real}); refusing it", key=key)
    return path


def join(root: Path, *parts: str, file: str | Path = "", key: str = "") -> Path:
    """``root / part / …`` for untrusted relative *parts*: each is checked with :func:`check_relative` and the
    result must resolve inside *root* (a symlink on the way that leads out is refused)."""
    for part in parts:
        check_relative(part, file=file, key=key)
    return confined(Path(root).joinpath(*parts), Path(root), file=file, key=key)
