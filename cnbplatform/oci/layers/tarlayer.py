"""Deterministic tar layers, hashed and compressed in one pass (docs/design.md section 3 decision 4).

A layer is described by a :class:`LayerSpec`: host directory trees (each under an optional path
prefix) plus explicitly added entries. The archive is a pure function of that description and of the
files' contents and permission bits:

* entries sorted by path, component by component (a directory's subtree follows it directly),
  with every missing parent directory added (caller-chosen owner and mode);
* mtime 1980-01-01T00:00:01Z, numeric uid/gid chosen by the caller, empty uname/gname
  (docs/spec-notes.md section 16 items 35 and 36);
* permission bits kept, including setuid/setgid/sticky; symlinks kept as symlinks; the second and
  later paths of a hard-linked file become hard-link entries; sockets, fifos and devices skipped;
* relative names only, never ``..``.

:func:`write_layer` makes the tar, hashes it (the diffID), gzips it (:mod:`cnbplatform.oci.layers.compress`)
and hashes the result (the digest) in a single pass over the files, with blocks deflated by worker
threads, and never holds more than a few MiB of file content in memory. The blob lands atomically as
``<blobs_dir>/<hex>``. The bytes are the same on every machine for the same input and compressor,
whatever the number of threads.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from cnbplatform.errors import CnbError
from cnbplatform.oci.layers.compress import MEDIA_TYPE_TAR_GZIP
from cnbplatform.oci.layers.fingerprint import TreeScan, scan_tree
from cnbplatform.oci.layers.spec import (
    TAR_FORMAT,
    Entry,
    EntryKind,
    Item,
    LayerBlob,
    LayerSpec,
    TreeSource,
    make_plan,
)
from cnbplatform.oci.layers.stream import DEFAULT_WORKERS, ChunkSink, CompressingPipe

__all__ = [
    "MEDIA_TYPE_TAR_GZIP",
    "TAR_FORMAT",
    "Entry",
    "EntryKind",
    "LayerBlob",
    "LayerSpec",
    "TreeSource",
    "hash_layer",
    "scan_sources",
    "write_layer",
    "write_tar",
]


def scan_sources(spec: LayerSpec) -> tuple[TreeScan, ...]:
    """Scan every tree of *spec* (what :func:`write_layer` does when given no scans)."""
    return tuple(scan_tree(tree.root) for tree in spec.trees)


def _emit(plan: Sequence[Item], sink: ChunkSink) -> None:
    for item in plan:
        sink.write(item.header())
        if item.data is not None:
            sink.write(item.data)
            sink.pad(len(item.data))
        elif item.source is not None and item.size:
            sink.copy_file(item.source, item.size)
            sink.pad(item.size)
    sink.finish()


def _prepare(spec: LayerSpec, scans: Sequence[TreeScan] | None) -> list[Item]:
    if scans is None:
        scans = scan_sources(spec)
    if len(scans) != len(spec.trees):
        raise CnbError("internal error: layer spec and tree scans do not match")
    return make_plan(spec, scans)


def hash_layer(spec: LayerSpec, *, scans: Sequence[TreeScan] | None = None) -> tuple[str, int]:
    """diffID and size of the layer's tar, without writing or compressing it."""
    plan = _prepare(spec, scans)
    hasher = hashlib.sha256()
    sink = ChunkSink(hasher.update)
    _emit(plan, sink)
    return "sha256:" + hasher.hexdigest(), sink.total


def write_tar(spec: LayerSpec, out: BinaryIO, *, scans: Sequence[TreeScan] | None = None) -> tuple[str, int]:
    """Write the uncompressed tar to *out*; returns its diffID and size."""
    plan = _prepare(spec, scans)
    hasher = hashlib.sha256()

    def emit(chunk: bytearray) -> None:
        hasher.update(chunk)
        out.write(chunk)

    sink = ChunkSink(emit)
    _emit(plan, sink)
    return "sha256:" + hasher.hexdigest(), sink.total


def write_layer(
    spec: LayerSpec,
    blobs_dir: Path,
    *,
    scans: Sequence[TreeScan] | None = None,
    use_isal: bool | None = None,
    workers: int = DEFAULT_WORKERS,
    fsync: bool = False,
) -> LayerBlob:
    """Tar, hash and gzip the layer in one pass into ``<blobs_dir>/<hex of digest>``.

    Thread-safe; callers parallelise across layers. ``workers`` threads deflate blocks while this one
    reads files, hashes the tar and writes the blob (0: all in this thread); the bytes are the same
    whatever the number. The blob is written to a temporary file in *blobs_dir* and renamed into place.
    """
    plan = _prepare(spec, scans)
    import tempfile  # only when a layer is written (a cache hit writes none)

    try:
        blobs_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=blobs_dir, prefix=".layer-", suffix=".tmp")
    except OSError as exc:
        raise CnbError(f"cannot create a layer blob in {blobs_dir}: {exc.strerror}") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb", buffering=0) as out:
            os.fchmod(out.fileno(), 0o644)
            diff_hasher = hashlib.sha256()
            pipe = CompressingPipe(out, use_isal=use_isal, workers=workers, what=f"layer blob in {blobs_dir}")

            def emit(chunk: bytearray) -> None:
                diff_hasher.update(chunk)
                pipe.put(chunk)

            sink = ChunkSink(emit)
            try:
                _emit(plan, sink)
            except BaseException:
                pipe.abort()
                raise
            digest, size = pipe.finish()
            if fsync:
                os.fsync(out.fileno())
        final = blobs_dir / digest.split(":", 1)[1]
        os.replace(tmp, final)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise CnbError(f"cannot write a layer blob in {blobs_dir}: {exc.strerror or exc}") from exc
        raise
    return LayerBlob(
        path=final,
        digest=digest,
        size=size,
        diff_id="sha256:" + diff_hasher.hexdigest(),
        uncompressed_size=sink.total,
    )
