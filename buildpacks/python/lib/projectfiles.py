"""cnb/python: the project files :mod:`project` leaves to this module, the ones that need parsing: ``pyproject.toml``
(``tomllib``), ``uv.lock``, ``poetry.lock``, ``Pipfile.lock`` (``json``), and the Python version checks (see
:mod:`project` for what each means). Imported by a build only when the app has one of them, or installs. Standard
library only (Python 3.11 for ``tomllib``).
"""

from __future__ import annotations

import os
import sys

from project import Project, ProjectError, built_project_files, fingerprint, read_bytes, requirements_files, write_lines


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
    """What the app at *app* installs (:mod:`project`'s docstring); files made for uv go to the directory *work*."""
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
