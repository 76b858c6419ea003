"""The lifecycle metadata of an image, format-neutral (docs/spec-notes.md §5.1, §6.4, §7.1).

:class:`LayersMetadata` is both the ``[metadata]`` table of analyzed.toml (TOML form, ``analyzed.py``) and the
``io.buildpacks.lifecycle.metadata`` label (JSON form, ``labels.py``); :class:`BuildpackLayers` and
:class:`LayerEntry` also make up the cache metadata. Keys differ between the forms (§5.1): ``runImage`` →
``run-image``, ``topLayer`` → ``top-layer``, a layer's ``data`` → ``metadata``.

A module of its own so that reading a label (``cnb rebase``) does not load analyzed.toml's or layer.toml's types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnbplatform.files.common import Table

if TYPE_CHECKING:
    from cnbplatform.files.layer_toml import LayerToml


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
        from cnbplatform.files.layer_toml import LayerToml, LayerTypes

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
