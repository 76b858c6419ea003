"""``run.toml`` (Platform API >= 0.12) and the legacy ``stack.toml`` (< 0.12): where the run image lives
(docs/spec-notes.md §5.2, §2.1 step 2).

```toml
# run.toml
[[images]]
  image = "registry/run:jammy"
  mirrors = ["mirror.example/run:jammy"]
# stack.toml
[run-image]
  image = "registry/run:jammy"
  mirrors = ["mirror.example/run:jammy"]
```

Both read into :class:`RunConfig`; a missing file is an empty config (the Go lifecycle does the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml


@dataclass(frozen=True)
class RunImage:
    """One ``[[images]]`` entry: a run image and its mirrors (which SHOULD be the same image elsewhere)."""

    image: str
    mirrors: tuple[str, ...] = ()

    @property
    def refs(self) -> tuple[str, ...]:
        return tuple(r for r in (self.image, *self.mirrors) if r)

    @classmethod
    def from_table(cls, table: Table) -> RunImage:
        image = table.get_str("image")
        mirrors = table.str_list("mirrors")
        if mirrors and not image:
            raise table.error("mirrors", "must not be set without 'image'")
        return cls(image, tuple(mirrors))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"image": self.image}
        if self.mirrors:
            out["mirrors"] = list(self.mirrors)
        return out


@dataclass(frozen=True)
class RunConfig:
    """The run images a builder offers, first one preferred."""

    images: tuple[RunImage, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> RunConfig:
        return cls(tuple(RunImage.from_table(t) for t in table.tables("images")))

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> RunConfig:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        """Read run.toml; a missing file gives an empty config."""
        return cls.from_table(read_toml(path, missing_ok=True))

    @classmethod
    def parse_stack(cls, text: str, path: str | Path = "") -> RunConfig:
        return cls._from_stack(parse_toml(text, path))

    @classmethod
    def load_stack(cls, path: Path) -> RunConfig:
        """Read the legacy stack.toml (``[run-image] image, mirrors``); missing file or no image gives empty."""
        return cls._from_stack(read_toml(path, missing_ok=True))

    @classmethod
    def _from_stack(cls, table: Table) -> RunConfig:
        run_image = RunImage.from_table(table.table("run-image"))
        return cls((run_image,) if run_image.image else ())

    def to_dict(self) -> dict[str, Any]:
        return {"images": [i.to_dict() for i in self.images]}

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())
