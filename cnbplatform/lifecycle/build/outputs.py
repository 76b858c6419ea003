"""What buildpacks tell the builder through ``build.toml`` and ``launch.toml``, collected across the group into
``<layers>/config/metadata.toml`` (docs/spec-notes.md §3.5, §3.6, §5.3; §16 items 22, 23, 28, 29, 30).

* :func:`met_requires` validates ``build.toml``'s ``[[unmet]]`` against the buildpack's plan (an unmet name that
  is not in it fails the build, item 23) and returns the names the buildpack met; those entries are withheld from
  every later buildpack (item 22).
* :class:`ProcessMap` merges process types across buildpacks (item 28): a later definition of a type replaces the
  earlier one; the last process declared ``default = true`` is the default; a later *non-default* redefinition of
  the default type clears the default (with a warning). Two defaults in one launch.toml, a ``direct`` key or a
  string ``command`` with Buildpack API ≥ 0.9 are refused when launch.toml is read (:mod:`cnbplatform.files.launch`).
* :class:`Collected` gathers labels (a later buildpack's value for a key wins), slices, processes and the deprecated
  ``[[bom]]`` entries, and makes the :class:`~cnbplatform.files.metadata.BuildMetadata`. It also keeps what the
  buildpacks' outputs will take of the image config (:func:`config_share`): readers refuse a config larger than
  :data:`~cnbplatform.oci.image.MAX_DOCUMENT`, so a buildpack whose labels or layer metadata would pass
  :data:`CONFIG_BUDGET` fails the build, named, before any image is written.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.errors import CnbError
from cnbplatform.files.apis import ApiVersion
from cnbplatform.files.build_toml import BuildToml
from cnbplatform.files.labels import canonical_json
from cnbplatform.files.launch import BomEntry, Label, LaunchToml, Process, Slice, bom_json
from cnbplatform.files.metadata import BuildMetadata, BuildpackRef, ProcessEntry
from cnbplatform.files.plan import BuildpackPlan
from cnbplatform.lifecycle.build.layers import checked_file, phase_error
from cnbplatform.oci.image import MAX_DOCUMENT

#: What the buildpacks' labels, layer metadata, processes and BOM entries may take of an image config together;
#: the rest of :data:`MAX_DOCUMENT` is left for the run image's config and the lifecycle's own fields.
CONFIG_BUDGET = MAX_DOCUMENT * 3 // 4


def config_share(launch: LaunchToml, layer_metadata: Iterable[Mapping[str, Any]]) -> int:
    """The bytes one buildpack's outputs add to the image config as they are stored there: a label as a JSON
    string, layer metadata, processes and BOM entries as JSON inside a label's value (so encoded twice)."""
    size = sum(len(json.dumps(x.key)) + len(json.dumps(x.value)) for x in launch.labels)
    nested: list[Any] = [dict(m) for m in layer_metadata]
    nested += [dataclasses.asdict(p) for p in launch.processes]
    nested += [dataclasses.asdict(b) for b in launch.bom]
    return size + len(json.dumps(canonical_json(nested)))


def read_build_toml(bp_dir: Path, boundary: Path, *, buildpack: str) -> BuildToml:
    """``<layers>/<bp>/build.toml`` (missing = everything met)."""
    path = bp_dir / "build.toml"
    try:
        return BuildToml.load(path) if checked_file(path, boundary) else BuildToml()
    except CnbError as exc:
        raise phase_error(f"read build.toml of {buildpack}", exc.message) from exc


def read_launch_toml(bp_dir: Path, boundary: Path, *, api: str, buildpack: str) -> LaunchToml:
    """``<layers>/<bp>/launch.toml`` read by the rules of the buildpack's API (missing = empty)."""
    path = bp_dir / "launch.toml"
    try:
        return LaunchToml.load(path, api=api) if checked_file(path, boundary) else LaunchToml()
    except CnbError as exc:
        raise phase_error(f"read launch.toml of {buildpack}", exc.message) from exc


def met_requires(plan: BuildpackPlan, build_toml: BuildToml, *, buildpack: str) -> tuple[str, ...]:
    """The plan entry names the buildpack met: its plan minus ``[[unmet]]`` (each of which must be in the plan)."""
    names = set(plan.names)
    for unmet in build_toml.unmet:
        if unmet not in names:
            requested = ", ".join(sorted(names)) or "none"
            raise phase_error(
                f"read build.toml of {buildpack}",
                f"unmet.name {unmet!r} must match a requested dependency (its plan has: {requested})",
            )
    unmet_names = set(build_toml.unmet)
    met: list[str] = []
    for name in plan.names:
        if name not in unmet_names and name not in met:
            met.append(name)
    return tuple(met)


class ProcessMap:
    """Process types across buildpacks (§3.5): later wins; the last ``default = true`` is the default."""

    def __init__(self) -> None:
        self._by_type: dict[str, ProcessEntry] = {}
        self.default_type = ""

    def add(self, processes: Iterable[Process], buildpack_id: str) -> str:
        """Add one buildpack's processes; returns a warning when a non-default redefinition cleared the default."""
        warning = ""
        for process in processes:
            if process.default:
                self.default_type = process.type
                warning = ""
            elif process.type == self.default_type:
                self.default_type = ""
                warning = (
                    f"redefining the default process type {process.type!r} with a process not marked as default "
                    f"(by {buildpack_id}); there is no default process type now"
                )
            self._by_type[process.type] = ProcessEntry.from_process(process, buildpack_id)
        return warning

    def entries(self, platform_api: ApiVersion) -> tuple[ProcessEntry, ...]:
        """The processes sorted by type. For Platform API < 0.10 (one command string) entries after the first move
        to the front of ``args``."""
        out = []
        for ptype in sorted(self._by_type):
            entry = self._by_type[ptype]
            if platform_api.less_than("0.10") and len(entry.command) > 1:
                entry = ProcessEntry(
                    type=entry.type,
                    command=entry.command[:1],
                    args=(*entry.command[1:], *entry.args),
                    direct=entry.direct,
                    buildpack_id=entry.buildpack_id,
                    working_dir=entry.working_dir,
                    exec_env=entry.exec_env,
                )
            out.append(entry)
        return tuple(out)


@dataclass
class Collected:
    """launch.toml and build.toml outputs of the buildpacks so far, in group order."""

    labels: dict[str, str] = field(default_factory=dict)
    slices: list[Slice] = field(default_factory=list)
    processes: ProcessMap = field(default_factory=ProcessMap)
    launch_bom: list[tuple[str, str, BomEntry]] = field(default_factory=list)
    build_bom: list[tuple[str, str, BomEntry]] = field(default_factory=list)
    config_bytes: int = 0

    def charge(self, buildpack: str, share: int) -> None:
        """Count *share* bytes of image config for *buildpack*; fails the build when the buildpacks so far pass
        :data:`CONFIG_BUDGET`, naming this buildpack (the readers' limit would make the image unreadable)."""
        self.config_bytes += share
        if self.config_bytes > CONFIG_BUDGET:
            so_far = f"; with the buildpacks before it, {self.config_bytes}" if self.config_bytes != share else ""
            raise phase_error(
                f"check the outputs of {buildpack}",
                f"its labels, layer metadata, processes and BOM take {share} bytes of the image config{so_far}; "
                f"buildpacks may use {CONFIG_BUDGET} bytes (readers refuse a config over {MAX_DOCUMENT} bytes)",
            )

    def add(self, buildpack_id: str, version: str, launch: LaunchToml, build: BuildToml) -> str:
        """Take one buildpack's outputs; returns a warning (or "") from merging processes."""
        for label in launch.labels:
            self.labels.pop(label.key, None)  # a later definition wins and takes the later place
            self.labels[label.key] = label.value
        self.slices.extend(launch.slices)
        self.launch_bom.extend((buildpack_id, version, e) for e in launch.bom)
        self.build_bom.extend((buildpack_id, version, e) for e in build.bom)
        return self.processes.add(launch.processes, buildpack_id)

    def metadata(
        self, buildpacks: Iterable[BuildpackRef], extensions: Iterable[BuildpackRef], platform_api: ApiVersion
    ) -> BuildMetadata:
        """``metadata.toml`` (§5.3, item 30)."""
        return BuildMetadata(
            buildpacks=tuple(buildpacks),
            extensions=tuple(extensions),
            labels=tuple(Label(k, v) for k, v in self.labels.items()),
            processes=self.processes.entries(platform_api),
            slices=tuple(self.slices),
            default_process_type=self.processes.default_type,
            bom=tuple(bom_json(self.launch_bom)) if platform_api.less_than("0.9") else (),
        )
