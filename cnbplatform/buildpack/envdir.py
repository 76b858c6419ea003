"""Environment variable directories: ``env/``, ``env.build/``, ``env.launch/``, ``env.launch/<process>/``,
``<build-config>/env/`` and ``<platform>/env/`` (docs/spec-notes.md §3.8, §3.9 step 3).

Reading a directory yields a list of :class:`EnvOp` in file-name order; applying them in that order gives the
spec's semantics. Values are the files' exact bytes (no trimming: a trailing newline is part of the value).

Rules (LC ``env.addEnvDir``):

- variable name = file name up to the first ``.``; the rest of the name is the suffix;
- no suffix → the caller's default action (``override`` for buildpack layers, ``default`` for build-config);
- ``.override`` / ``.default`` / ``.prepend`` / ``.append`` → that action;
- ``VAR.`` (empty suffix) → prepend with ``:`` unless a ``VAR.delim`` file says otherwise;
- ``.delim`` gives the delimiter of ``.prepend``/``.append`` for that variable in the same directory; with no
  delimiter file the values are concatenated as they are, and nothing is inserted when the current value is empty;
- ``.default`` sets the variable only when it is unset or empty;
- any other suffix is ignored; directories and symlinks to directories are skipped.

Deviations from LC, where LC would misbehave: FIFOs, sockets and devices are skipped (LC would block reading a
FIFO), and names that cannot be environment variables (empty, or containing ``=``) are skipped.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cnbplatform.files.common import SpecFileError

Action = Literal["override", "default", "prepend", "append"]

#: The path-list separator of the (Linux) build and run images.
PATH_LIST_SEPARATOR = b":"

#: Variables whose ``<platform>/env`` value is prepended with ``:`` instead of overriding (§3.9 step 3).
PATH_LIKE_VARS = frozenset({"PATH", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "PKG_CONFIG_PATH"})

_ACTIONS: frozenset[str] = frozenset({"override", "default", "prepend", "append"})


@dataclass(frozen=True)
class EnvOp:
    """One file of an env dir: do *action* to variable *name* with *value* (exact bytes).

    *delim* is only meaningful for ``prepend``/``append``: ``None`` means plain concatenation.
    """

    name: str
    action: Action
    value: bytes
    delim: bytes | None = None

    def apply(self, env: MutableMapping[str, str]) -> None:
        """Apply this operation to *env* (values decoded as UTF-8 with surrogateescape, so nothing is lost)."""
        value = _decode(self.value)
        current = env.get(self.name, "")
        delim = _decode(self.delim) if self.delim is not None else ""
        if self.action == "override":
            env[self.name] = value
        elif self.action == "default":
            if current == "":
                env[self.name] = value
        elif self.action == "prepend":
            env[self.name] = value + (delim + current if current else "")
        else:  # append
            env[self.name] = (current + delim if current else "") + value


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _env_files(directory: Path) -> list[tuple[str, bytes]]:
    """``(file name, contents)`` of every regular file (or symlink to one) in *directory*, sorted by name bytes.

    A missing directory has no files. Sub-directories and symlinks to directories are skipped; a dangling
    symlink or an unreadable file is an error (as in LC).
    """
    try:
        with os.scandir(os.fsencode(directory)) as it:
            entries = sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise SpecFileError(directory, f"cannot read env dir: {exc.strerror or exc}") from exc
    out: list[tuple[str, bytes]] = []
    for entry in entries:
        name = os.fsdecode(entry.name)
        full = os.fsdecode(entry.path)
        try:
            mode = os.stat(entry.path).st_mode  # follows symlinks
        except OSError as exc:
            raise SpecFileError(full, f"cannot read env file: {exc.strerror or exc}") from exc
        if not stat.S_ISREG(mode):
            continue
        try:
            with open(entry.path, "rb") as fh:
                out.append((name, fh.read()))
        except OSError as exc:
            raise SpecFileError(full, f"cannot read env file: {exc.strerror or exc}") from exc
    return out


def _usable_name(name: str) -> bool:
    return bool(name) and "=" not in name


def read_env_dir(path: Path | str, *, no_suffix: Literal["override", "default"] = "override") -> list[EnvOp]:
    """The operations of one env dir (§3.8), in file-name order.

    *no_suffix* is the action of a file without a suffix: ``override`` for buildpack layer env dirs (Buildpack API
    ≥ 0.5), ``default`` for ``<build-config>/env`` (§3.9 step 3).
    """
    directory = Path(path)
    files = _env_files(directory)
    contents = dict(files)
    ops: list[EnvOp] = []
    for file_name, value in files:
        name, dot, suffix = file_name.partition(".")
        if not _usable_name(name):
            continue
        delim = contents.get(f"{name}.delim")
        if not dot:
            ops.append(EnvOp(name, no_suffix, value))
        elif suffix == "":
            ops.append(EnvOp(name, "prepend", value, PATH_LIST_SEPARATOR if delim is None else delim))
        elif suffix in ("prepend", "append"):
            ops.append(EnvOp(name, "prepend" if suffix == "prepend" else "append", value, delim))
        elif suffix == "override":
            ops.append(EnvOp(name, "override", value))
        elif suffix == "default":
            ops.append(EnvOp(name, "default", value))
        # ".delim" and unknown suffixes do nothing by themselves
    return ops


def platform_env_ops(path: Path | str) -> list[EnvOp]:
    """The operations of the user's ``<platform>/env`` dir (*path* is that ``env`` dir; §3.9 step 3).

    Here the whole file name is the variable name (no suffixes, as in LC). For ``PATH``, ``LD_LIBRARY_PATH``,
    ``LIBRARY_PATH``, ``CPATH`` and ``PKG_CONFIG_PATH`` the value is prepended with ``:``; others override.
    """
    ops: list[EnvOp] = []
    for name, value in _env_files(Path(path)):
        if not _usable_name(name):
            continue
        if name in PATH_LIKE_VARS:
            ops.append(EnvOp(name, "prepend", value, PATH_LIST_SEPARATOR))
        else:
            ops.append(EnvOp(name, "override", value))
    return ops


def apply_env_ops(env: MutableMapping[str, str], ops: Iterable[EnvOp]) -> None:
    """Apply *ops* to *env* in order (§3.8)."""
    for op in ops:
        op.apply(env)
