"""``<layers>/analyzed.toml`` (CNB-SPEC.md §5.1), with LC's keys.

```toml
[image]        reference                      # previous image identifier ("" if none)
[run-image]    reference, image, extend
  [run-image.target]  id, os, arch, arch-variant, [run-image.target.distro] name, version
[build-image]  reference
[metadata]     # the previous image's io.buildpacks.lifecycle.metadata label, in TOML form
```

:class:`LayersMetadata` is the TOML form of the lifecycle metadata label. Keys differ from the JSON label
(§5.1): ``runImage`` → ``run-image``, ``topLayer`` → ``top-layer``, a layer's ``data`` → ``metadata``. The value
types here are shared with the label (``labels.py``) and the cache metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml
from cnbplatform.files.layer_toml import LayerToml, LayerTypes


@dataclass(frozen=True)
class LayerEntry:
    """What the label/cache remember about one buildpack layer: its diffID, ``[metadata]`` and type flags."""

    sha: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    build: bool = False
    launch: bool = False
    cache: bool = False

    @classmethod
    def from_layer_toml(cls, toml: LayerToml, sha: str) -> LayerEntry:
        metadata = dict(toml.metadata)
        if toml.exec_env:
            metadata["exec-env"] = list(toml.exec_env)
        return cls(sha=sha, metadata=metadata, build=toml.types.build, launch=toml.types.launch, cache=toml.types.cache)

    def to_layer_toml(self) -> LayerToml:
        exec_env = self.metadata.get("exec-env")
        valid = isinstance(exec_env, list) and all(isinstance(e, str) for e in exec_env)
        return LayerToml(
            types=LayerTypes(launch=self.launch, build=self.build, cache=self.cache),
            metadata=dict(self.metadata),
            exec_env=tuple(exec_env) if valid and exec_env else (),
        )

    @classmethod
    def from_table(cls, table: Table, data_key: str) -> LayerEntry:
        return cls(
            sha=table.get_str("sha"),
            metadata=table.raw_table(data_key),
            build=table.get_bool("build"),
            launch=table.get_bool("launch"),
            cache=table.get_bool("cache"),
        )

    def to_dict(self, data_key: str) -> dict[str, Any]:
        return {
            "sha": self.sha,
            data_key: dict(self.metadata),
            "build": self.build,
            "launch": self.launch,
            "cache": self.cache,
        }


@dataclass(frozen=True)
class BuildpackLayers:
    """One buildpack's entry in the label / cache metadata: its layers by name and its store.toml metadata."""

    key: str
    version: str = ""
    layers: dict[str, LayerEntry] = field(default_factory=dict)
    store: dict[str, Any] | None = None

    @classmethod
    def from_table(cls, table: Table, data_key: str) -> BuildpackLayers:
        layers_table = table.table("layers")
        layers = {name: LayerEntry.from_table(layers_table.table(name), data_key) for name in layers_table.data}
        store = table.table("store").raw_table("metadata") if table.has("store") else None
        return cls(key=table.get_str("key"), version=table.get_str("version"), layers=layers, store=store)

    def to_dict(self, data_key: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "key": self.key,
            "version": self.version,
            "layers": {name: self.layers[name].to_dict(data_key) for name in sorted(self.layers)},
        }
        if self.store is not None:
            out["store"] = {"metadata": dict(self.store)}
        return out


@dataclass(frozen=True)
class RunImageRef:
    """A run image name and its mirrors (label ``stack.runImage``; run.toml selection)."""

    image: str = ""
    mirrors: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> RunImageRef:
        return cls(image=table.get_str("image"), mirrors=tuple(table.str_list("mirrors")))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.image:
            out["image"] = self.image
        if self.mirrors:
            out["mirrors"] = list(self.mirrors)
        return out


@dataclass(frozen=True)
class RunImageForRebase:
    """The run image the app was built on: top layer diffID, identifier, and the name/mirrors to rebase from."""

    top_layer: str = ""
    reference: str = ""
    image: str = ""
    mirrors: tuple[str, ...] = ()


@dataclass(frozen=True)
class LayersMetadata:
    """The lifecycle metadata of an image (label ``io.buildpacks.lifecycle.metadata``), format-neutral.

    Layer digests are diffIDs (``sha256:…``); ``None`` means "no such layer".
    """

    app: tuple[str, ...] = ()
    sbom: str | None = None
    config: str | None = None
    launcher: str | None = None
    process_types: str | None = None
    buildpacks: tuple[BuildpackLayers, ...] = ()
    run_image: RunImageForRebase = field(default_factory=RunImageForRebase)
    stack: RunImageRef | None = None

    def for_buildpack(self, buildpack_id: str) -> BuildpackLayers | None:
        return next((b for b in self.buildpacks if b.key == buildpack_id), None)

    @classmethod
    def from_table(cls, table: Table) -> LayersMetadata:
        """From the TOML form (the ``[metadata]`` table of analyzed.toml)."""
        run = table.table("run-image")
        return cls(
            app=tuple(t.get_str("sha") for t in table.tables("app")),
            sbom=_sha(table, "sbom"),
            config=_sha(table, "config"),
            launcher=_sha(table, "launcher"),
            process_types=_sha(table, "process-types"),
            buildpacks=tuple(BuildpackLayers.from_table(t, "metadata") for t in table.tables("buildpacks")),
            run_image=RunImageForRebase(
                top_layer=run.get_str("top-layer"),
                reference=run.get_str("reference"),
                image=run.get_str("image"),
                mirrors=tuple(run.str_list("mirrors")),
            ),
            stack=RunImageRef.from_table(table.table("stack").table("run-image")) if table.has("stack") else None,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path = "") -> LayersMetadata:
        return cls.from_table(Table(data, path))

    def to_dict(self) -> dict[str, Any]:
        """The TOML form."""
        return self.serialise(json_names=False)

    def serialise(self, *, json_names: bool) -> dict[str, Any]:
        """The TOML form, or with the label's JSON key names (§5.1 mapping: ``runImage``/``topLayer``/``data``)."""
        run_key, top_key, data_key = (
            ("runImage", "topLayer", "data") if json_names else ("run-image", "top-layer", "metadata")
        )
        out: dict[str, Any] = {"app": [{"sha": sha} for sha in self.app]}
        for key, sha in (
            ("sbom", self.sbom),
            ("config", self.config),
            ("launcher", self.launcher),
            ("process-types", self.process_types),
        ):
            if sha is not None:
                out[key] = {"sha": sha}
        out["buildpacks"] = [b.to_dict(data_key) for b in self.buildpacks]
        run: dict[str, Any] = {top_key: self.run_image.top_layer, "reference": self.run_image.reference}
        run.update(RunImageRef(self.run_image.image, self.run_image.mirrors).to_dict())
        out[run_key] = run
        if self.stack is not None:
            out["stack"] = {run_key: self.stack.to_dict()}
        return out


def _sha(table: Table, key: str) -> str | None:
    """``{sha = …}`` under *key*; absent or ``""`` (LC writes ``sha = ""`` for "none") is ``None``."""
    return (table.table(key).get_str("sha") or None) if table.has(key) else None


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
