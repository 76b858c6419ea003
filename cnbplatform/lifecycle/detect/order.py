"""Order resolution: from ``order.toml`` (plus ``system.toml``) to the candidate groups detection tries, in order
(docs/spec-notes.md §4.1, §4.2; buildpack spec "Order Resolution").

* :func:`load_order_modules` looks up every buildpack the order can reach (composites recursively) *before* any
  ``bin/detect`` runs and checks its Buildpack API: unsupported API exits 12; a missing or unreadable
  ``buildpack.toml``, a composite that references an image extension, or a composite that contains itself exits 22.
* :func:`candidate_groups` flattens the order lazily: composite buildpacks expand depth-first, left-to-right
  (sub-groups of one composite side by side give the cross product in lexical order); an element whose ID (any
  version) is already placed in the candidate is skipped, first occurrence wins (LC); an optional element gives the
  candidate with it, then a copy without it (for an optional composite: all its sub-groups, then the remainder
  without it). Elements the ``include`` predicate rejects (exec-env mismatch, §4.3 step 2) are left out silently
  and do not count for the ID rule.
* :func:`is_reduction` tells whether a candidate is an already tried one minus optional elements; such a candidate
  cannot pass where the tried one failed (its non-optional elements and their memoised detect results are the
  same, and a plan trial that resolves without the optional elements also resolves with them, since optional
  culprits are dropped), so detection skips it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.buildpack.lookup import find_buildpack
from cnbplatform.errors import CnbError, NotFoundError, PhaseError
from cnbplatform.files.apis import UnsupportedApiError, check_buildpack_api
from cnbplatform.files.buildpack_toml import BuildpackDescriptor, escape_id
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.order import GroupEntry, OrderGroup
from cnbplatform.lifecycle.common import EXIT_BUILDPACK_API, EXIT_DETECT_OTHER

ModuleKey = tuple[str, str]  # (id, version)
Modules = dict[ModuleKey, BuildpackDescriptor]


@dataclass(frozen=True)
class Element:
    """A component buildpack placed in a candidate group, with the ``optional`` flag of its order entry."""

    descriptor: BuildpackDescriptor
    optional: bool = False

    @property
    def id(self) -> str:
        return self.descriptor.id

    @property
    def version(self) -> str:
        return self.descriptor.version

    @property
    def key(self) -> ModuleKey:
        return (self.descriptor.id, self.descriptor.version)

    def __str__(self) -> str:
        return f"{self.id}@{self.version}"


def load_order_modules(
    groups: Sequence[OrderGroup], buildpacks_dir: Path, *, extensions_dir: Path | None = None
) -> Modules:
    """Every buildpack reachable from *groups*, by ``(id, version)``, verified (docs/spec-notes.md §4.1 last item,
    §1.3).

    Raises PhaseError 12 for an unsupported or missing ``api``, 22 for a buildpack that cannot be found or read, a
    composite buildpack whose order names an image extension, or a composite that (indirectly) contains itself.
    """
    modules: Modules = {}
    for group in groups:
        for entry in group:
            _visit(entry, (), modules, buildpacks_dir, extensions_dir)
    return modules


def _visit(
    entry: GroupEntry,
    parents: tuple[ModuleKey, ...],
    modules: Modules,
    buildpacks_dir: Path,
    extensions_dir: Path | None,
) -> None:
    key = (entry.id, entry.version)
    if key in parents:
        chain = " -> ".join(f"{i}@{v}" for i, v in (*parents, key))
        raise PhaseError("detect", EXIT_DETECT_OTHER, "resolve order", f"composite buildpacks form a cycle: {chain}")
    if key not in modules:
        modules[key] = _lookup(entry, parents, buildpacks_dir, extensions_dir)
    for group in modules[key].order:
        for sub in group:
            _visit(sub, (*parents, key), modules, buildpacks_dir, extensions_dir)


def _lookup(
    entry: GroupEntry, parents: tuple[ModuleKey, ...], buildpacks_dir: Path, extensions_dir: Path | None
) -> BuildpackDescriptor:
    where = f" (in composite {parents[-1][0]}@{parents[-1][1]})" if parents else ""
    action = f"look up buildpack {entry.id}@{entry.version}{where}"
    try:
        descriptor = find_buildpack(buildpacks_dir, entry.id, entry.version)
    except NotFoundError as exc:
        if parents and extensions_dir is not None and _is_extension(extensions_dir, entry):
            raise PhaseError(
                "detect",
                EXIT_DETECT_OTHER,
                action,
                "it is an image extension; a composite buildpack's order may only reference buildpacks",
            ) from exc
        raise PhaseError("detect", EXIT_DETECT_OTHER, action, exc.message) from exc
    except SpecFileError as exc:
        code = EXIT_BUILDPACK_API if exc.exit_code == EXIT_BUILDPACK_API else EXIT_DETECT_OTHER
        raise PhaseError("detect", code, action, exc.message) from exc
    except CnbError as exc:
        raise PhaseError("detect", EXIT_DETECT_OTHER, action, exc.message) from exc
    try:
        check_buildpack_api(descriptor.api, f"buildpack {descriptor}")
    except UnsupportedApiError as exc:
        raise PhaseError("detect", EXIT_BUILDPACK_API, f"check buildpack {descriptor}{where}", exc.message) from exc
    return descriptor


def _is_extension(extensions_dir: Path, entry: GroupEntry) -> bool:
    return (Path(extensions_dir) / escape_id(entry.id) / entry.version / "extension.toml").is_file()


Lookup = Callable[[GroupEntry], BuildpackDescriptor]
Include = Callable[[BuildpackDescriptor], bool]


def candidate_groups(
    groups: Sequence[OrderGroup], lookup: Lookup, *, include: Include | None = None
) -> Iterator[tuple[Element, ...]]:
    """The flattened candidate groups of *groups*, in the order detection tries them (docs/spec-notes.md §4.2).

    *lookup* gives an entry's descriptor (e.g. from :func:`load_order_modules`); *include* says whether a component
    buildpack takes part at all (False: left out silently, docs/spec-notes.md §4.3 step 2). Lazy: a caller that stops at
    the first passing group expands nothing after it.
    """
    keep: Include = include if include is not None else _always
    for group in groups:
        yield from _expand(group.entries, (), lookup, keep)


def _always(_: BuildpackDescriptor) -> bool:
    return True


def _expand(
    pending: tuple[GroupEntry, ...], placed: tuple[Element, ...], lookup: Lookup, include: Include
) -> Iterator[tuple[Element, ...]]:
    if not pending:
        yield placed
        return
    head, rest = pending[0], pending[1:]
    if any(e.id == head.id for e in placed):  # LC: first occurrence of an ID wins
        yield from _expand(rest, placed, lookup, include)
        return
    descriptor = lookup(head)
    if descriptor.is_composite:
        for sub in descriptor.order:
            yield from _expand((*sub.entries, *rest), placed, lookup, include)
    elif include(descriptor):
        yield from _expand(rest, (*placed, Element(descriptor, head.optional)), lookup, include)
    else:
        yield from _expand(rest, placed, lookup, include)
        return
    if head.optional:
        yield from _expand(rest, placed, lookup, include)


def is_reduction(candidate: Sequence[Element], tried: Sequence[Element]) -> bool:
    """True when *candidate* is *tried* with zero or more optional elements removed (order kept)."""
    remaining = iter(tried)
    for element in candidate:
        for other in remaining:
            if _same(other, element):
                break
            if not other.optional:
                return False
        else:
            return False
    return all(other.optional for other in remaining)


def _same(a: Element, b: Element) -> bool:
    return a.key == b.key and a.optional == b.optional
