"""cnb/python: resolve the requirements against local wheels the way pip does, without starting pip (bin/build).

pip takes about half a second to start; most builds need no more than reading a few wheels' metadata. This module
handles the common case and says so when it cannot, so that ``build.py`` hands the job to pip (``sync.py``):

- requirement files made of PEP 508 requirements (``name[extras] specifiers ; marker``), comments, line
  continuations and ``-r`` includes; any other option, a URL, an editable or a hash raises :class:`Unsupported`;
- candidates are the wheels (PEP 427 file names, tags the interpreter supports) in the wheel cache and in the local
  ``--find-links`` directories of ``PIP_FIND_LINKS``, as in the offline ``pip install --no-index --find-links``
  that ``sync.py`` runs; an sdist or a remote find-links source raises :class:`Unsupported`;
- for each project, the best candidate is what pip's finder picks: the highest version the accumulated specifiers
  allow (pre-releases only when asked for or when nothing else matches), then the best tag, then the build tag;
- dependencies come from each chosen wheel's ``METADATA`` (``Requires-Dist`` with PEP 508 markers evaluated for
  the requested extras); ``Requires-Python`` must hold;
- a requirement the chosen version does not satisfy is a conflict pip would backtrack on: :class:`Unsupported`.
  No candidate at all raises :class:`Missing` (``build.py`` then fetches wheels with ``pip wheel``).

Versions, specifiers and tags are those of the ``packaging`` that pip vendors (passed in as *pk*), so they compare
exactly as the pip that would otherwise run. Markers are evaluated here (PEP 508 grammar, comparisons as packaging
does them), because the vendored marker parser is slow to import. Standard library only, besides that.
"""

from __future__ import annotations

import os
import platform
import re
import sys
import zipfile
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
REQUIREMENT = re.compile(
    rf"^(?P<name>{NAME})\s*(?:\[(?P<extras>[^\]]*)\])?\s*(?P<spec>\(?[^;()]*\)?)?\s*(?:;(?P<marker>.*))?$"
)
WHEEL_FILE = re.compile(
    r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-(?P<build>\d[^-]*))?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$"
)
SDIST_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip", ".tar")
COMMENT = re.compile(r"(^|\s+)#.*$")
MARKER_TOKEN = re.compile(
    r"""\s*(?:(?P<str>'[^']*'|"[^"]*")|(?P<op>===|==|!=|<=|>=|~=|<|>|not\s+in\b|in\b)|(?P<paren>[()])"""
    r"""|(?P<bool>and\b|or\b)|(?P<var>[A-Za-z_][A-Za-z0-9_.]*))"""
)
MARKER_ALIASES = {
    "os.name": "os_name", "sys.platform": "sys_platform", "platform.version": "platform_version",
    "platform.machine": "platform_machine", "platform.python_implementation": "platform_python_implementation",
    "python_implementation": "platform_python_implementation",
}  # fmt: skip


class Unsupported(Exception):
    """Something this resolver does not do; pip must resolve."""


class Missing(Exception):
    """No local wheel can satisfy a requirement: the wheels must be fetched."""


def canonical(name: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Requirement:
    """One PEP 508 requirement without a URL."""

    name: str
    extras: frozenset[str]
    specifier: str
    marker: str

    @property
    def key(self) -> str:
        return canonical(self.name)


def parse_requirement(text: str) -> Requirement:
    match = REQUIREMENT.match(text.strip())
    if match is None or "@" in (match.group("spec") or ""):
        raise Unsupported(f"requirement {text.strip()!r}")
    spec = (match.group("spec") or "").strip()
    if spec.startswith("(") != spec.endswith(")"):
        raise Unsupported(f"requirement {text.strip()!r}")
    extras = frozenset(e.strip() for e in (match.group("extras") or "").split(",") if e.strip())
    return Requirement(match.group("name"), extras, spec.strip("()").strip(), (match.group("marker") or "").strip())


def read_requirements(path: str, seen: set[str] | None = None) -> list[Requirement]:
    """The requirements of a requirements file and of the files it includes with ``-r``."""
    seen = set() if seen is None else seen
    real = os.path.realpath(path)
    if real in seen:
        return []
    seen.add(real)
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    found: list[Requirement] = []
    for line in text.replace("\\\n", "").splitlines():
        line = COMMENT.sub("", line).strip()
        if not line:
            continue
        include = re.match(r"^(?:-r\s*|--requirement(?:\s+|\s*=\s*))(\S+)$", line)
        if include:
            target = include.group(1)
            if "://" in target or "${" in target:
                raise Unsupported(f"include {target}")
            found += read_requirements(os.path.join(os.path.dirname(path), target), seen)
        elif line.startswith("-") or " -" in line or "${" in line:
            raise Unsupported(f"requirements line {line!r}")
        else:
            found.append(parse_requirement(line))
    return found


# -- PEP 508 markers ------------------------------------------------------------------------------------------------


def marker_environment() -> dict[str, str]:
    """The values of the marker variables for this interpreter (PEP 508 "Environment Markers")."""
    impl = sys.implementation.version
    impl_version = f"{impl.major}.{impl.minor}.{impl.micro}"
    if impl.releaselevel != "final":
        impl_version += impl.releaselevel[0] + str(impl.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": impl_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


class Marker:
    """A parsed marker expression, evaluated against an environment with :meth:`evaluate`."""

    def __init__(self, text: str, pk: Any) -> None:
        self.pk = pk
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = MARKER_TOKEN.match(text, position)
            if match is None or match.end() == position:
                raise Unsupported(f"marker {text!r}")
            kind = match.lastgroup or ""
            value = match.group(kind)
            self.tokens.append((kind, " ".join(value.split()) if kind == "op" else value))
            position = match.end()
            while position < len(text) and text[position].isspace():
                position += 1
        self.text = text

    def evaluate(self, env: dict[str, str]) -> bool:
        self.env, self.position = env, 0
        result = self._or()
        if self.position != len(self.tokens):
            raise Unsupported(f"marker {self.text!r}")
        return result

    def _next(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise Unsupported(f"marker {self.text!r}")
        self.position += 1
        return self.tokens[self.position - 1]

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("", "")

    def _or(self) -> bool:
        result = self._and()
        while self._peek() == ("bool", "or"):
            self._next()
            right = self._and()
            result = result or right
        return result

    def _and(self) -> bool:
        result = self._atom()
        while self._peek() == ("bool", "and"):
            self._next()
            right = self._atom()
            result = result and right
        return result

    def _atom(self) -> bool:
        if self._peek() == ("paren", "("):
            self._next()
            result = self._or()
            if self._next() != ("paren", ")"):
                raise Unsupported(f"marker {self.text!r}")
            return result
        left, is_extra_left = self._value()
        kind, op = self._next()
        if kind != "op":
            raise Unsupported(f"marker {self.text!r}")
        right, is_extra_right = self._value()
        if is_extra_left or is_extra_right:
            left, right = canonical(left), canonical(right)
        return self._compare(left, op, right)

    def _value(self) -> tuple[str, bool]:
        kind, value = self._next()
        if kind == "str":
            return value[1:-1], False
        if kind == "var":
            name = MARKER_ALIASES.get(value, value)
            if name not in self.env:
                raise Unsupported(f"marker variable {value}")
            return self.env[name], name == "extra"
        raise Unsupported(f"marker {self.text!r}")

    def _compare(self, left: str, op: str, right: str) -> bool:
        if op == "in":
            return left in right
        if op == "not in":
            return left not in right
        try:
            spec = self.pk.specifiers.Specifier(op + right)
        except self.pk.specifiers.InvalidSpecifier:
            spec = None
        if spec is not None:
            try:
                return bool(spec.contains(left, prereleases=True))
            except Exception:  # a version the vendored packaging cannot parse: compare as strings
                pass
        if op in ("==", "==="):
            return left == right
        if op == "!=":
            return left != right
        raise Unsupported(f"marker comparison {left!r} {op} {right!r}")


# -- candidates and the resolution ------------------------------------------------------------------------------------


@dataclass
class Candidate:
    path: str
    version: Any  # pk.version.Version
    rank: tuple[Any, ...]


@dataclass
class Chosen:
    """A project of the resolution: its wheel and what its metadata says."""

    name: str
    version: str
    path: str
    requires: list[Requirement]
    provided: set[str]  # Provides-Extra
    extras: set[str] = field(default_factory=set)
    specifiers: list[str] = field(default_factory=list)
    requested: bool = False

    @property
    def key(self) -> str:
        return canonical(self.name)


def load_packaging(pip_dir: str) -> Any:
    """``packaging.{version,specifiers,tags}`` as vendored by the pip in *pip_dir* (raises ImportError)."""
    parent = os.path.dirname(pip_dir)
    if parent not in sys.path:
        sys.path.append(parent)  # last: nothing there may shadow this buildpack's own modules
    from pip._vendor.packaging import specifiers, tags, version

    return SimpleNamespace(specifiers=specifiers, tags=tags, version=version)


def wheel_headers(path: str) -> list[tuple[str, str]]:
    """The header fields of a wheel's ``*.dist-info/METADATA`` (RFC 822 style, folded lines joined)."""
    with zipfile.ZipFile(path) as wheel:
        names = [n for n in wheel.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
        if len(names) != 1:
            raise Unsupported(f"{os.path.basename(path)} has {len(names)} METADATA files")
        text = wheel.read(names[0]).decode("utf-8", errors="replace")
    return parse_headers(text)


def parse_headers(text: str) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            break
        if line[0] in " \t" and fields:
            fields[-1] = (fields[-1][0], fields[-1][1] + "\n" + line)
        elif ":" in line:
            key, _, value = line.partition(":")
            fields.append((key.strip(), value.strip()))
    return fields


class Resolver:
    """One resolution of *requirements* over the wheels in *sources* (directories), for this interpreter."""

    def __init__(self, pk: Any, sources: list[str]) -> None:
        self.pk = pk
        self.env = marker_environment()
        self.python = self.env["python_full_version"]
        self.tag_rank = {str(tag): index for index, tag in enumerate(pk.tags.sys_tags())}
        self.candidates: dict[str, list[Candidate]] = {}
        self.archives: list[str] = []
        for source in sources:
            self._scan(source)
        self.chosen: dict[str, Chosen] = {}
        self.markers: dict[str, Marker] = {}

    def _scan(self, directory: str) -> None:
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            return
        for name in names:
            match = WHEEL_FILE.match(name)
            if match is None:
                if name.lower().endswith(SDIST_SUFFIXES):
                    self.archives.append(canonical(name))
                continue
            tags = {
                f"{py}-{abi}-{plat}"
                for py in match.group("py").split(".")
                for abi in match.group("abi").split(".")
                for plat in match.group("plat").split(".")
            }
            ranks = [self.tag_rank[t] for t in tags if t in self.tag_rank]
            if not ranks:
                continue
            try:
                version = self.pk.version.Version(match.group("version"))
            except self.pk.version.InvalidVersion:
                continue
            build = match.group("build") or ""
            digits = build[: len(build) - len(build.lstrip("0123456789"))]
            rank = (version, -min(ranks), (int(digits or 0), build[len(digits) :]))
            path = os.path.join(directory, name)
            self.candidates.setdefault(canonical(match.group("name")), []).append(Candidate(path, version, rank))

    def marker_true(self, marker: str, extras: set[str] | frozenset[str]) -> bool:
        if not marker:
            return True
        parsed = self.markers.get(marker)
        if parsed is None:
            parsed = self.markers[marker] = Marker(marker, self.pk)
        return any(parsed.evaluate({**self.env, "extra": extra}) for extra in ("", *sorted(extras)))

    def specifier_set(self, specifiers: list[str]) -> Any:
        try:
            return self.pk.specifiers.SpecifierSet(",".join(s for s in specifiers if s))
        except self.pk.specifiers.InvalidSpecifier as exc:
            raise Unsupported(f"specifier {','.join(specifiers)}") from exc

    def best(self, key: str, specifiers: list[str]) -> Candidate:
        """The candidate pip's finder would pick for *key* under *specifiers*."""
        found = self.candidates.get(key, [])
        if any(archive.startswith(key + "-") for archive in self.archives):
            raise Unsupported(f"a source archive of {key} is in a find-links directory")
        allowed = set(self.specifier_set(specifiers).filter([c.version for c in found]))
        fitting = [c for c in found if c.version in allowed]
        if not fitting:
            wanted = ",".join(s for s in specifiers if s)
            raise Missing(f"no wheel of {key}{wanted}" if found else f"no wheel of {key}")
        return max(fitting, key=lambda c: c.rank)

    def choose(self, key: str, specifiers: list[str]) -> Chosen:
        candidate = self.best(key, specifiers)
        fields = wheel_headers(candidate.path)
        values = {k.lower(): v for k, v in fields}
        name, version = values.get("name", ""), values.get("version", "")
        try:
            same_version = self.pk.version.Version(version) == candidate.version
        except self.pk.version.InvalidVersion:
            same_version = False
        if canonical(name) != key or not same_version:
            raise Unsupported(f"{os.path.basename(candidate.path)} holds {name} {version}")
        requires_python = values.get("requires-python", "")
        if requires_python and not self.specifier_set([requires_python]).contains(self.python, prereleases=True):
            raise Unsupported(f"{name} {version} requires Python {requires_python}")
        requires = [parse_requirement(v) for k, v in fields if k.lower() == "requires-dist"]
        provided = {v.strip() for k, v in fields if k.lower() == "provides-extra"}
        return Chosen(name, version, candidate.path, requires, provided)

    @staticmethod
    def provided_extras(chosen: Chosen, extras: frozenset[str]) -> set[str]:
        """The requested *extras* the distribution declares; pip ignores the others (with a warning)."""
        valid = set()
        for extra in extras:
            if extra in chosen.provided:
                valid.add(extra)
            elif canonical(extra) in {canonical(p) for p in chosen.provided}:
                raise Unsupported(f"extra {extra} of {chosen.name} is spelled differently in its metadata")
        return valid

    def resolve(self, requirements: list[Requirement]) -> list[Chosen]:
        """The full resolution, top-level requirements marked ``requested``."""
        pending = [(r, True) for r in requirements if self.marker_true(r.marker, frozenset())]
        while pending:
            requirement, top = pending.pop(0)
            key = requirement.key
            current = self.chosen.get(key)
            if current is None:
                current = self.choose(key, [requirement.specifier])
                self.chosen[key] = current
                pending += [(r, False) for r in current.requires if self.marker_true(r.marker, set())]
            new_extras = self.provided_extras(current, requirement.extras) - current.extras
            current.specifiers.append(requirement.specifier)
            current.requested = current.requested or top
            if not self.specifier_set(current.specifiers).contains(current.version, prereleases=True):
                raise Unsupported(f"{current.name} {current.version} conflicts with {key}{requirement.specifier}")
            if new_extras:
                current.extras |= new_extras
                pending += [
                    (r, False)
                    for r in current.requires
                    if r.marker and not self.marker_true(r.marker, set()) and self.marker_true(r.marker, new_extras)
                ]
        for key, chosen in self.chosen.items():  # what pip's finder picks under the final constraints
            if os.path.realpath(self.best(key, chosen.specifiers).path) != os.path.realpath(chosen.path):
                raise Unsupported(f"the constraints on {chosen.name} need backtracking")
        return sorted(self.chosen.values(), key=lambda c: c.key)
