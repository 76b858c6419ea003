"""Build plan files (docs/spec-notes.md §3.2, §4.4, §4.5).

* :class:`DetectOutput`: what ``bin/detect`` writes to ``CNB_BUILD_PLAN_PATH`` (``[[provides]]``, ``[[requires]]``
  with a free-form ``metadata`` table, ``[[or]]`` alternatives).
* :class:`Plan`: the detector's ``plan.toml`` (one entry per dependency name: ``providers`` + ``requires``).
* :class:`BuildpackPlan`: the per-buildpack plan handed to ``bin/build`` (``CNB_BP_PLAN_PATH``): ``[[entries]]``.

A top-level ``version`` in a ``requires`` entry (removed in Buildpack API 0.11, §3.2) makes
:meth:`DetectOutput.parse` raise :class:`DetectOutputError` (a ``SpecFileError`` naming the key). The detector treats
any ``SpecFileError`` from reading a detect output as an *error* result of that buildpack (LC: code -1), exactly as
it treats unparseable TOML.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.files.common import SpecFileError, Table, parse_toml, read_toml, write_toml


class DetectOutputError(SpecFileError):
    """A detect plan a buildpack wrote that the lifecycle refuses (its detect result becomes an error)."""


@dataclass(frozen=True)
class Provide:
    name: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass(frozen=True)
class Require:
    """A required dependency: ``name`` plus free-form ``metadata`` (conventionally ``metadata.version``)."""

    name: str
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metadata": dict(self.metadata)}


def _name(table: Table) -> str:
    name = table.get_str("name", required=True)
    if not name:
        raise table.error("name", "must not be empty")
    return name


def _require(table: Table, *, detect_output: bool) -> Require:
    if detect_output and table.has("version"):
        raise DetectOutputError(
            table.path,
            'a top-level "version" in requires is not supported (Buildpack API >= 0.11); use "metadata.version"',
            key=f"{table.prefix}.version",
        )
    return Require(name=_name(table), metadata=table.raw_table("metadata"))


@dataclass(frozen=True)
class PlanSections:
    """One option of a detect output: what it provides and what it requires."""

    provides: tuple[Provide, ...] = ()
    requires: tuple[Require, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> PlanSections:
        return cls(
            provides=tuple(Provide(_name(t)) for t in table.tables("provides")),
            requires=tuple(_require(t, detect_output=True) for t in table.tables("requires")),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"provides": [p.to_dict() for p in self.provides], "requires": [r.to_dict() for r in self.requires]}


@dataclass(frozen=True)
class DetectOutput:
    """The build plan a passing ``bin/detect`` wrote: the primary sections, then ``[[or]]`` alternatives."""

    provides: tuple[Provide, ...] = ()
    requires: tuple[Require, ...] = ()
    alternatives: tuple[PlanSections, ...] = ()

    @property
    def options(self) -> tuple[PlanSections, ...]:
        """The options plan trials walk through (§4.4): primary first, then each ``[[or]]`` in order."""
        return (PlanSections(self.provides, self.requires), *self.alternatives)

    @property
    def has_requires(self) -> bool:
        """True when any option requires something (refused for image extensions, §4.3)."""
        return any(option.requires for option in self.options)

    @classmethod
    def from_table(cls, table: Table) -> DetectOutput:
        primary = PlanSections.from_table(table)
        return cls(
            provides=primary.provides,
            requires=primary.requires,
            alternatives=tuple(PlanSections.from_table(t) for t in table.tables("or")),
        )

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> DetectOutput:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> DetectOutput:
        """Read a detect plan; *missing_ok* for an extension's optional ``detect/plan.toml``."""
        return cls.from_table(read_toml(path, missing_ok=missing_ok))

    def to_dict(self) -> dict[str, Any]:
        out = PlanSections(self.provides, self.requires).to_dict()
        if self.alternatives:
            out["or"] = [alt.to_dict() for alt in self.alternatives]
        return out

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())


@dataclass(frozen=True)
class PlanProvider:
    """A buildpack or extension that provides a plan entry."""

    id: str
    version: str
    extension: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "version": self.version}
        if self.extension:
            out["extension"] = True
        return out


@dataclass(frozen=True)
class PlanEntry:
    """One dependency name: every confirmed provider and every require, in order."""

    providers: tuple[PlanProvider, ...]
    requires: tuple[Require, ...]

    @property
    def name(self) -> str:
        return self.requires[0].name if self.requires else ""

    def to_dict(self) -> dict[str, Any]:
        return {"providers": [p.to_dict() for p in self.providers], "requires": [r.to_dict() for r in self.requires]}


def _provider(table: Table) -> PlanProvider:
    provider_id = table.get_str("id", required=True)
    if not provider_id:
        raise table.error("id", "must not be empty")
    return PlanProvider(provider_id, table.get_str("version", required=True), table.get_bool("extension"))


@dataclass(frozen=True)
class Plan:
    """``plan.toml`` (§4.5). Entries keep their order (first appearance in detection)."""

    entries: tuple[PlanEntry, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> Plan:
        entries = []
        for t in table.tables("entries"):
            requires = tuple(_require(r, detect_output=False) for r in t.tables("requires"))
            names = {r.name for r in requires}
            if len(names) > 1:
                raise t.error("requires", f"all requires of one entry must share a name, got {sorted(names)}")
            entries.append(PlanEntry(providers=tuple(_provider(p) for p in t.tables("providers")), requires=requires))
        return cls(tuple(entries))

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> Plan:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path) -> Plan:
        return cls.from_table(read_toml(path))

    def to_dict(self) -> dict[str, Any]:
        """No entries is an empty document (an empty file), as the Go lifecycle writes plan.toml then."""
        return {"entries": [e.to_dict() for e in self.entries]} if self.entries else {}

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())

    def for_provider(self, provider_id: str, *, extension: bool = False) -> BuildpackPlan:
        """The buildpack plan of one provider: the requires of every entry it provides, in order."""
        out: list[Require] = []
        for entry in self.entries:
            if any(p.id == provider_id and p.extension == extension for p in entry.providers):
                out.extend(entry.requires)
        return BuildpackPlan(tuple(out))

    def without(self, met: Iterable[str]) -> Plan:
        """The plan minus entries whose requires name any of *met* (what extensions satisfied, §12)."""
        names = set(met)
        return Plan(tuple(e for e in self.entries if not any(r.name in names for r in e.requires)))


@dataclass(frozen=True)
class BuildpackPlan:
    """The buildpack plan (``CNB_BP_PLAN_PATH``, §3.3): ``[[entries]] name, metadata``."""

    entries: tuple[Require, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> BuildpackPlan:
        return cls(tuple(_require(t, detect_output=False) for t in table.tables("entries")))

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> BuildpackPlan:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path) -> BuildpackPlan:
        return cls.from_table(read_toml(path))

    def to_dict(self) -> dict[str, Any]:
        return {"entries": [e.to_dict() for e in self.entries]}

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(e.name for e in self.entries)
