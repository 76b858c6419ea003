"""``system.toml`` (Platform API 0.15): system buildpacks added to every group (docs/spec-notes.md §4.1, §5.2).

```toml
[[system.pre.buildpacks]]
  id = "example/certs"
  version = "1.0.0"
  optional = false
[[system.post.buildpacks]]
  id = "example/scan"
  version = "0.1.0"
```

``optional`` is kept as the spec defines it (the Go lifecycle ignores it and treats every system buildpack as
required); :meth:`SystemConfig.apply` honours it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml
from cnbplatform.files.order import GroupEntry, Order, OrderGroup, parse_entry


@dataclass(frozen=True)
class SystemConfig:
    """System buildpacks inserted before (``pre``) and after (``post``) every top-level group."""

    pre: tuple[GroupEntry, ...] = ()
    post: tuple[GroupEntry, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> SystemConfig:
        system = table.table("system")
        return cls(
            pre=tuple(parse_entry(t) for t in system.table("pre").tables("buildpacks")),
            post=tuple(parse_entry(t) for t in system.table("post").tables("buildpacks")),
        )

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> SystemConfig:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path) -> SystemConfig:
        """Read system.toml; a missing file gives an empty config."""
        return cls.from_table(read_toml(path, missing_ok=True))

    @property
    def is_empty(self) -> bool:
        return not self.pre and not self.post

    def to_dict(self) -> dict[str, Any]:
        system: dict[str, Any] = {}
        if self.pre:
            system["pre"] = {"buildpacks": [e.to_dict() for e in self.pre]}
        if self.post:
            system["post"] = {"buildpacks": [e.to_dict() for e in self.post]}
        return {"system": system}

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())

    def apply_to_group(self, group: OrderGroup) -> OrderGroup:
        """*group* with ``pre`` prepended and ``post`` appended, skipping any system buildpack whose id is already
        in *group* (§4.1)."""
        present = {entry.id for entry in group}
        pre = tuple(e for e in self.pre if e.id not in present)
        post = tuple(e for e in self.post if e.id not in present)
        return OrderGroup((*pre, *group.entries, *post))

    def apply(self, order: Order) -> Order:
        """*order* with the system buildpacks added to every top-level group; extension groups are unchanged."""
        if self.is_empty:
            return order
        return Order(tuple(self.apply_to_group(g) for g in order.groups), order.order_extensions)
