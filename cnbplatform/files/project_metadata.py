"""``project-metadata.toml`` (docs/spec-notes.md §5.4): written by the platform, read by the exporter, which puts it in
the ``io.buildpacks.project.metadata`` label.

```toml
# every key optional
[source]
type = "git"
[source.version]         # free-form
[source.metadata]        # free-form
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml


@dataclass(frozen=True)
class ProjectSource:
    """``[source]`` of project-metadata.toml."""

    type: str = ""
    version: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: Table) -> ProjectSource:
        return cls(type=table.get_str("type"), version=table.raw_table("version"), metadata=table.raw_table("metadata"))

    def to_dict(self) -> dict[str, Any]:
        """Only the keys that are set (as LC writes the label)."""
        out: dict[str, Any] = {}
        if self.type:
            out["type"] = self.type
        if self.version:
            out["version"] = dict(self.version)
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


@dataclass(frozen=True)
class ProjectMetadata:
    """A parsed project-metadata.toml; *source* is ``None`` when the file has no ``[source]``."""

    source: ProjectSource | None = None

    @classmethod
    def from_table(cls, table: Table) -> ProjectMetadata:
        return cls(source=ProjectSource.from_table(table.table("source")) if table.has("source") else None)

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> ProjectMetadata:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> ProjectMetadata:
        """Read *path*; with *missing_ok* a missing file is empty metadata (the file is optional)."""
        return cls.from_table(read_toml(path, missing_ok=missing_ok))

    def to_dict(self) -> dict[str, Any]:
        return {} if self.source is None else {"source": self.source.to_dict()}

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())
