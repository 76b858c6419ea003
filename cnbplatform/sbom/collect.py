"""The buildpack SBOMs of an image, read from its SBOM layer alone (docs/spec-notes.md §3.7, §6.1 item 3, §6.4).

The exporter writes ``<layers>/sbom/launch/`` as one layer and records its diffID as ``sbom.sha`` in the
``io.buildpacks.lifecycle.metadata`` label. That layer is found by diffID among the image's layers and streamed;
no other layer blob is opened. Files come back relative to ``<layers>/sbom``:
``launch/<bp>/<layer>/sbom.<ext>``, ``launch/<bp>/sbom.<ext>``, ``launch/sbom.legacy.json``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.errors import CnbError, NotFoundError, UnsafeArchiveError
from cnbplatform.files.labels import LIFECYCLE_METADATA_LABEL, LifecycleMetadata
from cnbplatform.oci.image import Image, Layer
from cnbplatform.sbom.layers import layer_entries, normalize

#: §3.7: the only SBOM file extensions and their media types (the lifecycle checks buildpacks' SBOMs against it).
SBOM_MEDIA_TYPES: Mapping[str, str] = {
    "cdx.json": "application/vnd.cyclonedx+json",
    "spdx.json": "application/spdx+json",
    "syft.json": "application/vnd.syft+json",
}
_KINDS = ("launch", "build", "cache")


@dataclass(frozen=True)
class SbomFile:
    """One file of the SBOM layer; ``path`` is relative to ``<layers>/sbom`` (``launch/<bp>/<layer>/sbom.cdx.json``)."""

    path: str
    data: bytes

    @property
    def extension(self) -> str:
        """``cdx.json``, ``spdx.json``, ``syft.json`` for SBOM documents; ``legacy.json`` for the legacy BOM."""
        name = self.path.rsplit("/", 1)[-1]
        return name.split(".", 1)[1] if name.startswith("sbom.") else ""

    @property
    def buildpack_dir(self) -> str:
        """The escaped buildpack id (``test_sbom``); empty for files directly under ``launch/``."""
        parts = self.path.split("/")
        return parts[1] if len(parts) > 2 else ""

    @property
    def layer(self) -> str:
        parts = self.path.split("/")
        return "/".join(parts[2:-1]) if len(parts) > 3 else ""


def lifecycle_metadata(image: Image) -> LifecycleMetadata:
    """The image's ``io.buildpacks.lifecycle.metadata`` (empty metadata when the label is absent or undecodable)."""
    return LifecycleMetadata.from_json(image.config.labels.get(LIFECYCLE_METADATA_LABEL))


def sbom_layer(image: Image, metadata: LifecycleMetadata) -> Layer | None:
    """The layer whose diffID is ``sbom.sha``; ``None`` when the image records no SBOM layer."""
    if not metadata.sbom:
        return None
    for layer in image.layers():
        if layer.diff_id == metadata.sbom:
            return layer
    raise NotFoundError(
        f"image {image.descriptor.digest}: {LIFECYCLE_METADATA_LABEL} names SBOM layer {metadata.sbom}, "
        "which is not among the image's layers"
    )


def _relative(path: str, prefix: str) -> str | None:
    """*path* relative to ``<layers>/sbom`` (``prefix``), or found by its ``sbom/<launch|build|cache>/`` part."""
    if prefix and path.startswith(prefix):
        return path[len(prefix) :]
    parts = path.split("/")
    for i in range(len(parts) - 2):
        if parts[i] == "sbom" and parts[i + 1] in _KINDS:
            return "/".join(parts[i + 1 :])
    return None


def read_sbom_files(image: Image, metadata: LifecycleMetadata | None = None) -> list[SbomFile]:
    """Every regular file of the image's SBOM layer, sorted by path; ``[]`` when there is no SBOM layer."""
    metadata = metadata if metadata is not None else lifecycle_metadata(image)
    layer = sbom_layer(image, metadata)
    if layer is None:
        return []
    layers_dir = normalize(image.config.config.env_dict().get("CNB_LAYERS_DIR", "/layers")) or ""
    prefix = f"{layers_dir}/sbom/" if layers_dir else "sbom/"
    files: list[SbomFile] = []
    what = f"SBOM layer {layer.descriptor.digest}"
    for entry in layer_entries(layer, lambda p: _relative(p, prefix) is not None, what=what):
        if entry.data is None:
            continue
        relative = _relative(entry.path, prefix)
        if relative is not None:
            files.append(SbomFile(relative, entry.data))
    return sorted(files, key=lambda f: f.path)


def write_sbom_files(files: Sequence[SbomFile], output_dir: Path) -> list[Path]:
    """Write *files* under *output_dir* (keeping their relative paths); never through a symlink."""
    written: list[Path] = []
    for file in files:
        relative = normalize(file.path)
        if relative is None or relative != file.path:
            raise UnsafeArchiveError(f"refusing SBOM file {file.path!r}: not a plain relative path")
        target = output_dir.joinpath(*relative.split("/"))
        try:
            _make_parents(output_dir, relative.split("/")[:-1])
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            with os.fdopen(fd, "wb") as out:
                out.write(file.data)
        except OSError as exc:
            raise CnbError(f"writing SBOM file {target}: {exc.strerror or exc}") from exc
        written.append(target)
    return written


def _make_parents(root: Path, parts: Sequence[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    current = root
    for part in parts:
        current = current / part
        if current.is_symlink():
            raise UnsafeArchiveError(f"refusing to write through symlink {current}")
        current.mkdir(exist_ok=True)
