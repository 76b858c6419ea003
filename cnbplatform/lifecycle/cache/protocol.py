"""The build cache seen by the restorer and the exporter (docs/spec-notes.md §7.1), and putting layer tars back into a
layers directory (§2.1 step 4, §7.3 step 4).

:class:`Cache` is one protocol with two backends: :class:`~cnbplatform.lifecycle.cache.directory.DirCache`
(``-cache-dir``) and :class:`~cnbplatform.lifecycle.cache.image.ImageCache` (``-cache-image``). Layers are
named by diffID (the sha the cache metadata records). A reader hands out *openers* of the uncompressed tar
that verify the diffID when read to the end, so a corrupt blob is noticed before anything is trusted
(§16 item 55). A writer (:meth:`Cache.begin`) collects the layers of the next cache and replaces the old
cache only on :meth:`CacheWriter.commit`.

Cached layer tars hold absolute paths of the build container (``/layers/<bp>/<layer>/…``);
:func:`extract_layer` maps the container's layers mount onto the host layers directory.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from cnbplatform.errors import CnbError, UnsafeArchiveError
from cnbplatform.files.labels import CacheMetadata
from cnbplatform.oci.digest import verified_reader
from cnbplatform.oci.image import Layer
from cnbplatform.oci.layers.compress import open_uncompressed
from cnbplatform.oci.layers.spec import LayerBlob
from cnbplatform.oci.rootfs.unpack import unpack_tar

#: Opens the uncompressed tar of a cached layer; reading it to EOF verifies its diffID.
LayerOpener = Callable[[], AbstractContextManager[BinaryIO]]


def _read_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [CnbError, OSError, EOFError, ValueError, zlib.error, tarfile.TarError]
    try:
        isal_error = getattr(importlib.import_module("isal.isal_zlib"), "error", None)
    except ImportError:  # pragma: no cover - isal is a dependency
        isal_error = None
    if isinstance(isal_error, type) and issubclass(isal_error, BaseException):
        errors.append(isal_error)
    return tuple(errors)


#: What reading a damaged layer blob can raise (digest mismatch, truncated or garbled gzip, bad tar).
READ_ERRORS = _read_errors()


class CacheWriter(Protocol):
    """Builds the next version of a cache (§7.2). Nothing is visible to readers before :meth:`commit`."""

    def reuse(self, diff_id: str) -> bool:
        """Carry the existing entry *diff_id* over to the new cache; False when there is none (or it is corrupt)."""
        ...

    def add_dir(self, source_dir: Path, *, prefix: str, uid: int, gid: int) -> str:
        """Add the layer of *source_dir* archived under *prefix* (e.g. ``/layers/<bp>/<layer>``); its diffID."""
        ...

    def add_blob(self, blob: LayerBlob) -> str:
        """Add a layer blob the exporter already wrote (no second tar pass); its diffID."""
        ...

    def adopt_tree(self, diff_id: str, layer_dir: Path, digest: str | None = None) -> bool:
        """Keep *layer_dir* (whose tar is *diff_id*, already added) as an extracted copy for a fast restore;
        *digest*, when given, is its stat digest from the scan its tar was made from (else it is walked again).

        The directory is moved away; call this only once nothing else needs it. False when the backend keeps no
        trees (or cannot, e.g. across filesystems); *layer_dir* is then left where it is.
        """
        ...

    def set_metadata(self, metadata: CacheMetadata) -> None: ...

    def commit(self) -> None:
        """Make the new cache the current one (atomically for a directory cache, by one push for an image)."""
        ...

    def abort(self) -> None:
        """Drop everything added; the current cache stays as it was."""
        ...

    def __enter__(self) -> CacheWriter: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class Cache(Protocol):
    """A build cache (§7.1): its metadata, its layers by diffID, and a writer for the next version."""

    @property
    def description(self) -> str: ...

    def metadata(self) -> CacheMetadata:
        """The cache metadata; a missing cache is empty, a corrupt or unreadable one is empty with a warning."""
        ...

    def layer(self, diff_id: str) -> LayerOpener | None:
        """An opener of the uncompressed tar of *diff_id*, or None when the cache holds no such layer."""
        ...

    def take_tree(self, diff_id: str, dest: Path) -> bool:
        """Move an intact extracted copy of layer *diff_id* to *dest* (which must not exist); False if none."""
        ...

    def begin(self) -> CacheWriter: ...


class WriterBase:
    """Context-manager behaviour shared by the writers: leaving the block without a commit aborts."""

    _done = False

    def __enter__(self) -> WriterBase:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self._done:
            self.abort()

    def abort(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


def tar_opener(layer: Layer) -> LayerOpener:
    """An opener of *layer*'s uncompressed tar; the compressed digest and the diffID are both verified."""

    @contextlib.contextmanager
    def open_tar() -> Iterator[BinaryIO]:
        with layer.open() as compressed:
            raw = open_uncompressed(compressed, layer.descriptor.media_type or None)
            with verified_reader(raw, layer.diff_id, None, f"layer {layer.diff_id}") as tar:
                yield tar

    return open_tar


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


def remove_path(path: Path) -> None:
    """Remove a file, symlink or directory tree at *path* (never following a symlink); absent is fine."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def merge_move(src: Path, dst: Path) -> None:
    """Move *src* to *dst* by rename; directories that exist on both sides are merged, anything else at
    *dst* is replaced. Symlinks at *dst* are replaced, never followed."""
    if not os.path.lexists(dst):
        os.rename(src, dst)
        return
    if _is_dir(src) and _is_dir(dst):
        for child in sorted(os.listdir(src)):
            merge_move(src / child, dst / child)
        os.rmdir(src)
        return
    remove_path(dst)
    os.rename(src, dst)


def mount_parts(layers_mount: str) -> tuple[str, ...]:
    """The components of the build container's layers path (``/layers`` -> ``("layers",)``)."""
    parts = tuple(p for p in layers_mount.split("/") if p not in ("", "."))
    if ".." in parts:
        raise CnbError(f"invalid layers mount {layers_mount!r}: '..' is not allowed")
    return parts


def extract_layer(opener: LayerOpener, layers_dir: Path, *, layers_mount: str, what: str) -> list[str]:
    """Extract a layer tar whose entries live under *layers_mount* (absolute container paths) into *layers_dir*.

    The tar is unpacked safely (:func:`~cnbplatform.oci.rootfs.unpack.unpack_tar`) into a private directory inside
    *layers_dir* and only moved into place once it has been read completely and its diffID verified, so a
    corrupt layer leaves nothing behind. Entries outside the mount are dropped; every top-level entry under the
    mount (``<bp>``, ``sbom``) must be a real directory, so nothing placed here can redirect a later write out of
    *layers_dir*. Returns the names of the top-level entries placed in *layers_dir*.
    """
    parts = mount_parts(layers_mount)
    layers_dir.mkdir(parents=True, exist_ok=True)
    scratch = layers_dir / f".cnb-extract-{os.urandom(16).hex()}"
    try:
        with opener() as stream:
            unpack_tar(stream, scratch, what=what)
        inside = scratch
        for part in parts:
            inside = inside / part
            if not _is_dir(inside):
                return []
        placed = sorted(os.listdir(inside))
        for name in placed:
            if not _is_dir(inside / name):
                raise UnsafeArchiveError(f"unpacking {what}: {layers_mount}/{name} is not a directory")
        for name in placed:
            merge_move(inside / name, layers_dir / name)
        return placed
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
