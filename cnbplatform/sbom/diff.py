"""Components added, removed and changed between two images (e.g. before and after a rebase).

A component's identity is its purl without the version (``pkg:deb/debian/libc6?arch=amd64&distro=debian-12``),
else its kind and name; the run image, the OS and each buildpack are components too, so a new run image digest
or buildpack version shows up as a change (the run image is matched as "the run image", whatever its name). When
an identity has exactly one version on each side and they differ, it *changed*; otherwise versions only on one
side are *added* or *removed*.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cnbplatform.sbom.model import Component, Inventory, Subject


def identity(component: Component) -> str:
    if ("cnb:kind", "run-image") in component.properties:
        return "cnb:run-image"  # an image has one run image: a new name or digest is a change, not a swap
    if component.purl:
        from packageurl import PackageURL

        purl = PackageURL.from_string(component.purl)
        return str(
            PackageURL(
                type=purl.type,
                namespace=purl.namespace,
                name=purl.name,
                qualifiers=purl.qualifiers,
                subpath=purl.subpath,
            ).to_string()
        )
    name = f"{component.group}/{component.name}" if component.group else component.name
    return f"{component.kind.value}:{name}"


@dataclass(frozen=True)
class Change:
    identity: str
    before: Component
    after: Component


@dataclass(frozen=True)
class SbomDiff:
    before: Subject
    after: Subject
    added: tuple[Component, ...]
    removed: tuple[Component, ...]
    changed: tuple[Change, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _by_identity(components: Iterable[Component]) -> dict[str, dict[str, Component]]:
    out: dict[str, dict[str, Component]] = {}
    for component in components:
        out.setdefault(identity(component), {})[component.version] = component
    return out


def diff_inventories(before: Inventory, after: Inventory) -> SbomDiff:
    old, new = _by_identity(before.nodes()), _by_identity(after.nodes())
    added: list[Component] = []
    removed: list[Component] = []
    changed: list[Change] = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key, {}), new.get(key, {})
        only_a = [a[v] for v in sorted(a.keys() - b.keys())]
        only_b = [b[v] for v in sorted(b.keys() - a.keys())]
        if len(only_a) == 1 and len(only_b) == 1:
            changed.append(Change(key, only_a[0], only_b[0]))
        else:
            removed += only_a
            added += only_b
    return SbomDiff(
        before.subject,
        after.subject,
        tuple(sorted(added, key=lambda c: c.sort_key)),
        tuple(sorted(removed, key=lambda c: c.sort_key)),
        tuple(changed),
    )


def _component_json(component: Component) -> dict[str, Any]:
    return {"name": component.name, "version": component.version, "kind": component.kind.value, "purl": component.purl}


def diff_json(diff: SbomDiff) -> dict[str, Any]:
    return {
        "before": {"name": diff.before.name, "digest": diff.before.digest},
        "after": {"name": diff.after.name, "digest": diff.after.digest},
        "added": [_component_json(c) for c in diff.added],
        "removed": [_component_json(c) for c in diff.removed],
        "changed": [
            {
                "identity": c.identity,
                "name": c.after.name,
                "before": _component_json(c.before),
                "after": _component_json(c.after),
            }
            for c in diff.changed
        ],
    }


def diff_lines(diff: SbomDiff) -> list[str]:
    """The human form: ``+ name version (purl)``, ``- …``, ``~ name old -> new``."""
    lines = [f"before: {diff.before.name} {diff.before.digest}", f"after:  {diff.after.name} {diff.after.digest}"]

    def label(c: Component) -> str:
        return f"{c.name} {c.version}".strip() + (f" ({c.purl})" if c.purl else "")

    lines += [f"+ {label(c)}" for c in diff.added]
    lines += [f"- {label(c)}" for c in diff.removed]
    for c in diff.changed:
        before = c.before.version or "(none)"
        if c.before.name != c.after.name:
            before = f"{c.before.name} {before}"
        lines.append(f"~ {c.after.name} {before} -> {c.after.version or '(none)'}")
    counts = f"{len(diff.added)} added, {len(diff.removed)} removed, {len(diff.changed)} changed"
    lines.append(counts if not diff.empty else "no differences")
    return lines
