"""App slices: the app dir as n+1 layers (docs/spec-notes.md §6.1 item 4; §16 item 46).

Each ``[[slices]]`` entry of metadata.toml (merged order, earlier buildpacks' slices first) becomes one layer holding
the app entries its globs match, and one last layer holds everything no slice took:

- globs are relative to the app dir (or absolute inside it) and follow Go's ``filepath.Match``, as the Go lifecycle
  globs with ``filepath.Glob``: ``*`` and ``?`` never cross ``/``, ``[...]`` / ``[^...]`` are character classes,
  ``\\`` escapes, ``**`` is just ``*`` twice; the pattern is cleaned (``./``, ``a/..``, a trailing ``/``) first and
  a pattern leading outside the app dir matches nothing; a malformed pattern is an error;
- a matched directory takes its whole subtree; an entry taken by an earlier slice is absent from later ones;
- a slice layer holds the app dir, its matched entries and their parent directories; a slice that matches
  nothing is an empty layer (as in the Go lifecycle); the last layer always holds the app dir itself;
- symlinks are entries like any other: a glob never looks through a symlinked directory.

The selection is computed from one scan of the app dir and handed to the layer writer as a ``TreeSource.select``
with a ``select_key`` naming the patterns, so the layer cache still recognises an unchanged app.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.errors import CnbError
from cnbplatform.oci.layers.fingerprint import DIR, scan_tree
from cnbplatform.oci.layers.spec import LayerSpec, TreeSource


class BadPatternError(CnbError):
    """A slice glob that Go's ``filepath.Match`` would reject (``ErrBadPattern``)."""


def _class_regex(comp: str, start: int, pattern: str) -> tuple[str, int]:
    """The regex of the character class starting at ``comp[start] == "["``; returns it and the index after ``]``."""
    i = start + 1
    negated = i < len(comp) and comp[i] == "^"
    if negated:
        i += 1
    ranges: list[str] = []
    while True:
        if i >= len(comp):
            raise BadPatternError(f"invalid slice pattern {pattern!r}: unterminated character class")
        if comp[i] == "]" and ranges:
            break
        lo, i = _class_char(comp, i, pattern)
        hi = lo
        if i < len(comp) and comp[i] == "-":
            hi, i = _class_char(comp, i + 1, pattern)
            if hi < lo:
                raise BadPatternError(f"invalid slice pattern {pattern!r}: bad range in a character class")
        ranges.append(re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}")
    return ("[^" if negated else "[") + "".join(ranges) + "]", i + 1


def _class_char(comp: str, i: int, pattern: str) -> tuple[str, int]:
    if i >= len(comp) or comp[i] in "-]":
        raise BadPatternError(f"invalid slice pattern {pattern!r}: bad character class")
    if comp[i] == "\\":
        i += 1
        if i >= len(comp):
            raise BadPatternError(f"invalid slice pattern {pattern!r}: trailing backslash")
    return comp[i], i + 1


def _component_regex(comp: str, pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(comp):
        c = comp[i]
        if c == "*":
            out.append(".*")
            i += 1
        elif c == "?":
            out.append(".")
            i += 1
        elif c == "[":
            regex, i = _class_regex(comp, i, pattern)
            out.append(regex)
        elif c == "\\":
            if i + 1 >= len(comp):
                raise BadPatternError(f"invalid slice pattern {pattern!r}: trailing backslash")
            out.append(re.escape(comp[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out), re.DOTALL)


@dataclass(frozen=True)
class Glob:
    """One slice pattern, compiled: a regex per path component relative to the app dir (none: the app dir)."""

    pattern: str
    parts: tuple[re.Pattern[str], ...] | None  # None: the pattern leads outside the app dir

    def matches(self, rel: str) -> bool:
        if self.parts is None:
            return False
        names = rel.split("/") if rel else []
        return len(names) == len(self.parts) and all(
            p.fullmatch(n) is not None for p, n in zip(self.parts, names, strict=True)
        )


def compile_glob(pattern: str, app_mount: str) -> Glob:
    """Compile *pattern* (relative to *app_mount*, or absolute) with Go ``filepath.Match`` semantics."""
    if not pattern:
        return Glob(pattern, None)
    mount = posixpath.normpath("/" + app_mount.strip("/"))
    full = posixpath.normpath(posixpath.join(mount, pattern))
    if full == mount:
        rel = ""
    elif full.startswith(mount.rstrip("/") + "/"):
        rel = full[len(mount.rstrip("/")) + 1 :]
    else:
        return Glob(pattern, None)
    parts = tuple(_component_regex(comp, pattern) for comp in rel.split("/")) if rel else ()
    return Glob(pattern, parts)


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


@dataclass(frozen=True)
class SlicePlan:
    """Who owns each app entry: slice index ``0..n-1``, or ``n`` for the remainder layer."""

    owners: dict[str, int]
    uniform: dict[str, bool]  # directories whose whole subtree has the directory's owner
    count: int  # number of slices (n)

    def owns_any(self, index: int) -> bool:
        return any(owner == index for owner in self.owners.values())

    def selector(self, index: int) -> Callable[[str, bool], bool]:
        owners, uniform = self.owners, self.uniform

        def select(rel: str, is_dir: bool) -> bool:
            return owners.get(rel) == index and (not is_dir or uniform.get(rel, False))

        return select


def plan_slices(app_dir: Path, slices: Sequence[Sequence[str]], app_mount: str) -> SlicePlan:
    """Assign every entry of *app_dir* to the first slice matching it or one of its ancestors (else the remainder)."""
    globs = [[compile_glob(p, app_mount) for p in paths] for paths in slices]
    n = len(globs)
    scan = scan_tree(app_dir)
    # (rel, kind) of every entry, parents before children (scan entries are plain tuples: rel, kind, ...)
    entries = sorted(((e[0], e[1]) for e in scan.entries), key=lambda e: e[0].split("/") if e[0] else [])
    owners: dict[str, int] = {}
    uniform: dict[str, bool] = {}
    for rel, kind in entries:
        direct = next((i for i, gs in enumerate(globs) if any(g.matches(rel) for g in gs)), n)
        inherited = owners.get(_parent(rel), n) if rel else n
        owners[rel] = min(direct, inherited)
        if kind == DIR:
            uniform[rel] = True
    for rel, _ in reversed(entries):
        if not rel:
            continue
        parent = _parent(rel)
        if not uniform.get(rel, True) or owners[rel] != owners[parent]:
            uniform[parent] = False
    return SlicePlan(owners, uniform, n)


def app_layer_specs(
    app_dir: Path, slices: Sequence[Sequence[str]], *, app_mount: str, uid: int, gid: int
) -> list[LayerSpec]:
    """The n+1 app layers (slices, then the remainder) as layer specs; contents owned by ``uid:gid``."""
    if not slices:
        return [LayerSpec(trees=(TreeSource(app_dir, prefix=app_mount),), uid=uid, gid=gid)]
    plan = plan_slices(app_dir, slices, app_mount)
    key_base = {"mount": app_mount, "slices": [list(paths) for paths in slices]}
    specs: list[LayerSpec] = []
    for index in range(plan.count + 1):
        if index < plan.count and not plan.owns_any(index):
            specs.append(LayerSpec())  # a slice that matches nothing is an empty layer
            continue
        tree = TreeSource(
            app_dir,
            prefix=app_mount,
            select=plan.selector(index),
            select_key=json.dumps({**key_base, "index": index}, sort_keys=True),
        )
        specs.append(LayerSpec(trees=(tree,), uid=uid, gid=gid))
    return specs
