"""Image labels written by the exporter and read by the analyzer, restorer and rebaser, plus the cache metadata
(docs/spec-notes.md §6.4 to §6.6, §7.1). JSON with LC's exact field names.

- ``io.buildpacks.lifecycle.metadata`` → :class:`LifecycleMetadata` (same data as analyzed.toml's
  :class:`~cnbplatform.files.analyzed.LayersMetadata`; keys ``runImage``/``topLayer``, layer ``data``), defined
  with the label names and the shared JSON helpers in ``lifecycle_label.py`` and re-exported here;
- ``io.buildpacks.build.metadata`` → :class:`BuildMetadataLabel` (processes carry ``buildpackID``);
- ``io.buildpacks.project.metadata`` → :class:`ProjectMetadataLabel`;
- ``io.buildpacks.lifecycle.cache.metadata`` → :class:`CacheMetadata`.

``to_json()`` is canonical (sorted keys, no spaces), so equal metadata gives equal bytes and equal image
configs. ``from_json()`` is tolerant as LC is for a previous image: an undecodable label yields empty metadata;
``from_json_strict()`` raises :class:`SpecFileError` naming the label and the key instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnbplatform.files.apis import LATEST_PLATFORM_API
from cnbplatform.files.common import Table
from cnbplatform.files.layers_metadata import BuildpackLayers
from cnbplatform.files.lifecycle_label import (
    BASE_DESCRIPTION_LABEL,
    BASE_DISTRO_NAME_LABEL,
    BASE_DISTRO_VERSION_LABEL,
    BASE_HOMEPAGE_LABEL,
    BASE_ID_LABEL,
    BASE_LABEL_PREFIX,
    BASE_MAINTAINER_LABEL,
    BASE_METADATA_LABEL,
    BASE_RELEASED_LABEL,
    BUILD_METADATA_LABEL,
    CACHE_METADATA_LABEL,
    EXEC_ENV_LABEL,
    LIFECYCLE_METADATA_LABEL,
    PROJECT_METADATA_LABEL,
    REBASABLE_LABEL,
    STACK_ID_LABEL,
    STACK_LABEL_PREFIX,
    STACK_MIXINS_LABEL,
    LifecycleMetadata,
    canonical_json,
    decode_label,
    sha_json,
    tolerant,
)
from cnbplatform.files.metadata import BuildMetadata, BuildpackRef, ProcessEntry, command_as_string, keeps_bom
from cnbplatform.files.project_metadata import ProjectMetadata, ProjectSource

__all__ = [
    "BASE_DESCRIPTION_LABEL",
    "BASE_DISTRO_NAME_LABEL",
    "BASE_DISTRO_VERSION_LABEL",
    "BASE_HOMEPAGE_LABEL",
    "BASE_ID_LABEL",
    "BASE_LABEL_PREFIX",
    "BASE_MAINTAINER_LABEL",
    "BASE_METADATA_LABEL",
    "BASE_RELEASED_LABEL",
    "BUILD_METADATA_LABEL",
    "CACHE_METADATA_LABEL",
    "EXEC_ENV_LABEL",
    "LIFECYCLE_METADATA_LABEL",
    "PROJECT_METADATA_LABEL",
    "REBASABLE_LABEL",
    "STACK_ID_LABEL",
    "STACK_LABEL_PREFIX",
    "STACK_MIXINS_LABEL",
    "BuildMetadataLabel",
    "CacheMetadata",
    "LauncherInfo",
    "LifecycleMetadata",
    "ProjectMetadataLabel",
    "canonical_json",
    "decode_label",
]


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
    """The ``io.buildpacks.build.metadata`` label (§6.5). Labels and slices are not part of it.

    Written as *platform_api* says (empty: the latest): below 0.10 a process ``command`` is one string (the rest
    of the command leads ``args``); below 0.9 the deprecated ``bom`` key is present, ``null`` when no buildpack
    wrote a launch BOM, as the Go lifecycle writes it
    (https://github.com/buildpacks/spec/blob/platform/v0.8/platform.md#iobuildpacksbuildmetadata-json).
    """

    processes: tuple[ProcessEntry, ...] = ()
    buildpacks: tuple[BuildpackRef, ...] = ()
    extensions: tuple[BuildpackRef, ...] = ()
    launcher: LauncherInfo = field(default_factory=LauncherInfo)
    default_process_type: str = ""
    bom: tuple[dict[str, Any], ...] = ()
    platform_api: str = ""

    @classmethod
    def from_build_metadata(
        cls, metadata: BuildMetadata, launcher: LauncherInfo, platform_api: str = ""
    ) -> BuildMetadataLabel:
        return cls(
            processes=metadata.sorted().processes,
            buildpacks=metadata.buildpacks,
            extensions=metadata.extensions,
            launcher=launcher,
            default_process_type=metadata.default_process_type,
            bom=metadata.bom,
            platform_api=platform_api,
        )

    def to_json_dict(self) -> dict[str, Any]:
        api = self.platform_api or LATEST_PLATFORM_API
        as_string = command_as_string(api)
        out: dict[str, Any] = {
            "processes": [p.to_dict(buildpack_id_key="buildpackID", command_string=as_string) for p in self.processes],
            "buildpacks": [_buildpack_json(b) for b in self.buildpacks],
            "launcher": self.launcher.to_json_dict(),
        }
        if keeps_bom(api):
            out["bom"] = [dict(entry) for entry in self.bom] if self.bom else None
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
            bom=tuple(dict(t.data) for t in table.tables("bom")) if isinstance(table.data.get("bom"), list) else (),
        )

    @classmethod
    def from_json_strict(cls, text: str) -> BuildMetadataLabel:
        return cls.from_table(decode_label(text, BUILD_METADATA_LABEL))

    @classmethod
    def from_json(cls, text: str | None) -> BuildMetadataLabel:
        return tolerant(cls.from_json_strict, text or "", cls())


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
        return tolerant(cls.from_json_strict, text or "", cls())


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
        sbom = sha_json(table, "sbom")
        return cls(
            sbom=sbom,
            buildpacks=tuple(BuildpackLayers.from_table(t, "data") for t in table.tables("buildpacks")),
        )

    @classmethod
    def from_json(cls, text: str | None) -> CacheMetadata:
        """Tolerant: corrupt or unreadable cache metadata is an empty cache (§7.1)."""
        return tolerant(cls.from_json_strict, text or "", cls())
