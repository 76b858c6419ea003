"""Layers taken from the previous image (docs/spec-notes.md §6.7; §16 items 43-45).

- A layer the exporter made whose diffID equals the sha the previous image's metadata recorded for the same slot
  (buildpack layer, SBOM, any app layer, launcher, config, process types) is replaced by the previous image's own
  :class:`~cnbplatform.oci.image.Layer`: the written manifest names the previous blob, so a store that holds the
  previous image finds it present and uploads nothing (docs/design.md §3 decision 5).
- A ``launch=true`` layer without a local directory is taken from the previous image by the recorded sha; no
  record, or a previous image without that layer, is an export error.

The launcher's environment is compiled at export time from the launch layers' ``env*/``, ``bin``, ``lib``,
``exec.d`` and ``profile.d`` (docs/design.md §3 decision 3), so a reused layer without a local directory is read once:
:func:`launch_skeleton` recreates just those parts (env files with their contents, the rest as empty
placeholders) in a scratch directory that stands in for the layer when compiling.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterable
from pathlib import Path

from cnbplatform.errors import CnbError
from cnbplatform.oci.image import Image, Layer
from cnbplatform.oci.layers.compress import open_uncompressed

#: Env files larger than this are not read from a reused layer (an env value this large is not an env value).
MAX_ENV_FILE = 1 << 20
_ENV_DIRS = ("env", "env.launch")
_SCRIPT_DIRS = ("exec.d", "profile.d")
_MARKER_DIRS = ("bin", "lib")


class PreviousLayers:
    """The previous image's layers by diffID (first occurrence wins); empty without a previous image."""

    def __init__(self, image: Image | None) -> None:
        self._by_diff_id: dict[str, Layer] = {}
        if image is not None:
            for layer in image.layers():
                self._by_diff_id.setdefault(layer.diff_id, layer)

    def get(self, diff_id: str | None) -> Layer | None:
        return self._by_diff_id.get(diff_id) if diff_id else None

    def matching(self, diff_id: str, recorded: Iterable[str | None]) -> Layer | None:
        """The previous layer to use instead of a new layer *diff_id*, when the metadata recorded that sha."""
        if diff_id not in {sha for sha in recorded if sha}:
            return None
        return self._by_diff_id.get(diff_id)


def _relative(name: str, prefix: str) -> list[str] | None:
    """The path components of tar member *name* below *prefix* (``None``: not below it, or not clean)."""
    if ".." in name.split("/"):
        return None  # never resolved, as the unpacker refuses it
    while name.startswith("./"):
        name = name[2:]
    clean = posixpath.normpath("/" + name.lstrip("/"))
    if not clean.startswith(prefix + "/"):
        return None
    parts = clean[len(prefix) + 1 :].split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    return parts


def _place(dest: Path, parts: list[str], member: tarfile.TarInfo, tar: tarfile.TarFile) -> None:
    top = parts[0]
    path = dest.joinpath(*parts)
    if member.isdir():
        if top in _ENV_DIRS or top in _SCRIPT_DIRS or (top in _MARKER_DIRS and len(parts) == 1):
            path.mkdir(parents=True, exist_ok=True)
        return
    if top in _MARKER_DIRS and len(parts) == 1 and member.issym():
        path.mkdir(parents=True, exist_ok=True)  # a symlinked bin/lib still counts (as for a local layer)
    elif top in _SCRIPT_DIRS and len(parts) > 1:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()  # only the name matters: the script runs from the image
    elif top in _ENV_DIRS and len(parts) > 1 and member.isfile() and member.size <= MAX_ENV_FILE:
        source = tar.extractfile(member)
        if source is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(source.read())


def launch_skeleton(layer: Layer, image_dir: str, dest: Path) -> Path:
    """Recreate in *dest* what the launch-env compiler reads from the layer directory *image_dir* (an absolute
    path inside the image) of *layer*; returns *dest*."""
    prefix = posixpath.normpath("/" + image_dir.strip("/"))
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with layer.open() as compressed:
            raw = open_uncompressed(compressed, layer.descriptor.media_type or None)
            with raw, tarfile.open(fileobj=raw, mode="r|") as tar:
                for member in tar:
                    parts = _relative(member.name, prefix)
                    if parts is not None:
                        _place(dest, parts, member, tar)
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise CnbError(f"read layer {layer.diff_id} of the previous image: {exc}") from exc
    return dest
