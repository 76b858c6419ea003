"""cnb/python: install wheels into the venv and uninstall distributions from it without pip (bin/build).

Installing follows the PyPA "binary distribution format" (PEP 427) and "recording installed projects" (PEP 376)
specifications, as pip does it:

1. the archive's files go below purelib (``Root-Is-Purelib: true``) or platlib; ``<name>-<version>.data/<key>/``
   goes to the scheme path *key* (``purelib``, ``platlib``, ``scripts``, ``data``; ``headers`` is left to pip), and a
   script there starting with ``#!python`` gets the venv's python in its shebang; executable bits are kept;
2. each ``console_scripts`` / ``gui_scripts`` entry point becomes an executable ``bin/<name>`` that imports the
   object and calls it, run by the venv's python;
3. ``INSTALLER`` names us, ``REQUESTED`` marks the top-level requirements, and ``RECORD`` is rewritten to list every
   installed file with its sha256 and size (byte code without, as pip does);
4. every ``.py`` below the lib directories is compiled to hash-checked byte code (``__pycache__/*.cpython-XY.pyc``,
   what pip writes with ``SOURCE_DATE_EPOCH`` set) by fresh interpreters on every core, so the same wheels give the
   same bytes whatever else the build did.

Uninstalling removes what ``RECORD`` lists plus the byte code of each listed ``.py``, the ``.dist-info``
directory and the directories this leaves empty. What this module does not handle raises
:class:`resolve.Unsupported`, before anything is written, so that pip does the work instead.
"""

from __future__ import annotations

import base64
import configparser
import csv
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass, field
from importlib.util import cache_from_source

from resolve import Unsupported, canonical, parse_headers

INSTALLER = "cnb-python\n"
DATA_KEYS = ("purelib", "platlib", "scripts", "data")


@dataclass(frozen=True)
class Dist:
    """An installed distribution: its metadata name and version, and its ``.dist-info`` directory."""

    name: str
    version: str
    path: str


def scheme(venv: str) -> dict[str, str]:
    """The install paths of the venv at *venv* (what its own python's sysconfig says)."""
    name = "venv" if "venv" in sysconfig.get_scheme_names() else "posix_prefix"
    base = {"base": venv, "platbase": venv, "installed_base": venv, "installed_platbase": venv}
    paths = sysconfig.get_paths(name, vars=base)
    return {key: paths[key] for key in DATA_KEYS}


def installed(paths: dict[str, str]) -> dict[str, Dist]:
    """Canonical name -> the distributions below purelib and platlib (the first of a name wins, as for imports);
    legacy (egg) installations, which pip made for some requirement, raise Unsupported."""
    found: dict[str, Dist] = {}
    for directory in dict.fromkeys((paths["purelib"], paths["platlib"])):
        try:
            entries = sorted(os.listdir(directory))
        except FileNotFoundError:
            continue
        for entry in entries:
            if entry.endswith((".egg-info", ".egg-link", ".egg")):
                raise Unsupported(f"{entry} is not a .dist-info installation")
            meta = os.path.join(directory, entry, "METADATA")
            if not entry.endswith(".dist-info") or not os.path.isfile(meta):
                continue
            with open(meta, encoding="utf-8", errors="replace") as handle:
                values = {k.lower(): v for k, v in parse_headers(handle.read())}
            name = values.get("name", "")
            if name and canonical(name) not in found:
                found[canonical(name)] = Dist(name, values.get("version", ""), os.path.join(directory, entry))
    return found


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def inside(root: str, path: str) -> bool:
    return os.path.commonpath([root, path]) == root


@dataclass
class Pending:
    """A wheel whose files are in place; its RECORD is written once its byte code is."""

    root: str
    dist_info: str
    rows: dict[str, tuple[str, str]] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)


class Installer:
    """Installs wheels into the venv at *venv* for the interpreter *python* (the venv's ``bin/python``)."""

    def __init__(self, venv: str, python: str) -> None:
        self.venv = venv
        self.paths = scheme(venv)
        self.python = python
        if len(python) > 120 or any(c.isspace() for c in python):
            raise Unsupported(f"a shebang for {python}")
        self.umask = os.umask(0)
        os.umask(self.umask)

    def _layout(self, wheel: zipfile.ZipFile, path: str) -> tuple[str, str, dict[str, str]]:
        """(dist-info dir, root dir, archive name -> target path), checking what this installer supports."""
        infos = {n.split("/", 1)[0] for n in wheel.namelist() if n.split("/", 1)[0].endswith(".dist-info")}
        if len(infos) != 1:
            raise Unsupported(f"{os.path.basename(path)} has {len(infos)} .dist-info directories")
        (dist_info,) = infos
        values = {k.lower(): v for k, v in parse_headers(wheel.read(f"{dist_info}/WHEEL").decode("utf-8"))}
        if values.get("wheel-version", "").split(".")[0] != "1":
            raise Unsupported(f"{os.path.basename(path)}: Wheel-Version {values.get('wheel-version')}")
        purelib = values.get("root-is-purelib", "").lower() == "true"
        root = self.paths["purelib" if purelib else "platlib"]
        data_dir = dist_info[: -len(".dist-info")] + ".data"
        targets: dict[str, str] = {}
        for name in wheel.namelist():
            if name.endswith("/"):
                continue
            base, rel = root, name
            if name.startswith(data_dir + "/"):
                key, _, rel = name[len(data_dir) + 1 :].partition("/")
                if key not in DATA_KEYS or not rel:
                    raise Unsupported(f"{os.path.basename(path)}: {data_dir}/{key} files")
                base = self.paths[key]
            target = os.path.normpath(os.path.join(base, rel))
            if os.path.isabs(rel) or "\\" in rel or not inside(base, target) or target == base:
                raise Unsupported(f"{os.path.basename(path)}: unsafe path {name}")
            targets[name] = target
        return dist_info, root, targets

    def check(self, path: str) -> None:
        """Raise :class:`Unsupported` when *path* is a wheel this installer would not install."""
        with zipfile.ZipFile(path) as wheel:
            dist_info, _, _ = self._layout(wheel, path)
            self._entry_points(wheel, dist_info)

    def _entry_points(self, wheel: zipfile.ZipFile, dist_info: str) -> dict[str, str]:
        """Script name -> script text of the wheel's console and GUI entry points."""
        try:
            text = wheel.read(f"{dist_info}/entry_points.txt").decode("utf-8")
        except KeyError:
            return {}
        parser = configparser.ConfigParser(delimiters=("=",), interpolation=None)
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        try:
            parser.read_string(text)
        except configparser.Error as exc:
            raise Unsupported(f"{dist_info}/entry_points.txt: {exc}") from exc
        scripts = {}
        for group in ("console_scripts", "gui_scripts"):
            if not parser.has_section(group):
                continue
            for name, value in parser.items(group):
                match = re.match(r"^\s*([\w.]+)\s*:\s*([\w.]+)\s*(\[.*\])?\s*$", value)
                if match is None or "/" in name or not name.strip():
                    raise Unsupported(f"entry point {name} = {value}")
                module, attr = match.group(1), match.group(2)
                scripts[name.strip()] = (
                    f"#!{self.python}\nimport sys\n\nfrom {module} import {attr.split('.')[0]}\n\n"
                    f'if __name__ == "__main__":\n    sys.exit({attr}())\n'
                )
        return scripts

    def _write(self, target: str, data: bytes, executable: bool) -> None:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if os.path.islink(target):
            os.unlink(target)
        with open(target, "wb") as handle:
            handle.write(data)
        if executable:
            os.chmod(target, (0o777 & ~self.umask) | 0o111)

    def install(self, path: str, requested: bool) -> Pending:
        """Put the files of the wheel at *path* in place; :meth:`finish` writes the RECORDs."""
        with zipfile.ZipFile(path) as wheel:
            dist_info, root, targets = self._layout(wheel, path)
            pending = Pending(root, os.path.join(root, dist_info))
            for info in wheel.infolist():
                target = targets.get(info.filename)
                if target is None or info.filename == f"{dist_info}/RECORD":
                    continue
                data = wheel.read(info)
                executable = bool((info.external_attr >> 16) & 0o111)
                if target.startswith(self.paths["scripts"] + os.sep) and data.startswith(b"#!python"):
                    data = b"#!" + self.python.encode() + b"\n" + data.partition(b"\n")[2]  # its mode stays
                self._write(target, data, executable)
                pending.rows[target] = (record_hash(data), str(len(data)))
                if target.endswith(".py") and (inside(self.paths["purelib"], target) or inside(
                        self.paths["platlib"], target)):  # fmt: skip
                    pending.sources.append(target)
            for name, text in self._entry_points(wheel, dist_info).items():
                target = os.path.join(self.paths["scripts"], name)
                self._write(target, text.encode(), True)
                pending.rows[target] = (record_hash(text.encode()), str(len(text.encode())))
        extra = {"INSTALLER": INSTALLER.encode(), **({"REQUESTED": b""} if requested else {})}
        for name, data in extra.items():
            target = os.path.join(pending.dist_info, name)
            self._write(target, data, False)
            pending.rows[target] = (record_hash(data), str(len(data)))
        return pending

    def finish(self, pendings: list[Pending]) -> None:
        """Compile the byte code of every pending wheel and write their RECORDs."""
        compiled = compile_all([source for p in pendings for source in p.sources])
        for pending in pendings:
            for source in pending.sources:
                if source in compiled:  # listed without a hash, as pip does: byte code is derived data
                    pending.rows[cache_from_source(source)] = ("", "")
            record = os.path.join(pending.dist_info, "RECORD")
            lines = io.StringIO()
            writer = csv.writer(lines, lineterminator="\n")
            rows = {os.path.relpath(p, pending.root).replace(os.sep, "/"): row for p, row in pending.rows.items()}
            rows[os.path.relpath(record, pending.root)] = ("", "")
            for rel in sorted(rows):
                writer.writerow([rel, *rows[rel]])
            self._write(record, lines.getvalue().encode(), False)


# Byte code is compiled by fresh interpreters (-I -S: a fixed set of modules loaded): marshal output depends on what
# else the compiling process holds, so this keeps the bytes of a file independent of how the build got there.
COMPILER = """import sys, py_compile
mode = py_compile.PycInvalidationMode.CHECKED_HASH
for source in sys.stdin.read().split("\\0"):
    try:
        py_compile.compile(source, doraise=True, invalidation_mode=mode)
    except Exception:
        continue
    sys.stdout.write(source + "\\0")
"""


def compile_all(sources: list[str]) -> set[str]:
    """Compile *sources* to hash-checked byte code on the usable cores; the sources compiled (a syntax error leaves
    a file without byte code, as with pip)."""
    if not sources:
        return set()
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    jobs = max(1, min(cores, 8, len(sources) // 16))
    workers = []
    for index in range(jobs):
        argv = [sys.executable, "-I", "-S", "-B", "-c", COMPILER]
        worker = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert worker.stdin is not None
        worker.stdin.write("\0".join(sources[index::jobs]).encode())
        worker.stdin.close()
        workers.append(worker)
    done: set[str] = set()
    for worker in workers:
        assert worker.stdout is not None
        done.update(name for name in worker.stdout.read().decode().split("\0") if name)
        if worker.wait() != 0:
            raise OSError(f"compiling byte code failed (exit {worker.returncode})")
    return done


def uninstall(dist: Dist, venv: str, paths: dict[str, str]) -> None:
    """Remove *dist*: the files its RECORD lists inside the venv, their byte code, the ``.dist-info`` directory,
    then the directories left empty (never the scheme directories themselves)."""
    record = os.path.join(dist.path, "RECORD")
    site = os.path.dirname(dist.path)
    files = set()
    with open(record, encoding="utf-8", newline="") as handle:
        for row in csv.reader(handle):
            if not row or not row[0]:
                continue
            path = os.path.normpath(os.path.join(site, row[0]))
            if not inside(venv, path) or inside(dist.path, path):
                continue
            files.add(path)
            if path.endswith(".py"):
                files.update(cache_from_source(path, optimization=level) for level in ("", 1, 2))
    parents = set()
    for path in files:
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
            parents.add(os.path.dirname(path))
    shutil.rmtree(dist.path)
    keep = {venv, *paths.values()}
    for directory in sorted(parents, key=lambda d: d.count(os.sep), reverse=True):
        while directory not in keep and inside(venv, directory):
            try:
                os.rmdir(directory)
            except OSError:
                break
            directory = os.path.dirname(directory)


def can_uninstall(dist: Dist) -> bool:
    return os.path.isfile(os.path.join(dist.path, "RECORD"))
