"""The directory cache (``-cache-dir``, docs/spec-notes.md §7.1), with layers written once (docs/design.md §3 decision
4).

Layout of the cache directory::

    committed/                                   the current cache (readers look only here)
        io.buildpacks.lifecycle.cache.metadata   the cache metadata JSON (§7.1)
        layers.json                              diffID -> {digest, size, mediaType} of each cached layer
        blobs/<hex of the gzip digest>           each cached layer as its compressed blob
    staging/                                     the next cache while an export writes it
    committed-backup/                            the previous cache during a commit
    trees/<hex of the diffID>/ (+ .json)         extracted copies of cached layers (cache_trees.py)
    .lock                                        serialises writers (flock)

Commit (§7.1): the staged metadata and index are written into ``staging/``, then ``committed`` is renamed to
``committed-backup``, ``staging`` to ``committed``, and the backup is deleted. A failure between the renames
puts the backup back. A crash between them leaves ``committed-backup`` and no ``committed``: the next open
renames the backup back (the previous cache survives); a crash after them leaves a stale backup that the next
writer deletes. Reused layers are hard-linked from ``committed/blobs`` into ``staging/blobs``; new blobs are
created by the shared :class:`~cnbplatform.oci.layers.cache.LayerCache` directly in ``committed/blobs`` (where
its fingerprint hits find them next time) and hard-linked into staging: files no metadata names are harmless
and vanish with the next commit's backup. A commit that would write exactly the committed layers and metadata
(a rebuild that changed nothing cached) leaves ``committed`` as it is and only drops the staging dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cnbplatform.errors import CnbError
from cnbplatform.files.labels import CACHE_METADATA_LABEL, CacheMetadata
from cnbplatform.lifecycle.cache.protocol import LayerOpener, WriterBase, tar_opener
from cnbplatform.lifecycle.cache.trees import TreeStore
from cnbplatform.lifecycle.common import NullReporter, Reporter
from cnbplatform.oci.digest import hash_file, hex_part, is_digest
from cnbplatform.oci.image import FileLayer
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.compress import MEDIA_TYPE_TAR_GZIP
from cnbplatform.oci.layers.spec import LayerBlob
from cnbplatform.oci.model import Descriptor

COMMITTED = "committed"
STAGING = "staging"
BACKUP = "committed-backup"
INDEX = "layers.json"
LOCK = ".lock"


@dataclass(frozen=True)
class _Blob:
    """A cached layer's blob. ``stamp`` is the (inode, size, mtime_ns) the blob file had when it was committed."""

    digest: str
    size: int
    media_type: str = MEDIA_TYPE_TAR_GZIP
    stamp: tuple[int, int, int] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"digest": self.digest, "size": self.size, "mediaType": self.media_type}
        if self.stamp is not None:
            out["stamp"] = list(self.stamp)
        return out


def _stamp(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def _parse_stamp(value: Any) -> tuple[int, int, int] | None:
    if isinstance(value, list) and len(value) == 3 and all(isinstance(n, int) for n in value):
        return value[0], value[1], value[2]
    return None


def _read_index(directory: Path) -> dict[str, _Blob]:
    """The layer index of a committed directory; unreadable entries are left out (they read as missing)."""
    try:
        data = json.loads((directory / INDEX).read_bytes())
    except (OSError, ValueError):
        return {}
    out: dict[str, _Blob] = {}
    if isinstance(data, dict):
        for diff_id, value in data.items():
            if not (is_digest(diff_id) and isinstance(value, dict)):
                continue
            digest, size, media_type = value.get("digest"), value.get("size"), value.get("mediaType")
            if isinstance(digest, str) and is_digest(digest) and isinstance(size, int) and size >= 0:
                kind = media_type if isinstance(media_type, str) else MEDIA_TYPE_TAR_GZIP
                out[diff_id] = _Blob(digest, size, kind, _parse_stamp(value.get("stamp")))
    return out


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        tmp = dst.with_name(f".{dst.name}.{os.urandom(16).hex()}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


class DirCache:
    """A cache directory (§7.1); readers never block, one writer at a time (others wait for the lock)."""

    def __init__(self, path: Path, layer_cache: LayerCache, *, reporter: Reporter | None = None) -> None:
        self.path = Path(path)
        self.layer_cache = layer_cache
        self.reporter: Reporter = reporter or NullReporter()
        self.trees = TreeStore(self.path / "trees", self.reporter)
        with contextlib.suppress(OSError), self._lock(blocking=False) as locked:
            if locked:
                self.repair()

    @property
    def description(self) -> str:
        return f"cache directory {self.path}"

    # -- reading --------------------------------------------------------------------------------------

    def _current(self) -> Path | None:
        """The committed directory, or the backup of an interrupted commit nobody has repaired yet."""
        for name in (COMMITTED, BACKUP):
            if (self.path / name).is_dir():
                return self.path / name
        return None

    def metadata(self) -> CacheMetadata:
        current = self._current()
        if current is None:
            return CacheMetadata()
        path = current / CACHE_METADATA_LABEL
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return CacheMetadata()
        except (OSError, UnicodeDecodeError) as exc:
            self.reporter.warn(f"cannot read cache metadata {path}, using an empty cache: {exc}")
            return CacheMetadata()
        try:
            return CacheMetadata.from_json_strict(text)
        except CnbError as exc:
            self.reporter.warn(f"corrupt cache metadata in {self.path}, using an empty cache: {exc.message}")
            return CacheMetadata()

    def _file_layer(self, directory: Path, diff_id: str) -> FileLayer | None:
        blob = _read_index(directory).get(diff_id)
        if blob is None:
            return None
        descriptor = Descriptor(blob.media_type, blob.digest, blob.size)
        return FileLayer(descriptor, diff_id, directory / "blobs" / hex_part(blob.digest))

    def layer(self, diff_id: str) -> LayerOpener | None:
        current = self._current()
        layer = self._file_layer(current, diff_id) if current is not None else None
        if layer is None or not layer.file.is_file():
            return None
        return tar_opener(layer)

    def take_tree(self, diff_id: str, dest: Path) -> bool:
        return self.trees.take(diff_id, dest)

    # -- writing --------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _lock(self, *, blocking: bool) -> Iterator[bool]:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK, "a+b") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def repair(self) -> None:
        """Finish what an interrupted commit left (caller holds the lock): restore or drop the backup."""
        committed, backup = self.path / COMMITTED, self.path / BACKUP
        if backup.is_dir():
            if committed.is_dir():
                shutil.rmtree(backup, ignore_errors=True)
            else:
                os.rename(backup, committed)
                self.reporter.warn(f"{self.description}: an interrupted commit was rolled back")

    def begin(self) -> DirCacheWriter:
        try:
            return DirCacheWriter(self)
        except OSError as exc:
            raise CnbError(f"cannot start writing {self.description}: {exc.strerror or exc}") from exc


class DirCacheWriter(WriterBase):
    """Stages the next version of a :class:`DirCache`; holds the cache's writer lock until commit or abort."""

    def __init__(self, cache: DirCache) -> None:
        self.cache = cache
        self._lock_cm = cache._lock(blocking=True)
        self._lock_cm.__enter__()
        try:
            cache.repair()
            self.staging = cache.path / STAGING
            shutil.rmtree(self.staging, ignore_errors=True)
            (self.staging / "blobs").mkdir(parents=True)
            self.pool = cache.path / COMMITTED / "blobs"
            self.pool.mkdir(parents=True, exist_ok=True)
        except BaseException:
            self._lock_cm.__exit__(None, None, None)
            raise
        self._committed = _read_index(cache.path / COMMITTED)
        self._staged: dict[str, _Blob] = {}
        self._metadata = CacheMetadata()
        self._restamp = False  # a committed blob verified by hashing: its stamp is stale (a copied cache dir)

    def __enter__(self) -> DirCacheWriter:
        return self

    def _check_open(self) -> None:
        if self._done:
            raise CnbError(f"{self.cache.description}: the cache writer was already committed or aborted")

    def _stage(self, diff_id: str, blob: _Blob, source: Path) -> None:
        _link_or_copy(source, self.staging / "blobs" / hex_part(blob.digest))
        self._staged[diff_id] = blob

    def reuse(self, diff_id: str) -> bool:
        """Hard-link the committed blob of *diff_id* into staging if it verifies (§7.2).

        A blob verifies when its file still has the inode, size and mtime it had at commit (nothing rewrote it
        since; a re-export of an unchanged layer costs one ``stat``, docs/design.md §3 decision 5), or else when it
        hashes to its digest. Whenever a blob is extracted, its digest and diffID are checked in full anyway.
        """
        self._check_open()
        blob = self._committed.get(diff_id)
        if blob is None:
            return False
        source = self.pool / hex_part(blob.digest)
        try:
            unchanged = blob.stamp is not None and _stamp(source) == blob.stamp
            if not unchanged:
                if hash_file(source) != (blob.digest, blob.size):
                    self.cache.reporter.warn(
                        f"{self.cache.description}: cached layer {diff_id} is corrupt, not reusing it"
                    )
                    return False
                self._restamp = True
            self._stage(diff_id, blob, source)
        except OSError as exc:
            self.cache.reporter.warn(f"{self.cache.description}: cannot reuse cached layer {diff_id}: {exc}")
            return False
        return True

    def add_blob(self, blob: LayerBlob) -> str:
        self._check_open()
        try:
            self._stage(blob.diff_id, _Blob(blob.digest, blob.size, blob.media_type), blob.path)
        except OSError as exc:
            raise CnbError(f"cannot add layer {blob.diff_id} to {self.cache.description}: {exc}") from exc
        return blob.diff_id

    def add_dir(self, source_dir: Path, *, prefix: str, uid: int, gid: int) -> str:
        self._check_open()
        blob = self.cache.layer_cache.create_layer(source_dir, prefix=prefix, uid=uid, gid=gid, blobs_dir=self.pool)
        return self.add_blob(blob)

    def adopt_tree(self, diff_id: str, layer_dir: Path, digest: str | None = None) -> bool:
        self._check_open()
        return self.cache.trees.adopt(diff_id, layer_dir, digest)

    def set_metadata(self, metadata: CacheMetadata) -> None:
        self._check_open()
        self._metadata = metadata

    def _referenced(self) -> set[str]:
        shas = {layer.sha for bp in self._metadata.buildpacks for layer in bp.layers.values() if layer.sha}
        if self._metadata.sbom:
            shas.add(self._metadata.sbom)
        return shas

    def commit(self) -> None:
        self._check_open()
        referenced = self._referenced()
        missing = sorted(referenced - set(self._staged))
        if missing:
            self.abort()
            raise CnbError(f"cannot commit {self.cache.description}: no layer was added for {', '.join(missing)}")
        if self._unchanged(referenced):
            shutil.rmtree(self.staging, ignore_errors=True)
            if self._restamp:
                self._restamp_committed()
            self._prune_and_finish()
            return
        root = self.cache.path
        committed, backup = root / COMMITTED, root / BACKUP
        try:
            index = {
                d: replace(b, stamp=_stamp(self.staging / "blobs" / hex_part(b.digest))).to_json()
                for d, b in sorted(self._staged.items())
                if d in referenced
            }
            for diff_id, blob in self._staged.items():
                if diff_id not in referenced:
                    (self.staging / "blobs" / hex_part(blob.digest)).unlink(missing_ok=True)
            _write_file(self.staging / INDEX, json.dumps(index, sort_keys=True).encode())
            _write_file(self.staging / CACHE_METADATA_LABEL, self._metadata.to_json().encode())
            shutil.rmtree(backup, ignore_errors=True)
            had_committed = committed.is_dir()
            if had_committed:
                os.rename(committed, backup)
            try:
                os.rename(self.staging, committed)
            except OSError:
                if had_committed:
                    os.rename(backup, committed)
                raise
            shutil.rmtree(backup, ignore_errors=True)
        except OSError as exc:
            self.abort()
            raise CnbError(f"cannot commit {self.cache.description}: {exc.strerror or exc}") from exc
        self._prune_and_finish()

    def _restamp_committed(self) -> None:
        """Record the current stamps of the committed blobs (which all verified) in the committed index, so that the
        next build reuses them with a ``stat`` each: without it, a cache directory copied or restored elsewhere (new
        inodes) would have every blob hashed on every build until a layer changes. Best effort: the index is
        replaced atomically, and a failure only leaves the old stamps (the blobs are then hashed again)."""
        committed = self.cache.path / COMMITTED
        tmp = committed / f".{INDEX}.{os.urandom(8).hex()}.tmp"
        try:
            index = {d: replace(b, stamp=_stamp(self.pool / hex_part(b.digest))).to_json()
                     for d, b in sorted(self._committed.items())}  # fmt: skip
            _write_file(tmp, json.dumps(index, sort_keys=True).encode())
            os.replace(tmp, committed / INDEX)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _unchanged(self, referenced: set[str]) -> bool:
        """Whether the committed version already is what this commit would write: the same layers (by diffID and
        blob digest) and the same metadata. Committing it again would only rewrite and rename identical files."""
        committed = self._committed
        if set(committed) != referenced or any(self._staged[d].digest != committed[d].digest for d in referenced):
            return False
        try:
            current = (self.cache.path / COMMITTED / CACHE_METADATA_LABEL).read_bytes()
        except OSError:
            return False
        return current == self._metadata.to_json().encode()

    def _prune_and_finish(self) -> None:
        try:
            self.cache.trees.prune({layer.sha for bp in self._metadata.buildpacks for layer in bp.layers.values()})
        finally:
            self._finish()

    def abort(self) -> None:
        if self._done:
            return
        shutil.rmtree(self.staging, ignore_errors=True)
        self._finish()

    def _finish(self) -> None:
        self._done = True
        self._lock_cm.__exit__(None, None, None)
