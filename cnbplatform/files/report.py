"""``report.toml``, written by the exporter and the rebaser (docs/spec-notes.md §5.4).

```toml
[image]
tags = ["registry/app:latest"]
digest = "sha256:…"      # registry export
manifest-size = 1234     # registry export
image-id = "sha256:…"    # daemon export
```

Below Platform API 0.9 the exporter also writes ``[[build.bom]]``: the deprecated build BOM entries of the
buildpacks' ``build.toml`` files, each tagged with its buildpack
(https://github.com/buildpacks/spec/blob/platform/v0.8/platform.md#reporttoml-toml). It is ignored when read.

``project-metadata.toml`` is in ``project_metadata.py``; its types are still importable from here, loaded on
first use (the rebaser writes report.toml and has no use for them).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml

if TYPE_CHECKING:
    from cnbplatform.files.project_metadata import ProjectMetadata as ProjectMetadata
    from cnbplatform.files.project_metadata import ProjectSource as ProjectSource

_MOVED = frozenset({"ProjectMetadata", "ProjectSource"})


@dataclass(frozen=True)
class Report:
    """A parsed report.toml (its ``[image]`` table)."""

    tags: tuple[str, ...] = ()
    digest: str = ""
    manifest_size: int = 0
    image_id: str = ""
    build_bom: tuple[dict[str, Any], ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> Report:
        image = table.table("image")
        return cls(
            tags=tuple(image.str_list("tags")),
            digest=image.get_str("digest"),
            manifest_size=image.get_int("manifest-size"),
            image_id=image.get_str("image-id"),
        )

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> Report:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path) -> Report:
        return cls.from_table(read_toml(path))

    def to_dict(self) -> dict[str, Any]:
        image: dict[str, Any] = {"tags": list(self.tags)}
        if self.image_id:
            image["image-id"] = self.image_id
        if self.digest:
            image["digest"] = self.digest
        if self.manifest_size:
            image["manifest-size"] = self.manifest_size
        out: dict[str, Any] = {"image": image}
        if self.build_bom:
            out["build"] = {"bom": [dict(entry) for entry in self.build_bom]}
        return out

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())


def __getattr__(name: str) -> Any:
    """``ProjectMetadata`` and ``ProjectSource``, moved to ``project_metadata.py``, for importers of this module."""
    if name in _MOVED:
        from cnbplatform.files import project_metadata

        return getattr(project_metadata, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
