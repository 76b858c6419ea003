"""The layer cache: an unchanged layer is never tarred, hashed or compressed twice.

docs/design.md section 3 decision 4, docs/spec-notes.md section 16 items 42 and 45. Creating a layer goes:

1. Scan the source trees (``lstat`` only) and fingerprint them (:mod:`cnbplatform.oci.layers.fingerprint`),
   together with every option that changes the tar's bytes. If the fingerprint is stable and a
   record for it exists, and the recorded blob is in ``blobs_dir`` with the recorded size, that blob
   is the answer; no source file is opened.
2. Otherwise, if the tree's *shape* (paths, types, sizes, modes, link targets: everything but the
   contents, times and inodes) was seen before with a diffID whose compressed blob is present, the
   content is probably unchanged (typically a layer restored from a cache): the tar is only hashed,
   and if its diffID has a known compressed blob, that blob is the answer, with no compression.
   A tar's shape follows from its bytes, so a layer this cache wrote before is not compressed again
   (while its blob is kept); a shape never seen means new content, which goes straight to step 3.
3. Otherwise the layer is written in one pass (:func:`cnbplatform.oci.layers.tarlayer.write_layer`) and the
   diffID -> (digest, size) mapping, the shape and (when stable) the fingerprint are recorded.

A tree fingerprinted moments after it was written (a layer a build has just made) is unstable, so step 1
could not record it and the next build of the same, unchanged tree would hash it again. So after steps 2
and 3 such a tree is scanned once more: when that scan is stable and equal to the first one (nothing changed
while the tar was read; anything written after it gets a newer timestamp), its fingerprint is recorded.

The index is a directory of small JSON files written atomically (temporary file + rename), so any
number of threads and processes can share one cache; a torn or unreadable record is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from cnbplatform.errors import CnbError
from cnbplatform.oci.layers.compress import MEDIA_TYPE_TAR_GZIP
from cnbplatform.oci.layers.fingerprint import RACY_MARGIN_NS, TreeScan, fingerprint_scan, shape_digest, stat_line
from cnbplatform.oci.layers.stream import DEFAULT_WORKERS
from cnbplatform.oci.layers.tarlayer import (
    TAR_FORMAT,
    Entry,
    LayerBlob,
    LayerSpec,
    TreeSource,
    hash_layer,
    scan_sources,
    write_layer,
)

Outcome = Literal["fingerprint", "diff_id", "written"]


@dataclass(frozen=True)
class CacheResult:
    """A layer blob and how it was obtained (``fingerprint`` hit, known ``diff_id``, or ``written``)."""

    blob: LayerBlob
    outcome: Outcome


@dataclass(frozen=True)
class _Keys:
    fingerprint: str | None  # None: unstable or uncacheable
    options: dict[str, Any] | None  # None: uncacheable
    scans: tuple[TreeScan, ...] = ()
    digests: tuple[str, ...] = ()  # of the trees, stable or not
    settles: bool = False  # unstable only because a tree was written recently: may be scanned again

    @cached_property
    def shape(self) -> str | None:
        """Computed only on a fingerprint miss."""
        if self.options is None:
            return None
        return _sha({"options": self.options, "shapes": [shape_digest(scan) for scan in self.scans]})


def _hex(value: str) -> str:
    return value.split(":", 1)[1] if ":" in value else value


def _sha(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class LayerCache:
    """Index of created layers under *cache_dir*; safe to share between threads and processes.

    ``racy_margin_ns`` is the racy guard's margin (tests lower it; see :mod:`.fingerprint`).
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        use_isal: bool | None = None,
        workers: int = DEFAULT_WORKERS,
        racy_margin_ns: int = RACY_MARGIN_NS,
    ) -> None:
        self.cache_dir = cache_dir
        self._margin = racy_margin_ns
        self._use_isal = use_isal
        self._workers = workers

    # -- public API -------------------------------------------------------------------------------

    def create_layer(
        self,
        source_dir: Path | None,
        *,
        prefix: str = "",
        uid: int = 0,
        gid: int = 0,
        blobs_dir: Path,
        entries: Sequence[Entry] = (),
        parent_mode: int = 0o755,
        parent_uid: int | None = None,
        parent_gid: int | None = None,
    ) -> LayerBlob:
        """The layer of *source_dir* under *prefix* (plus *entries*), reusing earlier work when it can."""
        trees = () if source_dir is None else (TreeSource(source_dir, prefix=prefix),)
        spec = LayerSpec(
            trees=trees,
            entries=tuple(entries),
            uid=uid,
            gid=gid,
            parent_mode=parent_mode,
            parent_uid=parent_uid,
            parent_gid=parent_gid,
        )
        return self.create(spec, blobs_dir).blob

    def create(self, spec: LayerSpec, blobs_dir: Path) -> CacheResult:
        """The layer described by *spec*, as a blob in *blobs_dir* (see the module docstring)."""
        scans = scan_sources(spec)
        keys = self._keys(spec, scans)
        result = self._create(spec, blobs_dir, scans, keys)
        if len(scans) == 1 and not spec.entries and not scans[0].skipped and len(keys.digests) == 1:
            result = replace(result, blob=replace(result.blob, tree_digest=keys.digests[0]))
        return result

    def _create(self, spec: LayerSpec, blobs_dir: Path, scans: Sequence[TreeScan], keys: _Keys) -> CacheResult:
        if keys.fingerprint is not None:
            record = self._read("fingerprints", keys.fingerprint)
            blob = self._blob_from(record, blobs_dir)
            if blob is not None:
                return CacheResult(blob, "fingerprint")
        if keys.shape is not None:
            record = self._read("shapes", keys.shape)
            if record is not None and self.blob_for(str(record.get("diff_id")), blobs_dir) is not None:
                diff_id, tar_size = hash_layer(spec, scans=scans)
                blob = self.blob_for(diff_id, blobs_dir)
                if blob is not None:
                    blob = replace(blob, uncompressed_size=tar_size)
                    self._record(self._settled(spec, keys), blob)
                    return CacheResult(blob, "diff_id")
        blob = write_layer(spec, blobs_dir, scans=scans, use_isal=self._use_isal, workers=self._workers)
        self.remember(blob.diff_id, blob.digest, blob.size, uncompressed_size=blob.uncompressed_size)
        self._record(self._settled(spec, keys), blob)
        return CacheResult(blob, "written")

    def compressed_for(self, diff_id: str) -> tuple[str, int] | None:
        """The (digest, size) of the gzip blob known for *diff_id*, if any (the blob may be gone)."""
        record = self._read("diffids", _hex(diff_id))
        if record is None:
            return None
        digest, size = record.get("digest"), record.get("size")
        if not isinstance(digest, str) or not isinstance(size, int):
            return None
        return digest, size

    def remember(self, diff_id: str, digest: str, size: int, *, uncompressed_size: int | None = None) -> None:
        """Record that the gzip blob *digest* (of *size* bytes) decompresses to the tar *diff_id*."""
        record: dict[str, Any] = {"diff_id": diff_id, "digest": digest, "size": size}
        if uncompressed_size is not None:
            record["uncompressed_size"] = uncompressed_size
        self._write("diffids", _hex(diff_id), record)

    def blob_for(self, diff_id: str, blobs_dir: Path) -> LayerBlob | None:
        """The known gzip blob of *diff_id* if it is present in *blobs_dir* with the recorded size."""
        record = self._read("diffids", _hex(diff_id))
        if record is None:
            return None
        return self._blob_from(record, blobs_dir)

    # -- keys and records -------------------------------------------------------------------------

    def _keys(self, spec: LayerSpec, scans: Sequence[TreeScan]) -> _Keys:
        if any(tree.select is not None and tree.select_key is None for tree in spec.trees):
            return _Keys(None, None)
        now = time.time_ns()
        stable = True
        entries: list[list[Any]] = []
        for entry in spec.entries:
            described: list[Any] = [entry.path, entry.kind, entry.mode, entry.target, entry.uid, entry.gid]
            if entry.data is not None:
                described.append(hashlib.sha256(entry.data).hexdigest())
            if entry.source is not None:
                line, entry_stable = stat_line(entry.source, now_ns=now, margin_ns=self._margin)
                stable = stable and entry_stable
                described += [os.fspath(entry.source), line]
            entries.append(described)
        options = {
            "format": TAR_FORMAT,
            "owner": [spec.uid, spec.gid],
            "parents": [spec.parent_mode, spec.parent_uid, spec.parent_gid],
            "trees": [[t.prefix, t.uid, t.gid, t.select_key] for t in spec.trees],
            "entries": entries,
        }
        prints = [fingerprint_scan(scan, margin_ns=self._margin) for scan in scans]
        digests = tuple(p.digest for p in prints)
        settles = stable and bool(prints) and not all(p.stable for p in prints)
        stable = stable and all(p.stable for p in prints)
        fingerprint = _sha({"options": options, "trees": list(digests)}) if stable else None
        return _Keys(fingerprint, options, tuple(scans), digests, settles)

    def _settled(self, spec: LayerSpec, keys: _Keys) -> _Keys:
        """*keys* with the fingerprint of a second scan of the trees, taken after their tar was read, when that
        scan is stable and the same as the first (module docstring); else *keys* unchanged."""
        if not keys.settles:
            return keys
        again = self._keys(spec, scan_sources(spec))
        if again.fingerprint is None or again.digests != keys.digests:
            return keys
        return replace(keys, fingerprint=again.fingerprint)

    def _record(self, keys: _Keys, blob: LayerBlob) -> None:
        if keys.shape is not None:
            self._write("shapes", keys.shape, {"diff_id": blob.diff_id})
        if keys.fingerprint is not None:
            self._write(
                "fingerprints",
                keys.fingerprint,
                {
                    "diff_id": blob.diff_id,
                    "digest": blob.digest,
                    "size": blob.size,
                    "uncompressed_size": blob.uncompressed_size,
                    "media_type": blob.media_type,
                },
            )

    @staticmethod
    def _blob_from(record: dict[str, Any] | None, blobs_dir: Path) -> LayerBlob | None:
        if record is None:
            return None
        digest, size, diff_id = record.get("digest"), record.get("size"), record.get("diff_id")
        usize = record.get("uncompressed_size", -1)
        if not (isinstance(digest, str) and isinstance(size, int) and isinstance(diff_id, str)):
            return None
        if not isinstance(usize, int):
            return None
        path = blobs_dir / _hex(digest)
        try:
            if os.stat(path).st_size != size:
                return None
        except OSError:
            return None
        media_type = record.get("media_type", MEDIA_TYPE_TAR_GZIP)
        return LayerBlob(path, digest, size, diff_id, usize, str(media_type))

    def _read(self, kind: str, key: str) -> dict[str, Any] | None:
        try:
            with open(self.cache_dir / kind / f"{key}.json", "rb") as f:
                value = json.load(f)
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def _write(self, kind: str, key: str, value: dict[str, Any]) -> None:
        directory = self.cache_dir / kind
        data = json.dumps(value, sort_keys=True).encode()
        try:
            directory.mkdir(parents=True, exist_ok=True)
            import tempfile  # records are written on a miss only

            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                os.replace(tmp, directory / f"{key}.json")
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise CnbError(f"cannot write the layer cache record {directory / key}: {exc.strerror}") from exc
