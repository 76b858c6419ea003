"""Read image layers as streams of tar entries, without unpacking them (OCI image-spec layer.md "Changeset").

Every layer is decompressed and verified against its diffID while it is read (the stream is read to its end,
so a corrupt layer is an error, not a short listing). Only the files a caller selects are read into memory.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from cnbplatform.errors import CnbError, UnsafeArchiveError
from cnbplatform.oci.digest import CHUNK, verified_reader
from cnbplatform.oci.image import Layer
from cnbplatform.oci.layers.compress import open_uncompressed

EntryKind = Literal["file", "dir", "symlink", "hardlink", "other"]

#: The largest file read into memory (an SBOM, a package database, an os-release).
MAX_FILE = 256 * 1024 * 1024


@dataclass(frozen=True)
class TarEntry:
    """One entry of a layer: ``path`` is relative and normalised (``var/lib/dpkg/status``); ``data`` is set for
    regular files the caller selected; ``link`` is a symlink target or, for hard links, the normalised path of the
    entry linked to."""

    path: str
    kind: EntryKind
    link: str = ""
    data: bytes | None = None


def normalize(name: str) -> str | None:
    """A tar member name as a relative path without ``.`` parts; ``None`` for the root or a name with ``..``."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _kind(member: tarfile.TarInfo) -> EntryKind:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    return "other"


def layer_entries(layer: Layer, select: Callable[[str], bool], *, what: str) -> Iterator[TarEntry]:
    """Every entry of *layer* in tar order, reading the content of regular files whose path *select* accepts.

    Raises CnbError naming *what* when the layer cannot be read, is not a tar, or does not match its diffID.
    """
    try:
        with layer.open() as compressed:
            plain = open_uncompressed(compressed, layer.descriptor.media_type)
            stream = verified_reader(plain, layer.diff_id, None, f"{what} content (diffID)")
            with stream, tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape") as archive:
                while (member := archive.next()) is not None:
                    archive.members = []  # type: ignore[attr-defined]  # streaming: keep no headers
                    path = normalize(member.name)
                    if path is None:
                        continue
                    kind = _kind(member)
                    link = member.linkname
                    if kind == "hardlink":
                        link = normalize(link) or ""
                    data = None
                    if kind == "file" and select(path):
                        data = _read_member(archive, member, what)
                    yield TarEntry(path, kind, link, data)
                while stream.read(CHUNK):  # to EOF: the diffID is checked there
                    pass
    except tarfile.TarError as exc:
        raise UnsafeArchiveError(f"reading {what}: not a readable tar stream: {exc}") from exc
    except OSError as exc:
        raise CnbError(f"reading {what}: {exc.strerror or exc}") from exc


def _read_member(archive: tarfile.TarFile, member: tarfile.TarInfo, what: str) -> bytes:
    if member.size > MAX_FILE:
        raise CnbError(f"reading {what}: {member.name} is too large ({member.size} bytes)")
    handle = archive.extractfile(member)
    return handle.read() if handle is not None else b""
