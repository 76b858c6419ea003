"""SBOM files written by buildpacks during the build (docs/spec-notes.md §3.7; §16 items 31 and 32).

A buildpack may write ``<layers>/<bp>/<layer>.sbom.<ext>``, ``launch.sbom.<ext>`` and ``build.sbom.<ext>`` (found
with the glob ``*.sbom.*.json``, as LC does). After each buildpack, :func:`find_sbom_files` checks them: the
extension must be one of ``cdx.json``, ``spdx.json``, ``syft.json`` and its media type must be listed in the
buildpack's ``sbom-formats`` (parameters such as ``;version=1.4`` are ignored), else the build fails (exit 52).
The layer name is everything before the last ``.sbom.``, so layer names may contain dots. A layer SBOM whose
layer has no ``<layer>.toml`` is skipped with a warning (LC skips it silently).

After all buildpacks, :func:`copy_sbom_files` copies them (Platform API ≥ 0.8) to

* ``<layers>/sbom/launch/<bp>/<layer>/sbom.<ext>`` for a launch layer, ``<layers>/sbom/build/<bp>/<layer>/…``
  for any other layer, and additionally ``<layers>/sbom/cache/<bp>/<layer>/…`` for a cache layer;
* ``<layers>/sbom/launch/<bp>/sbom.<ext>`` for ``launch.sbom.<ext>`` and ``<layers>/sbom/build/<bp>/…`` for
  ``build.sbom.<ext>``.

The builder deletes ``<layers>/sbom`` when it starts (:func:`clear_sbom_dir`) and again right before copying, so
nothing a buildpack planted there (a symlink out of the layers dir, say) is written through. Sources are checked
again when copied: a later buildpack could have replaced an earlier one's file with a symlink to a host file.
With Platform API ≥ 0.9 the deprecated ``[[bom]]`` entries of launch.toml and build.toml are written as JSON to
``<layers>/sbom/{launch,build}/sbom.legacy.json`` (:func:`write_legacy_bom`).
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cnbplatform.errors import CnbError
from cnbplatform.files.buildpack_toml import escape_id
from cnbplatform.files.launch import BomEntry, bom_json
from cnbplatform.files.layer_toml import LayerTypes
from cnbplatform.files.untrusted import check_name
from cnbplatform.lifecycle.build.layers import checked_file, phase_error, remove_path
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.sbom.collect import SBOM_MEDIA_TYPES

SbomKind = Literal["launch", "build", "cache"]

SBOM_GLOB = "*.sbom.*.json"


@dataclass(frozen=True)
class SbomFile:
    """One SBOM file of one buildpack and where it goes. *layer* is empty for ``launch``/``build.sbom.<ext>``."""

    buildpack_id: str
    layer: str
    kind: SbomKind
    extension: str
    source: Path

    @property
    def media_type(self) -> str:
        return SBOM_MEDIA_TYPES[self.extension]

    def destination(self, layers_dir: Path) -> Path:
        base = layers_dir / "sbom" / self.kind / escape_id(self.buildpack_id)
        if self.layer:
            base = base / self.layer
        return base / f"sbom.{self.extension}"


def _media_type(declared: str) -> str:
    """A declared media type without parameters, lower-cased (as Go's ``mime.ParseMediaType`` compares)."""
    return declared.split(";", 1)[0].strip().lower()


def find_sbom_files(
    bp_dir: Path,
    *,
    buildpack_id: str,
    buildpack: str,
    layers: Mapping[str, LayerTypes],
    sbom_formats: Sequence[str],
    boundary: Path,
    reporter: Reporter,
) -> list[SbomFile]:
    """The SBOM files in one buildpack's layers dir, validated (item 31); *layers* maps layer names to types."""
    action = f"check the SBOM files of {buildpack}"
    try:
        names = sorted(e.name for e in os.scandir(bp_dir) if fnmatch.fnmatchcase(e.name, SBOM_GLOB))
    except OSError as exc:
        raise phase_error(action, f"{bp_dir}: {exc.strerror or exc}") from exc
    declared = {_media_type(t) for t in sbom_formats}
    found: list[SbomFile] = []
    for name in names:
        path = bp_dir / name
        try:
            check_name(name, file=bp_dir, what="an SBOM file name")  # named in messages and in the image
        except CnbError as exc:
            raise phase_error(action, exc.message) from exc
        owner, _, extension = name.rpartition(".sbom.")
        if extension not in SBOM_MEDIA_TYPES:
            raise phase_error(
                action, f"{path}: unsupported SBOM file extension {extension!r} (use cdx.json, spdx.json or syft.json)"
            )
        media_type = SBOM_MEDIA_TYPES[extension]
        if media_type not in declared:
            listed = ", ".join(sbom_formats) or "none"
            raise phase_error(
                action, f"{path}: SBOM media type {media_type!r} is not declared in sbom-formats (declared: {listed})"
            )
        try:
            checked_file(path, boundary)
        except CnbError as exc:
            raise phase_error(action, exc.message) from exc
        if owner in ("launch", "build"):
            kind: SbomKind = "launch" if owner == "launch" else "build"
            found.append(SbomFile(buildpack_id, "", kind, extension, path))
            continue
        types = layers.get(owner)
        if types is None:
            reporter.warn(f"{buildpack}: ignoring {name}: there is no layer {owner!r} ({owner}.toml)")
            continue
        found.append(SbomFile(buildpack_id, owner, "launch" if types.launch else "build", extension, path))
        if types.cache:
            found.append(SbomFile(buildpack_id, owner, "cache", extension, path))
    return found


def clear_sbom_dir(layers_dir: Path) -> None:
    """Delete ``<layers>/sbom`` (§3.7: the builder starts without one)."""
    path = layers_dir / "sbom"
    try:
        remove_path(path)
    except OSError as exc:
        raise phase_error("clear the SBOM dir", f"{path}: {exc.strerror or exc}") from exc


def copy_sbom_files(layers_dir: Path, files: Iterable[SbomFile]) -> list[Path]:
    """Copy every SBOM file to its place under ``<layers>/sbom`` (item 32); returns the destinations."""
    out: list[Path] = []
    for file in files:
        target = file.destination(layers_dir)
        action = f"copy SBOM file {file.source.name} of {file.buildpack_id}"
        try:
            if not checked_file(file.source, layers_dir):
                raise phase_error(action, f"{file.source} is gone")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file.source, target)
        except CnbError as exc:
            raise phase_error(action, exc.message) from exc
        except OSError as exc:
            raise phase_error(action, f"{target}: {exc.strerror or exc}") from exc
        out.append(target)
    return out


def write_legacy_bom(
    layers_dir: Path, launch: Iterable[tuple[str, str, BomEntry]], build: Iterable[tuple[str, str, BomEntry]]
) -> None:
    """Write ``sbom.legacy.json`` for launch and build (Platform API ≥ 0.9): ``(buildpack id, version, entry)``."""
    for kind, entries in (("launch", launch), ("build", build)):
        path = layers_dir / "sbom" / kind / "sbom.legacy.json"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(bom_json(entries), sort_keys=True, default=str) + "\n", encoding="utf-8")
        except (OSError, ValueError) as exc:
            raise phase_error("write the legacy BOM", f"{path}: {exc}") from exc
