"""``<layers>/<bp>/build.toml`` and ``<layers>/<bp>/store.toml`` (docs/spec-notes.md §3.6).

build.toml lists the plan entries the buildpack did *not* meet (``[[unmet]] name``); everything else in its plan
counts as met and is withheld from later buildpacks. Checking that each unmet name is in the buildpack's plan is
the builder's job (it knows the plan). store.toml is a free-form ``[metadata]`` table persisted across builds
through the image label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml
from cnbplatform.files.launch import BomEntry


@dataclass(frozen=True)
class BuildToml:
    """A parsed build.toml: *unmet* plan entry names and deprecated *bom* entries."""

    unmet: tuple[str, ...] = ()
    bom: tuple[BomEntry, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> BuildToml:
        unmet = []
        for entry in table.tables("unmet"):
            name = entry.get_str("name", required=True)
            if not name:
                raise entry.error("name", "must not be empty")
            unmet.append(name)
        return cls(unmet=tuple(unmet), bom=tuple(BomEntry.from_table(t) for t in table.tables("bom")))

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> BuildToml:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> BuildToml:
        """Read *path*; with *missing_ok* a missing file means "everything met" (as in LC)."""
        return cls.from_table(read_toml(path, missing_ok=missing_ok))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.unmet:
            out["unmet"] = [{"name": name} for name in self.unmet]
        if self.bom:
            out["bom"] = [b.to_dict() for b in self.bom]
        return out

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())


@dataclass(frozen=True)
class StoreToml:
    """A parsed store.toml: its free-form ``[metadata]`` table."""

    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: Table) -> StoreToml:
        return cls(metadata=table.raw_table("metadata"))

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> StoreToml:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> StoreToml:
        return cls.from_table(read_toml(path, missing_ok=missing_ok))

    def to_dict(self) -> dict[str, Any]:
        return {"metadata": dict(self.metadata)}

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())
