"""``<layers>/analyzed.toml`` (docs/spec-notes.md §5.1), with LC's keys.

```toml
[image]        reference                      # previous image identifier ("" if none)
[run-image]    reference, image, extend
  [run-image.target]  id, os, arch, arch-variant, [run-image.target.distro] name, version
[build-image]  reference
[metadata]     # the previous image's io.buildpacks.lifecycle.metadata label, in TOML form
```

:class:`LayersMetadata` is the TOML form of the lifecycle metadata label. Keys differ from the JSON label
(§5.1): ``runImage`` → ``run-image``, ``topLayer`` → ``top-layer``, a layer's ``data`` → ``metadata``. The value
types live in ``layers_metadata.py`` (shared with the label and the cache metadata) and are importable from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml
from cnbplatform.files.layers_metadata import (
    BuildpackLayers,
    LayerEntry,
    LayersMetadata,
    RunImageForRebase,
    RunImageRef,
)

__all__ = [
    "Analyzed",
    "BuildpackLayers",
    "ImageIdentifier",
    "LayerEntry",
    "LayersMetadata",
    "RunImageForRebase",
    "RunImageInfo",
    "RunImageRef",
    "TargetInfo",
]


@dataclass(frozen=True)
class ImageIdentifier:
    """An image identifier: registry digest reference, daemon image ID, or OCI layout ``path@digest``."""

    reference: str = ""


@dataclass(frozen=True)
class TargetInfo:
    """``[run-image.target]``: the run image's os/arch/variant/distro and ``io.buildpacks.base.id``."""

    os: str = ""
    arch: str = ""
    arch_variant: str = ""
    distro_name: str = ""
    distro_version: str = ""
    id: str = ""

    @classmethod
    def from_table(cls, table: Table) -> TargetInfo:
        variant = table.get_str("arch-variant") or table.get_str("variant")
        distro = table.table("distro")
        return cls(
            os=table.get_str("os"),
            arch=table.get_str("arch"),
            arch_variant=variant,
            distro_name=distro.get_str("name"),
            distro_version=distro.get_str("version"),
            id=table.get_str("id"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.id:
            out["id"] = self.id
        out["os"] = self.os
        out["arch"] = self.arch
        if self.arch_variant:
            out["arch-variant"] = self.arch_variant
        if self.distro_name or self.distro_version:
            out["distro"] = {"name": self.distro_name, "version": self.distro_version}
        return out


@dataclass(frozen=True)
class RunImageInfo:
    """``[run-image]``: the chosen run image."""

    reference: str = ""
    image: str = ""
    extend: bool = False
    target: TargetInfo | None = None

    @classmethod
    def from_table(cls, table: Table) -> RunImageInfo:
        return cls(
            reference=table.get_str("reference"),
            image=table.get_str("image"),
            extend=table.get_bool("extend"),
            target=TargetInfo.from_table(table.table("target")) if table.has("target") else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"reference": self.reference}
        if self.image:
            out["image"] = self.image
        if self.extend:
            out["extend"] = True
        if self.target is not None:
            out["target"] = self.target.to_dict()
        return out


@dataclass(frozen=True)
class Analyzed:
    """A parsed analyzed.toml."""

    previous_image: ImageIdentifier | None = None
    run_image: RunImageInfo | None = None
    build_image: ImageIdentifier | None = None
    metadata: LayersMetadata = field(default_factory=LayersMetadata)

    @property
    def previous_image_ref(self) -> str:
        return self.previous_image.reference if self.previous_image else ""

    @property
    def run_image_ref(self) -> str:
        return self.run_image.reference if self.run_image else ""

    @classmethod
    def from_table(cls, table: Table) -> Analyzed:
        def ident(key: str) -> ImageIdentifier | None:
            return ImageIdentifier(table.table(key).get_str("reference")) if table.has(key) else None

        return cls(
            previous_image=ident("image"),
            run_image=RunImageInfo.from_table(table.table("run-image")) if table.has("run-image") else None,
            build_image=ident("build-image"),
            metadata=LayersMetadata.from_table(table.table("metadata")),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path = "") -> Analyzed:
        return cls.from_table(Table(data, path))

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> Analyzed:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path) -> Analyzed:
        return cls.from_table(read_toml(path))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.previous_image is not None:
            out["image"] = {"reference": self.previous_image.reference}
        if self.run_image is not None:
            out["run-image"] = self.run_image.to_dict()
        if self.build_image is not None:
            out["build-image"] = {"reference": self.build_image.reference}
        out["metadata"] = self.metadata.to_dict()
        return out

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())
