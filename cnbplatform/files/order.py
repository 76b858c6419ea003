"""``order.toml`` (docs/spec-notes.md §4.1, §5.2) and the group entries shared with composite buildpacks' ``[[order]]``
(§3.1) and ``system.toml`` (§5.2).

```toml
[[order]]
  [[order.group]]
  id = "example/node"
  version = "1.2.3"
  optional = false          # defaults to false; written only when true
[[order-extensions]]
  [[order-extensions.group]]
  id = "example/apt"
  version = "0.1.0"
```
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml
from cnbplatform.files.untrusted import check_module_id, check_version


@dataclass(frozen=True)
class GroupEntry:
    """One buildpack (or extension) reference in a group: ``id``, ``version``, ``optional``, ``exec-env``.

    ``exec_env`` is only meaningful in a composite buildpack's ``[[order.group]]`` (Buildpack API 0.12);
    empty means "every execution environment".
    """

    id: str
    version: str = ""
    optional: bool = False
    exec_env: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.id}@{self.version}" if self.version else self.id

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.version:
            out["version"] = self.version
        if self.optional:
            out["optional"] = True
        if self.exec_env:
            out["exec-env"] = list(self.exec_env)
        return out


@dataclass(frozen=True)
class OrderGroup:
    """One ``[[order]]`` element: the ``group`` entries tried together, in order."""

    entries: tuple[GroupEntry, ...] = field(default_factory=tuple)

    def __iter__(self) -> Iterator[GroupEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {"group": [e.to_dict() for e in self.entries]}


def exec_env_list(table: Table, key: str = "exec-env") -> tuple[str, ...]:
    """Read ``exec-env`` as either an array of strings (LC, group entries) or an array of ``{name = ...}`` tables
    (the spec's ``[[buildpack.exec-env]]``); the two forms may be mixed item by item."""
    if not table.has(key):
        return ()
    value = table.data[key]
    if not isinstance(value, list):
        raise table.error(key, "expected an array of strings or of tables with 'name'")
    names: list[str] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            name = item
        elif isinstance(item, dict):
            prefix = f"{table.prefix}.{key}[{i}]" if table.prefix else f"{key}[{i}]"
            name = Table(item, table.path, prefix).get_str("name", required=True)
        else:
            raise table.error(f"{key}[{i}]", "expected a string or a table with 'name'")
        if not name:
            raise table.error(f"{key}[{i}]", "execution environment name must not be empty")
        names.append(name)
    return tuple(names)


def parse_entry(table: Table, *, version_required: bool = True, with_exec_env: bool = False) -> GroupEntry:
    """Read one group entry; ``id`` (and, unless told otherwise, ``version``) must be non-empty strings."""
    entry_id = table.get_str("id", required=True)
    if not entry_id:
        raise table.error("id", "must not be empty")
    check_module_id(entry_id, file=table.path, key=table._key("id"))  # it names <buildpacks>/<id> and <layers>/<id>
    version = table.get_str("version", required=version_required)
    if version_required and not version:
        raise table.error("version", "must not be empty")
    if version:
        check_version(version, file=table.path, key=table._key("version"))
    return GroupEntry(
        id=entry_id,
        version=version,
        optional=table.get_bool("optional"),
        exec_env=exec_env_list(table) if with_exec_env else (),
    )


def parse_groups(table: Table, key: str, *, with_exec_env: bool = False) -> tuple[OrderGroup, ...]:
    """Read ``[[<key>]] [[<key>.group]]`` (an order) from *table*."""
    groups = []
    for group_table in table.tables(key):
        entries = tuple(parse_entry(t, with_exec_env=with_exec_env) for t in group_table.tables("group"))
        groups.append(OrderGroup(entries))
    return tuple(groups)


@dataclass(frozen=True)
class Order:
    """The platform's ``order.toml``: buildpack groups tried in order, plus optional extension groups."""

    groups: tuple[OrderGroup, ...] = ()
    order_extensions: tuple[OrderGroup, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> Order:
        return cls(groups=parse_groups(table, "order"), order_extensions=parse_groups(table, "order-extensions"))

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> Order:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path) -> Order:
        """Read order.toml; a missing file is an error (the platform decides which path to read)."""
        return cls.from_table(read_toml(path))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"order": [g.to_dict() for g in self.groups]}
        if self.order_extensions:
            exts = [{"group": [{"id": e.id, "version": e.version} for e in g]} for g in self.order_extensions]
            out["order-extensions"] = exts
        return out

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())
