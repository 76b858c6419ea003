"""cnb/python: which requirements the app has, and their fingerprint (used by bin/build; CNB-SPEC §3.3, §3.4).

Usage: ``python3 requirements.py APP_DIR WORK_DIR`` prints one line ``SOURCE SHA256 FILE``; ``build.py`` calls
:func:`detect`, which returns the same three values:

- ``requirements.txt`` (wins when both exist): FILE is the app's own file, so pip resolves relative ``-r``/``-c``
  includes as usual; the fingerprint covers it and every file it includes, recursively.
- ``pyproject.toml``: the ``[project] dependencies`` (PEP 621) written one per line to ``WORK_DIR/requirements.txt``;
  the app itself is not installed (it runs from the workspace, so editing it never invalidates the venv).
- ``none``: nothing to install (SHA256 and FILE are ``-``).

The fingerprint goes into the venv layer's metadata: an equal fingerprint means the venv is reused without pip.
Standard library only; runs on the build image's ``python3``.
"""

from __future__ import annotations

import os
import sys

try:  # CPython's own sha256 (3.11 and older): hashlib would load OpenSSL first, a few ms of every build
    from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from hashlib import sha256

INCLUDE_OPTIONS = ("-r", "--requirement", "-c", "--constraint")


def warn(message: str) -> None:
    """Warnings go to stderr: stdout carries the one result line."""
    print(f"cnb/python: warning: {message}", file=sys.stderr)


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
                if rest is not None and rest.strip():
                    found.append(os.path.join(os.path.dirname(path), rest.strip()))
                    break
    return found


def fingerprint(source: str, files: list[tuple[str, bytes]]) -> str:
    digest = sha256(source.encode() + b"\0")
    for name, data in files:
        digest.update(name.encode() + b"\0" + sha256(data).digest())
    return str(digest.hexdigest())


def from_requirements_txt(app: str) -> tuple[str, str]:
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
                raise SystemExit("cnb/python: requirements.txt is not a regular file")
            warn(f"{os.path.relpath(path, app)} (included by a requirements file) is missing")
            continue
        with open(path, "rb") as handle:
            files.append((os.path.relpath(path, app), handle.read()))
        pending += included_files(path)
    return fingerprint("requirements.txt", files), top


def from_pyproject(app: str, work: str) -> tuple[str, str] | None:
    try:
        import tomllib
    except ImportError as exc:  # Python < 3.11
        raise SystemExit(
            "cnb/python: reading pyproject.toml needs Python 3.11 (tomllib); add a requirements.txt"
        ) from exc
    with open(os.path.join(app, "pyproject.toml"), "rb") as handle:
        try:
            project = tomllib.load(handle).get("project", {})
        except tomllib.TOMLDecodeError as exc:
            raise SystemExit(f"cnb/python: pyproject.toml is not valid TOML: {exc}") from exc
    dependencies = project.get("dependencies", [])
    if "dependencies" in project.get("dynamic", []) or not isinstance(dependencies, list):
        warn("pyproject.toml has dynamic dependencies; add a requirements.txt to install them")
        return None
    if not dependencies:
        return None
    text = "".join(f"{dep}\n" for dep in dependencies if isinstance(dep, str))
    out = os.path.join(work, "requirements.txt")
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(text)
    return fingerprint("pyproject.toml", [("pyproject.toml[project.dependencies]", text.encode())]), out


def detect(app: str, work: str) -> tuple[str, str, str]:
    """(source, fingerprint, requirements file) of the app at *app*; ``("none", "-", "-")`` without requirements."""
    if os.path.exists(os.path.join(app, "requirements.txt")):
        sha, path = from_requirements_txt(app)
        return "requirements.txt", sha, path
    if os.path.isfile(os.path.join(app, "pyproject.toml")):
        found = from_pyproject(app, work)
        if found is not None:
            return "pyproject.toml", found[0], found[1]
    return "none", "-", "-"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: requirements.py APP_DIR WORK_DIR", file=sys.stderr)
        return 2
    print(" ".join(detect(argv[1], argv[2])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
