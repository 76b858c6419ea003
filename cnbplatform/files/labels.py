"""Image labels written by the exporter and read by the analyzer, restorer and rebaser, plus the cache metadata
(CNB-SPEC.md §6.4 to §6.6, §7.1). JSON with LC's exact field names.

- ``io.buildpacks.lifecycle.metadata`` → :class:`LifecycleMetadata` (same data as analyzed.toml's
  :class:`~cnbplatform.files.analyzed.LayersMetadata`; keys ``runImage``/``topLayer``, layer ``data``);
- ``io.buildpacks.build.metadata`` → :class:`BuildMetadataLabel` (processes carry ``buildpackID``);
- ``io.buildpacks.project.metadata`` → :class:`ProjectMetadataLabel`;
- ``io.buildpacks.lifecycle.cache.metadata`` → :class:`CacheMetadata`.

``to_json()`` is canonical (sorted keys, no spaces), so equal metadata gives equal bytes and equal image
configs. ``from_json()`` is tolerant as LC is for a previous image: an undecodable label yields empty metadata;
``from_json_strict()`` raises :class:`SpecFileError` naming the label and the key instead.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

from cnbplatform.files.analyzed import BuildpackLayers, LayersMetadata, RunImageForRebase, RunImageRef
from cnbplatform.files.common import SpecFileError, Table
from cnbplatform.files.metadata import BuildMetadata, BuildpackRef, ProcessEntry
from cnbplatform.files.report import ProjectMetadata, ProjectSource

LIFECYCLE_METADATA_LABEL = "io.buildpacks.lifecycle.metadata"
BUILD_METADATA_LABEL = "io.buildpacks.build.metadata"
PROJECT_METADATA_LABEL = "io.buildpacks.project.metadata"
CACHE_METADATA_LABEL = "io.buildpacks.lifecycle.cache.metadata"
REBASABLE_LABEL = "io.buildpacks.rebasable"
EXEC_ENV_LABEL = "io.buildpacks.exec-env"
STACK_LABEL_PREFIX = "io.buildpacks.stack."
STACK_ID_LABEL = "io.buildpacks.stack.id"
STACK_MIXINS_LABEL = "io.buildpacks.stack.mixins"
BASE_LABEL_PREFIX = "io.buildpacks.base."
BASE_ID_LABEL = "io.buildpacks.base.id"
BASE_DISTRO_NAME_LABEL = "io.buildpacks.base.distro.name"
BASE_DISTRO_VERSION_LABEL = "io.buildpacks.base.distro.version"
BASE_MAINTAINER_LABEL = "io.buildpacks.base.maintainer"
BASE_HOMEPAGE_LABEL = "io.buildpacks.base.homepage"
BASE_RELEASED_LABEL = "io.buildpacks.base.released"
BASE_DESCRIPTION_LABEL = "io.buildpacks.base.description"
BASE_METADATA_LABEL = "io.buildpacks.base.metadata"

_T = TypeVar("_T")


def _json_default(value: Any) -> Any:
    """TOML dates and times (from free-form metadata) become ISO 8601 strings, as LC's JSON does."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def canonical_json(data: Any) -> str:
    """Sorted keys, compact separators, UTF-8 text (not \\u escapes)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def _drop_nulls(value: Any) -> Any:
    """Go writes nil slices/maps as ``null``; read them as absent."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value if v is not None]
    return value


def decode_label(text: str, label: str) -> Table:
    """Parse label JSON into a :class:`Table` whose errors name *label*; the top level must be an object."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise SpecFileError(label, f"label is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecFileError(label, "label is not a JSON object")
    return Table(_drop_nulls(data), label)


def _tolerant(strict: Callable[[str], _T], text: str, empty: _T) -> _T:
    try:
        return strict(text)
    except SpecFileError:
        return empty


def _sha_json(table: Table, key: str) -> str | None:
    """``{"sha": …}`` under *key*; absent or ``""`` (LC writes ``{"sha": ""}`` for "none") is ``None``."""
    return (table.table(key).get_str("sha") or None) if table.has(key) else None


# -- io.buildpacks.lifecycle.metadata ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LifecycleMetadata(LayersMetadata):
    """The ``io.buildpacks.lifecycle.metadata`` label (§6.4): :class:`LayersMetadata` in its JSON form."""

    @classmethod
    def from_layers_metadata(cls, metadata: LayersMetadata) -> LifecycleMetadata:
        return cls(**{f.name: getattr(metadata, f.name) for f in fields(LayersMetadata)})

    def to_layers_metadata(self) -> LayersMetadata:
        return LayersMetadata(**{f.name: getattr(self, f.name) for f in fields(LayersMetadata)})

    def to_json_dict(self) -> dict[str, Any]:
        return self.serialise(json_names=True)

    def to_json(self) -> str:
        return canonical_json(self.to_json_dict())

    @classmethod
    def from_json_table(cls, table: Table) -> LifecycleMetadata:
        """From the JSON form (the label), already decoded into *table*. (``from_table`` reads the TOML form.)"""
        if isinstance(table.data.get("app"), dict):  # very old labels: a single {"sha": …}
            app: tuple[str, ...] = (table.table("app").get_str("sha"),)
        else:
            app = tuple(t.get_str("sha") for t in table.tables("app"))
        run = table.table("runImage")
        return cls(
            app=app,
            sbom=_sha_json(table, "sbom"),
            config=_sha_json(table, "config"),
            launcher=_sha_json(table, "launcher"),
            process_types=_sha_json(table, "process-types"),
            buildpacks=tuple(BuildpackLayers.from_table(t, "data") for t in table.tables("buildpacks")),
            run_image=RunImageForRebase(
                top_layer=run.get_str("topLayer"),
                reference=run.get_str("reference"),
                image=run.get_str("image"),
                mirrors=tuple(run.str_list("mirrors")),
            ),
            stack=RunImageRef.from_table(table.table("stack").table("runImage")) if table.has("stack") else None,
        )

    @classmethod
    def from_json_strict(cls, text: str) -> LifecycleMetadata:
        return cls.from_json_table(decode_label(text, LIFECYCLE_METADATA_LABEL))

    @classmethod
    def from_json(cls, text: str | None) -> LifecycleMetadata:
        """Tolerant: a missing, empty or undecodable label is empty metadata (LC, for the previous image)."""
        return _tolerant(cls.from_json_strict, text or "", cls())


# -- io.buildpacks.build.metadata -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LauncherInfo:
    """``launcher`` of the build metadata label: the launcher's version and where it came from."""

    version: str = ""
    repository: str = ""
    commit: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        return {"version": self.version, "source": {"git": {"repository": self.repository, "commit": self.commit}}}

    @classmethod
    def from_table(cls, table: Table) -> LauncherInfo:
        git = table.table("source").table("git")
        return cls(version=table.get_str("version"), repository=git.get_str("repository"), commit=git.get_str("commit"))


def _buildpack_json(ref: BuildpackRef) -> dict[str, Any]:
    out: dict[str, Any] = {"id": ref.id, "version": ref.version}  # LC leaves out "api"
    if ref.homepage:
        out["homepage"] = ref.homepage
    return out


@dataclass(frozen=True)
class BuildMetadataLabel:
    """The ``io.buildpacks.build.metadata`` label (§6.5). Labels and slices are not part of it."""

    processes: tuple[ProcessEntry, ...] = ()
    buildpacks: tuple[BuildpackRef, ...] = ()
    extensions: tuple[BuildpackRef, ...] = ()
    launcher: LauncherInfo = field(default_factory=LauncherInfo)
    default_process_type: str = ""

    @classmethod
    def from_build_metadata(cls, metadata: BuildMetadata, launcher: LauncherInfo) -> BuildMetadataLabel:
        return cls(
            processes=metadata.sorted().processes,
            buildpacks=metadata.buildpacks,
            extensions=metadata.extensions,
            launcher=launcher,
            default_process_type=metadata.default_process_type,
        )

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "processes": [p.to_dict(buildpack_id_key="buildpackID") for p in self.processes],
            "buildpacks": [_buildpack_json(b) for b in self.buildpacks],
            "launcher": self.launcher.to_json_dict(),
        }
        if self.extensions:
            out["extensions"] = [_buildpack_json(e) for e in self.extensions]
        if self.default_process_type:
            out["buildpack-default-process-type"] = self.default_process_type
        return out

    def to_json(self) -> str:
        return canonical_json(self.to_json_dict())

    @classmethod
    def from_table(cls, table: Table) -> BuildMetadataLabel:
        return cls(
            processes=tuple(
                ProcessEntry.from_table(t, buildpack_id_key="buildpackID") for t in table.tables("processes")
            ),
            buildpacks=tuple(BuildpackRef.from_table(t) for t in table.tables("buildpacks")),
            extensions=tuple(BuildpackRef.from_table(t) for t in table.tables("extensions")),
            launcher=LauncherInfo.from_table(table.table("launcher")),
            default_process_type=table.get_str("buildpack-default-process-type"),
        )

    @classmethod
    def from_json_strict(cls, text: str) -> BuildMetadataLabel:
        return cls.from_table(decode_label(text, BUILD_METADATA_LABEL))

    @classmethod
    def from_json(cls, text: str | None) -> BuildMetadataLabel:
        return _tolerant(cls.from_json_strict, text or "", cls())


# -- io.buildpacks.project.metadata -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProjectMetadataLabel(ProjectMetadata):
    """The ``io.buildpacks.project.metadata`` label (§6.6): project-metadata.toml as JSON, ``{}`` when empty."""

    @classmethod
    def from_project_metadata(cls, metadata: ProjectMetadata) -> ProjectMetadataLabel:
        return cls(source=metadata.source)

    def to_project_metadata(self) -> ProjectMetadata:
        return ProjectMetadata(source=self.source)

    def to_json(self) -> str:
        return canonical_json(self.to_dict())

    @classmethod
    def from_json_strict(cls, text: str) -> ProjectMetadataLabel:
        table = decode_label(text, PROJECT_METADATA_LABEL)
        return cls(source=ProjectSource.from_table(table.table("source")) if table.has("source") else None)

    @classmethod
    def from_json(cls, text: str | None) -> ProjectMetadataLabel:
        return _tolerant(cls.from_json_strict, text or "", cls())


# -- io.buildpacks.lifecycle.cache.metadata ---------------------------------------------------------------------


@dataclass(frozen=True)
class CacheMetadata:
    """The cache metadata (§7.1): the cached SBOM layer and each buildpack's ``cache=true`` layers."""

    sbom: str | None = None
    buildpacks: tuple[BuildpackLayers, ...] = ()

    def for_buildpack(self, buildpack_id: str) -> BuildpackLayers | None:
        return next((b for b in self.buildpacks if b.key == buildpack_id), None)

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"buildpacks": [b.to_dict("data") for b in self.buildpacks]}
        if self.sbom is not None:
            out["sbom"] = {"sha": self.sbom}
        return out

    def to_json(self) -> str:
        return canonical_json(self.to_json_dict())

    @classmethod
    def from_json_strict(cls, text: str) -> CacheMetadata:
        table = decode_label(text, CACHE_METADATA_LABEL)
        sbom = _sha_json(table, "sbom")
        return cls(
            sbom=sbom,
            buildpacks=tuple(BuildpackLayers.from_table(t, "data") for t in table.tables("buildpacks")),
        )

    @classmethod
    def from_json(cls, text: str | None) -> CacheMetadata:
        """Tolerant: corrupt or unreadable cache metadata is an empty cache (§7.1)."""
        return _tolerant(cls.from_json_strict, text or "", cls())
