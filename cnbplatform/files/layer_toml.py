"""Layer content metadata ``<layers>/<bp>/<layer>.toml`` (docs/spec-notes.md §3.4).

```toml
[types]
launch = false
build = false
cache = false
[metadata]            # free-form; exec-env = ["production"] optional (Buildpack API 0.12)
```

A missing ``[types]`` table means all three flags are false. ``launch``/``build``/``cache`` at the top level
(outside ``[types]``) is an error (LC; §16 item 24). Restored tomls carry only ``[metadata]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml

_FLAGS = ("launch", "build", "cache")


@dataclass(frozen=True)
class LayerTypes:
    """The ``[types]`` flags of a layer."""

    launch: bool = False
    build: bool = False
    cache: bool = False

    @property
    def any(self) -> bool:
        """Whether the layer is used at all (all false ⇒ the lifecycle renames it ``<layer>.ignore``)."""
        return self.launch or self.build or self.cache


@dataclass(frozen=True)
class LayerToml:
    """A parsed layer toml. *exec_env* mirrors ``metadata["exec-env"]`` (empty = every execution environment)."""

    types: LayerTypes = field(default_factory=LayerTypes)
    metadata: dict[str, Any] = field(default_factory=dict)
    exec_env: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> LayerToml:
        for flag in _FLAGS:
            if table.has(flag):
                raise table.error(flag, "belongs under [types], not at the top level of a layer toml")
        types = table.table("types")
        metadata = table.table("metadata")
        exec_env = metadata.str_list("exec-env")
        return cls(
            types=LayerTypes(
                launch=types.get_bool("launch"), build=types.get_bool("build"), cache=types.get_bool("cache")
            ),
            metadata=dict(metadata.data),
            exec_env=tuple(exec_env),
        )

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> LayerToml:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> LayerToml:
        """Read *path*; with *missing_ok* a missing file reads as an empty toml (all types false), as in LC."""
        return cls.from_table(read_toml(path, missing_ok=missing_ok))

    def _metadata_out(self) -> dict[str, Any]:
        metadata = dict(self.metadata)
        if self.exec_env:
            metadata["exec-env"] = list(self.exec_env)
        return metadata

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "types": {"launch": self.types.launch, "build": self.types.build, "cache": self.types.cache}
        }
        metadata = self._metadata_out()
        if metadata:
            out["metadata"] = metadata
        return out

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())

    def dump_restored(self, path: Path) -> None:
        """Write the toml the restorer leaves for the next build: ``[metadata]`` only, no ``[types]`` (§3.4, §7.3)."""
        write_toml(path, {"metadata": self._metadata_out()})
