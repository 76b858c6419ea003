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
by :func:`check_python`. Standard library only (Python 3.11 for ``tomllib``).
"""

from __future__ import annotations

import os
import sys

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


def load_toml(path: str) -> dict[str, object]:
    import tomllib

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(f"{os.path.basename(path)} is not valid TOML: {exc}") from exc


def table(data: object, *keys: str) -> dict[str, object]:
    for key in keys:
        data = data.get(key, {}) if isinstance(data, dict) else {}
    return data if isinstance(data, dict) else {}


def write_lines(work: str | os.PathLike[str], name: str, lines: list[str]) -> str:
    path = os.path.join(work, name)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("".join(f"{line}\n" for line in lines))
    return path


def built_project_files(app: str) -> list[tuple[str, bytes]]:
    return [(name, read_bytes(os.path.join(app, name))) for name in ("pyproject.toml", "setup.py", "setup.cfg")
            if os.path.isfile(os.path.join(app, name))]  # fmt: skip


def from_uv_lock(app: str, pyproject: dict[str, object]) -> Project:
    files = [("uv.lock", read_bytes(os.path.join(app, "uv.lock"))), *built_project_files(app)]
    requires = table(pyproject, "project").get("requires-python", "")
    return Project("uv.lock", fingerprint("uv.lock", files), requires_python=str(requires or ""))


def from_poetry_lock(app: str, work: str | os.PathLike[str], pyproject: dict[str, object]) -> Project:
    lock = load_toml(os.path.join(app, "poetry.lock"))
    packages = lock.get("package", [])
    if not isinstance(packages, list):
        raise ProjectError("poetry.lock has no [[package]] entries")
    versions: dict[str, list[str]] = {}
    for package in packages:
        if not isinstance(package, dict) or not package.get("name") or not package.get("version"):
            raise ProjectError("poetry.lock has a [[package]] without a name or version")
        if table(package, "source").get("type") in ("git", "directory", "file", "url"):
            continue  # not from an index: no pin uv could match; the requirement names it
        versions.setdefault(str(package["name"]), []).append(str(package["version"]))
    pins = [f"{name}=={found[0]}" for name, found in sorted(versions.items()) if len(found) == 1]
    poetry = table(pyproject, "tool", "poetry")
    package_mode = poetry.get("package-mode", True) is not False
    if package_mode and table(pyproject, "build-system"):
        requirements = [f"-e {app}"]
    else:
        requirements = [str(dep) for dep in table(pyproject, "project").get("dependencies", []) or []]  # type: ignore[union-attr]
        for name, spec in table(poetry, "dependencies").items():
            if name.lower() == "python" or (isinstance(spec, dict) and spec.get("optional")):
                continue
            extras = spec.get("extras", []) if isinstance(spec, dict) else []
            marker = spec.get("markers", "") if isinstance(spec, dict) else ""
            line = name + (f"[{','.join(map(str, extras))}]" if extras else "")
            requirements.append(line + (f" ; {marker}" if marker else ""))
    files = [("poetry.lock", read_bytes(os.path.join(app, "poetry.lock"))), *built_project_files(app)]
    requires = table(pyproject, "project").get("requires-python", "")
    chosen = write_lines(work, "requirements.txt", requirements)
    pinned = write_lines(work, "constraints.txt", pins)
    return Project("poetry.lock", fingerprint("poetry.lock", files), chosen, pinned, str(requires or ""))


def from_pipfile_lock(app: str, work: str | os.PathLike[str]) -> Project:
    import json

    data = read_bytes(os.path.join(app, "Pipfile.lock"))
    try:
        lock = json.loads(data)
    except ValueError as exc:
        raise ProjectError(f"Pipfile.lock is not valid JSON: {exc}") from exc
    meta = table(lock, "_meta")
    lines = []
    for index, source in enumerate(meta.get("sources", []) or []):  # type: ignore[union-attr]
        if isinstance(source, dict) and source.get("url"):
            lines.append(f"{'--index-url' if index == 0 else '--extra-index-url'} {source['url']}")
    for name, entry in sorted(table(lock, "default").items()):
        if not isinstance(entry, dict):
            raise ProjectError(f"Pipfile.lock: the entry of {name} is not a table")
        extras = entry.get("extras") or []
        head = name + (f"[{','.join(extras)}]" if extras else "")
        if entry.get("path"):
            line = ("-e " if entry.get("editable") else "") + os.path.normpath(os.path.join(app, str(entry["path"])))
        elif entry.get("git"):
            ref = f"@{entry['ref']}" if entry.get("ref") else ""
            line = f"{head} @ git+{entry['git']}{ref}"
        elif entry.get("file"):
            line = f"{head} @ {entry['file']}"
        elif entry.get("version"):
            line = head + str(entry["version"])
        else:
            raise ProjectError(f"Pipfile.lock: {name} has no version, path, git or file")
        if entry.get("markers"):
            line += f" ; {entry['markers']}"
        line += "".join(f" --hash={digest}" for digest in entry.get("hashes", []) or [])
        lines.append(line)
    requires = table(meta, "requires").get("python_full_version") or table(meta, "requires").get("python_version")
    specifier = f"=={requires}" if requires and "." in str(requires) else ""
    if specifier and str(requires).count(".") == 1:
        specifier += ".*"
    return Project("Pipfile.lock", fingerprint("Pipfile.lock", [("Pipfile.lock", data)]),
                   write_lines(work, "requirements.txt", lines), requires_python=specifier)  # fmt: skip


def from_pyproject(app: str, work: str | os.PathLike[str], pyproject: dict[str, object]) -> Project:
    project = table(pyproject, "project")
    requires = str(project.get("requires-python", "") or "")
    if table(pyproject, "build-system"):
        files = built_project_files(app)
        return Project("pyproject.toml", fingerprint("pyproject.toml[build-system]", files),
                       write_lines(work, "requirements.txt", [f"-e {app}"]), requires_python=requires)  # fmt: skip
    dependencies = project.get("dependencies", [])
    if "dependencies" in (project.get("dynamic", []) or []) or not isinstance(dependencies, list):  # type: ignore[operator]
        raise ProjectError("pyproject.toml has dynamic dependencies but no [build-system] to compute them")
    if not dependencies:
        return Project("none", "-", requires_python=requires)
    text = [str(dep) for dep in dependencies]
    sha = fingerprint("pyproject.toml", [("pyproject.toml[project.dependencies]", "\n".join(text).encode())])
    return Project("pyproject.toml", sha, write_lines(work, "requirements.txt", text), requires_python=requires)


def detect(app: str, work: str | os.PathLike[str]) -> Project:
    """What the app at *app* installs (module docstring); files made for uv go to the directory *work*."""
    exists = os.path.exists
    pyproject_path = os.path.join(app, "pyproject.toml")
    pyproject = load_toml(pyproject_path) if os.path.isfile(pyproject_path) else {}
    for lock in ("uv.lock", "poetry.lock"):
        if exists(os.path.join(app, lock)) and not pyproject:
            raise ProjectError(f"{lock} needs the pyproject.toml it was made from")
    if exists(os.path.join(app, "uv.lock")):
        return from_uv_lock(app, pyproject)
    if exists(os.path.join(app, "poetry.lock")):
        return from_poetry_lock(app, work, pyproject)
    if exists(os.path.join(app, "Pipfile.lock")):
        return from_pipfile_lock(app, work)
    if exists(os.path.join(app, "Pipfile")):
        raise ProjectError("Pipfile without Pipfile.lock: run `pipenv lock` and add Pipfile.lock to the app")
    if exists(os.path.join(app, "requirements.txt")):
        sha = fingerprint("requirements.txt", requirements_files(app))
        requires = str(table(pyproject, "project").get("requires-python", "") or "")
        return Project("requirements.txt", sha, os.path.join(app, "requirements.txt"), requires_python=requires)
    if pyproject:
        return from_pyproject(app, work, pyproject)
    return Project("none", "-")


def python_version_file(app: str) -> str:
    """The version ``.python-version`` asks for (its first line that is not a comment), or ""."""
    try:
        with open(os.path.join(app, ".python-version"), encoding="utf-8") as handle:
            lines = [line.strip() for line in handle if line.strip() and not line.lstrip().startswith("#")]
    except FileNotFoundError:
        return ""
    return lines[0] if lines else ""


def check_python(app: str, requires_python: str, version: tuple[int, int, int]) -> None:
    """Raise ProjectError when ``.python-version`` or *requires_python* excludes the build image's *version*.

    ``.python-version`` (as pyenv and uv write it: ``3.12``, ``3.12.1``, ``cpython-3.12``) must be a prefix of
    the version; ``requires-python`` is evaluated by ``packaging`` (the build image's pip's own copy)."""
    have = ".".join(map(str, version))
    wanted = python_version_file(app)
    if wanted:
        number = wanted.removeprefix("cpython").lstrip("-@")
        if not number or not all(part.isdigit() for part in number.split(".")):
            raise ProjectError(f".python-version asks for {wanted!r}, which is not a CPython version number")
        if have.split(".")[: len(number.split("."))] != number.split("."):
            raise ProjectError(
                f".python-version asks for Python {number}, but the build image has Python {have}; "
                "use a builder with that Python or change .python-version"
            )
    if requires_python:
        if sys.flags.no_site:  # bin/build starts python3 with -S: the image's pip is in its site-packages
            import site

            site.main()
        try:
            from pip._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet
        except ImportError:
            return  # no pip in the build image: uv checks requires-python where it builds the project
        try:
            ok = SpecifierSet(requires_python).contains(have, prereleases=True)
        except InvalidSpecifier as exc:
            raise ProjectError(f"requires-python {requires_python!r} is not a valid specifier") from exc
        if not ok:
            raise ProjectError(
                f"the project requires Python {requires_python}, but the build image has Python {have}; "
                "use a builder with a matching Python or change requires-python"
            )
