"""``group.toml``, the detector's chosen group (docs/spec-notes.md §4.5; platform spec "group.toml").

```toml
[[group]]
id = "example/node"
version = "1.2.3"
api = "0.12"
homepage = "https://…"        # only if set
[[group-extensions]]
id = "example/apt"
version = "0.1.0"
api = "0.12"
```

``optional`` is never written (every member passed detection); extensions are told apart by the table they sit
in, not by an ``extension`` key (the Go lifecycle does the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml
from cnbplatform.files.untrusted import check_module_id, check_version


@dataclass(frozen=True)
class GroupMember:
    """A buildpack or image extension that passed detection."""

    id: str
    version: str
    api: str
    homepage: str = ""
    extension: bool = False

    def __str__(self) -> str:
        return f"{self.id}@{self.version}"

    @classmethod
    def from_table(cls, table: Table, *, extension: bool) -> GroupMember:
        return cls(
            id=check_module_id(_non_empty(table, "id"), file=table.path, key=table._key("id")),
            version=check_version(_non_empty(table, "version"), file=table.path, key=table._key("version")),
            api=_non_empty(table, "api"),
            homepage=table.get_str("homepage"),
            extension=extension,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "version": self.version, "api": self.api}
        if self.homepage:
            out["homepage"] = self.homepage
        return out


@dataclass(frozen=True)
class GroupFile:
    """group.toml: the buildpacks of the selected group in order, then the extensions."""

    group: tuple[GroupMember, ...] = ()
    group_extensions: tuple[GroupMember, ...] = ()

    def __post_init__(self) -> None:
        # members keep the flag that matches the table they are written to
        object.__setattr__(self, "group", tuple(_flag(m, False) for m in self.group))
        object.__setattr__(self, "group_extensions", tuple(_flag(m, True) for m in self.group_extensions))

    @property
    def members(self) -> tuple[GroupMember, ...]:
        """Extensions first (they run first), then buildpacks."""
        return self.group_extensions + self.group

    @classmethod
    def from_table(cls, table: Table) -> GroupFile:
        return cls(
            group=tuple(GroupMember.from_table(t, extension=False) for t in table.tables("group")),
            group_extensions=tuple(GroupMember.from_table(t, extension=True) for t in table.tables("group-extensions")),
        )

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> GroupFile:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path) -> GroupFile:
        return cls.from_table(read_toml(path))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"group": [m.to_dict() for m in self.group]}
        if self.group_extensions:
            out["group-extensions"] = [m.to_dict() for m in self.group_extensions]
        return out

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())


def _flag(member: GroupMember, extension: bool) -> GroupMember:
    if member.extension == extension:
        return member
    return GroupMember(member.id, member.version, member.api, member.homepage, extension)


def _non_empty(table: Table, key: str) -> str:
    value = table.get_str(key, required=True)
    if not value:
        raise table.error(key, "must not be empty")
    return value
