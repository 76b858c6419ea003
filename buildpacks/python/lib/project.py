"""cnb/python: the app's Python project files, what installs them, and their fingerprint (Buildpack API 0.12).

:func:`detect` looks for, in this order (the first found decides):

- ``uv.lock`` (with ``pyproject.toml``): ``uv sync --locked``, the project's own tool and lock.
- ``poetry.lock`` (with ``pyproject.toml``): the lock's ``name==version`` pins become uv *constraints*; the
  requirements are the project itself (``-e .``, built by its PEP 517 backend, poetry-core, which turns Poetry's
  dependency syntax into standard metadata) or, for ``package-mode = false``, the names of its main dependencies.
  uv then resolves them, evaluating every marker itself, to exactly the locked versions.
- ``Pipfile.lock``: the ``default`` packages, already resolved, written as a requirements file (version, extras,
  markers, hashes; the lock's sources as ``--index-url``/``--extra-index-url``), as ``pipenv requirements`` does.
- ``requirements.txt``: handed to uv as it is (``-r``, ``-c``, hashes, markers, extras, index options, paths).
- ``pyproject.toml`` with a ``[build-system]``: the app is built and installed editable (``-e .``, PEP 517/660) so
  its code stays in the workspace and an edit does not touch the venv; without one, its ``[project]
  dependencies``.

The fingerprint covers the files that decide the installed set (a ``requirements.txt`` and every file it
includes, the lock and ``pyproject.toml``, ``setup.py``/``setup.cfg`` of a built project): equal fingerprint, the
venv is reused as it is. ``.python-version`` and ``requires-python`` are checked against the build image's Python
by :func:`projectfiles.check_python`. Everything but ``requirements.txt`` is read by :mod:`projectfiles`, imported
only for an app that has such a file (a build compiles the modules it imports: no ``.pyc`` in a read-only
buildpack). Standard library only (Python 3.11 for ``tomllib``).
"""

from __future__ import annotations

import os

try:  # CPython's own sha256 (3.11 and older): hashlib would load OpenSSL first, a few ms of every build
    from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from hashlib import sha256

INCLUDE_OPTIONS = ("-r", "--requirement", "-c", "--constraint")


class ProjectError(Exception):
    """A project file that cannot be used: the message says which and why."""


class Project:
    """What :func:`detect` found (a plain class: ``dataclasses`` would cost every build several ms of imports)."""

    __slots__ = ("constraints", "fingerprint", "requirements", "requires_python", "source")

    def __init__(
        self, source: str, fingerprint: str, requirements: str = "", constraints: str = "", requires_python: str = ""
    ) -> None:
        self.source = source  # uv.lock, poetry.lock, Pipfile.lock, requirements.txt, pyproject.toml or none
        self.fingerprint = fingerprint  # "-" for none
        self.requirements = requirements  # the file for ``uv pip install --exact -r`` (not for uv.lock)
        self.constraints = constraints  # a file for ``-c`` (poetry.lock)
        self.requires_python = requires_python  # a PEP 440 specifier from pyproject.toml or Pipfile.lock


def fingerprint(source: str, files: list[tuple[str, bytes]]) -> str:
    digest = sha256(source.encode() + b"\0")
    for name, data in files:
        digest.update(name.encode() + b"\0" + sha256(data).digest())
    return str(digest.hexdigest())


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def included_files(path: str) -> list[str]:
    """Files named by ``-r``/``-c`` lines of the requirements file *path* (relative to its directory)."""
    found = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            line = raw.split(" #", 1)[0].strip()
            for option in INCLUDE_OPTIONS:
                rest = None
                if line.startswith(option + "="):
                    rest = line[len(option) + 1 :]
                elif line.startswith(option + " ") or (option in ("-r", "-c") and line.startswith(option)):
                    rest = line[len(option) :]
                if rest is not None and rest.strip() and "://" not in rest:
                    found.append(os.path.join(os.path.dirname(path), rest.strip()))
                    break
    return found


def requirements_files(app: str) -> list[tuple[str, bytes]]:
    """``requirements.txt`` and every file it includes, recursively, as (path relative to *app*, bytes)."""
    top = os.path.join(app, "requirements.txt")
    seen: list[str] = []
    pending = [top]
    files = []
    while pending:
        path = os.path.normpath(pending.pop(0))
        if path in seen:
            continue
        seen.append(path)
        if not os.path.isfile(path):
            if path == top:
                raise ProjectError("requirements.txt is not a regular file")
            raise ProjectError(f"{os.path.relpath(path, app)} (included by a requirements file) does not exist")
        files.append((os.path.relpath(path, app), read_bytes(path)))
        pending += included_files(path)
    return files


def write_lines(work: str | os.PathLike[str], name: str, lines: list[str]) -> str:
    path = os.path.join(work, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
    return path


def built_project_files(app: str) -> list[tuple[str, bytes]]:
    return [(name, read_bytes(os.path.join(app, name))) for name in ("pyproject.toml", "setup.py", "setup.cfg")
            if os.path.isfile(os.path.join(app, name))]  # fmt: skip


LOCKS = ("uv.lock", "poetry.lock", "Pipfile.lock", "Pipfile")


def detect(app: str, work: str | os.PathLike[str]) -> Project:
    """What the app at *app* installs (module docstring); files made for uv go to the directory *work*.

    A ``requirements.txt`` (or nothing) without ``pyproject.toml`` or a lock is decided here; anything else by
    :func:`projectfiles.detect`, imported only then (with ``tomllib``, ``json``): a build that reuses the venv of
    such an app compiles and imports no more than it needs."""
    exists = os.path.exists
    if os.path.isfile(os.path.join(app, "pyproject.toml")) or any(exists(os.path.join(app, name)) for name in LOCKS):
        import projectfiles

        return projectfiles.detect(app, work)
    top = os.path.join(app, "requirements.txt")
    if exists(top):
        return Project("requirements.txt", fingerprint("requirements.txt", requirements_files(app)), top)
    return Project("none", "-")
