"""OCI image layout directories (OCI image-spec "Image Layout"): ``oci-layout``, ``index.json``, ``blobs/``.

Writes are atomic and safe for concurrent writers (docs/design.md §3 decision 7):
- every new blob is streamed, verified, into a private staging dir inside the layout, and only when *all* blobs
  of the artifact are verified are they renamed into ``blobs/<alg>/<hex>``; a corrupt source leaves nothing;
- ``index.json`` is rewritten to a temp file and renamed into place while holding an exclusive ``flock``, so a
  SIGKILL at any moment leaves either the old or the new index, never a torn one;
- writers hold a shared lock for their whole write and garbage collection takes it exclusively, so gc never
  removes a blob that a writer has staged but not indexed yet.
Writes are durable too, as containerd's content store makes them: every new blob (layers, configs, manifests) is
flushed to disk, then renamed into ``blobs/`` and that directory flushed, before ``index.json`` is replaced to name
it, so a power loss leaves an index that names only blobs that are there. The flushes are batched: all blobs of an
artifact are written first, then flushed one after the other, and the directory once.
A writer holds an exclusive ``flock`` on its staging dir (``.cnb-tmp/write-*``) while it lives; every write first
removes the staging dirs whose lock it can take (their writer was killed), so nothing of a killed write stays.
Several tags live in one layout as ``org.opencontainers.image.ref.name`` annotations.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

from cnbplatform.errors import CnbError, NotFoundError, UsageError
from cnbplatform.oci.digest import CHUNK, fsync_dir, hex_part, is_digest
from cnbplatform.oci.fslock import locked_file, try_lock_dir
from cnbplatform.oci.image import (
    Artifact,
    BlobOrigin,
    FileLayer,
    artifact_from_raw,
    read_small_blob,
)
from cnbplatform.oci.model import Descriptor, canonical_json
from cnbplatform.oci.store.protocol import (
    ConfigBlob,
    ManifestBlob,
    NullProgress,
    Progress,
    StoredRef,
    WriteResult,
    dedupe,
    walk,
)

REF_NAME = "org.opencontainers.image.ref.name"
LAYOUT_VERSION = b'{"imageLayoutVersion":"1.0.0"}'
_TMP = ".cnb-tmp"
_INDEX_LOCK = ".cnb-index.lock"
_GC_LOCK = ".cnb-gc.lock"
_STAGING_LOCK = ".cnb-staging.lock"

_Staged = list[tuple[str, Path]]
_Garbage = list[tuple[Path, int]]
_Entries = list[dict[str, Any]]


class LayoutBlobSource:
    """Blobs of a layout directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def origin(self) -> BlobOrigin | None:
        return None

    def blob_path(self, descriptor: Descriptor) -> Path | None:
        algorithm, encoded = descriptor.digest.split(":", 1)
        return self.root / "blobs" / algorithm / encoded

    def read_manifest(self, descriptor: Descriptor) -> bytes:
        return read_small_blob(self, descriptor, "manifest")

    @contextlib.contextmanager
    def open_blob(self, descriptor: Descriptor) -> Iterator[BinaryIO]:
        path = self.blob_path(descriptor)
        assert path is not None
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError as exc:
            raise NotFoundError(f"blob {descriptor.digest} is missing from layout {self.root}") from exc
        with f:
            yield f


class LayoutStore:
    """An OCI image layout directory holding any number of tagged images and indexes."""

    def __init__(self, root: Path, *, create: bool = True) -> None:
        self.root = Path(root)
        self._create = create
        self.source = LayoutBlobSource(self.root)

    @property
    def description(self) -> str:
        return f"oci:{self.root}"

    # -- reading ---------------------------------------------------------------------------------------

    def _read_index(self) -> dict[str, Any]:
        path = self.root / "index.json"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            if not (self.root / "oci-layout").exists():
                raise NotFoundError(f"{self.root} is not an OCI image layout (no index.json)") from None
            return {"schemaVersion": 2, "manifests": []}
        try:
            index = json.loads(data)
        except json.JSONDecodeError as exc:
            raise CnbError(f"{path} is corrupt: {exc}") from exc
        if not isinstance(index, dict) or not isinstance(index.get("manifests", []), list):
            raise CnbError(f"{path} is not an OCI image index")
        return index

    def _entries(self) -> Sequence[Descriptor]:
        return [Descriptor.from_json(m, "index.json entry") for m in self._read_index().get("manifests", [])]

    def resolve(self, ref: str | None) -> Descriptor:
        if ref is None:
            entries = self._entries()
            if len(entries) == 1:
                return entries[0]
            if not entries:
                raise NotFoundError(f"{self.description} holds no image")
            raise UsageError(f"{self.description} holds {len(entries)} images; name one as oci:DIR:TAG")
        by_digest = is_digest(ref)
        for entry in reversed(self._read_index().get("manifests", [])):
            # Only the entry asked for becomes a Descriptor (a local store may index hundreds of images).
            if not isinstance(entry, dict):
                continue
            annotations = entry.get("annotations")
            name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
            if name == ref or (by_digest and entry.get("digest") == ref):
                return Descriptor.from_json(entry, "index.json entry")
        raise NotFoundError(f"image {ref!r} not found in {self.description}")

    def read(self, ref: str | None) -> Artifact:
        if ref is not None and "@" in ref:
            return self._read_by_digest(ref.rsplit("@", 1)[1], ref)
        desc = self.resolve(ref)
        raw = read_small_blob(self.source, desc, "manifest")
        return artifact_from_raw(self.source, raw, desc)

    def _read_by_digest(self, digest: str, ref: str) -> Artifact:
        """``name@sha256:…``: any manifest in the layout with that digest (a tagged one or an index child)."""
        if not is_digest(digest):
            raise UsageError(f"invalid digest in {ref!r}")
        path = self.root / "blobs" / digest.replace(":", "/", 1)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"image {ref!r} not found in {self.description}") from None
        return artifact_from_raw(self.source, raw, Descriptor("", digest, len(raw)))

    def list(self) -> Sequence[StoredRef]:
        return [StoredRef(d.annotations.get(REF_NAME, ""), d) for d in self._entries()]

    def has_blob(self, digest: str) -> bool:
        return (self.root / "blobs" / digest.replace(":", "/", 1)).is_file()

    # -- locking ---------------------------------------------------------------------------------------

    def _ensure(self) -> None:
        if (self.root / "oci-layout").exists():
            return
        if not self._create:
            raise NotFoundError(f"{self.root} is not an OCI image layout")
        try:
            (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CnbError(f"cannot create OCI layout {self.root}: {exc.strerror}") from exc
        if not (self.root / "index.json").exists():
            self._replace_file("index.json", canonical_json({"schemaVersion": 2, "manifests": []}))
        self._replace_file("oci-layout", LAYOUT_VERSION)

    @contextlib.contextmanager
    def _lock(self, name: str, mode: int) -> Iterator[None]:
        with open(self.root / name, "a+b") as f:
            fcntl.flock(f.fileno(), mode)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _replace_file(self, name: str, data: bytes) -> None:
        tmp = self.root / f".{name}.{os.urandom(16).hex()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / name)
        fsync_dir(self.root)

    def _update_index(self, change: Any) -> None:
        """Apply *change* (entries -> entries) to index.json under the exclusive index lock."""
        with self._lock(_INDEX_LOCK, fcntl.LOCK_EX):
            index = self._read_index()
            index["schemaVersion"] = 2
            index["mediaType"] = "application/vnd.oci.image.index.v1+json"
            index["manifests"] = change(list(index.get("manifests", [])))
            self._replace_file("index.json", json.dumps(index, indent=2).encode() + b"\n")

    # -- writing ---------------------------------------------------------------------------------------

    def write(self, artifact: Artifact, ref: str | None, progress: Progress | None = None) -> WriteResult:
        progress = progress or NullProgress()
        self._ensure()
        result = WriteResult(descriptor=artifact.descriptor)
        with self._lock(_GC_LOCK, fcntl.LOCK_SH):
            staging = _Staging(self.root / _TMP, self.root / _STAGING_LOCK)
            try:
                staging.clean_dead()
                staged = self._stage(artifact, staging, progress, result)
                _flush(path for _, path in staged)
                directories: set[Path] = set()
                for digest, path in staged:
                    target = self.root / "blobs" / digest.replace(":", "/", 1)
                    try:
                        os.replace(path, target)
                    except FileNotFoundError:  # a new algorithm's directory (sha512)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        os.replace(path, target)
                    directories.add(target.parent)
                for directory in sorted(directories):
                    fsync_dir(directory)
            finally:
                staging.remove()
            if ref is not None or not any(d.digest == artifact.descriptor.digest for d in self._entries()):
                self._add_entry(artifact.descriptor, ref)
        return result

    def _stage(self, artifact: Artifact, staging: _Staging, progress: Progress, result: WriteResult) -> _Staged:
        """Write every blob the layout lacks into *staging*, verified (not flushed yet: the caller flushes them all
        at once); blobs already present are only counted (their names are their digests, checked when they were
        written: nothing is read or hashed again)."""
        staged: _Staged = []
        for item in dedupe(list(walk(artifact))):
            desc = item.descriptor
            if self.has_blob(desc.digest):
                result.existing.append(desc.digest)
                progress.finish(desc.digest, "exists")
                continue
            path = staging.path(hex_part(desc.digest))
            if isinstance(item, ManifestBlob | ConfigBlob):
                path.write_bytes(item.data)
            elif isinstance(item, FileLayer):
                _link_or_copy(item.file, path)
            else:
                progress.start(desc.digest, f"layer {desc.digest[7:19]}", desc.size)
                with item.open() as src, open(path, "wb") as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                        progress.advance(desc.digest, len(chunk))
                progress.finish(desc.digest, "written")
            staged.append((desc.digest, path))
            result.written.append(desc.digest)
            result.bytes_written += desc.size
        return staged

    def _add_entry(self, descriptor: Descriptor, ref: str | None) -> None:
        annotations = dict(descriptor.annotations)
        annotations.pop(REF_NAME, None)
        if ref is not None:
            annotations[REF_NAME] = ref
        entry = Descriptor(descriptor.media_type, descriptor.digest, descriptor.size, annotations).to_json()
        if descriptor.platform is not None:
            entry["platform"] = descriptor.platform.to_json()

        def change(entries: _Entries) -> _Entries:
            kept = [e for e in entries if not _same_slot(e, ref, descriptor.digest)]
            return [*kept, entry]

        self._update_index(change)

    def tag(self, ref: str, new_ref: str) -> None:
        desc = self.resolve(ref)
        self._add_entry(desc, new_ref)

    def delete(self, ref: str) -> None:
        desc = self.resolve(ref)

        def change(entries: _Entries) -> _Entries:
            return [e for e in entries if not _same_slot(e, ref, desc.digest)]

        self._update_index(change)

    def gc(self) -> int:
        """Remove blobs no index entry reaches; returns how many were removed."""
        return len(self.collect_garbage())

    def collect_garbage(self, *, dry_run: bool = False) -> _Garbage:
        """The blobs no index entry reaches and the staging dirs of dead writers, with their sizes: removed unless
        *dry_run*. Runs under the exclusive gc lock, so no blob a live writer has staged is touched."""
        if not (self.root / "oci-layout").exists():
            return []
        with self._lock(_GC_LOCK, fcntl.LOCK_EX):
            live: set[str] = set()
            for stored in self.list():
                try:
                    artifact = artifact_from_raw(
                        self.source,
                        read_small_blob(self.source, stored.descriptor, "manifest"),
                        stored.descriptor,
                    )
                    live.update(item.descriptor.digest for item in walk(artifact))
                except CnbError:
                    live.add(stored.descriptor.digest)
            garbage: _Garbage = []
            for directory in (self.root / "blobs").iterdir():
                for path in directory.iterdir():
                    if f"{directory.name}:{path.name}" not in live:
                        with contextlib.suppress(FileNotFoundError):
                            garbage.append((path, path.stat().st_size))
            staging = self.root / _TMP
            if staging.is_dir():  # no writer runs while the gc lock is held exclusively: what is here is dead
                for entry in os.scandir(staging):
                    if entry.is_dir(follow_symlinks=False):
                        size = sum(f.stat().st_size for f in Path(entry.path).iterdir() if f.is_file())
                    else:
                        size = entry.stat(follow_symlinks=False).st_size
                    garbage.append((Path(entry.path), size))
            if not dry_run:
                for path, _ in garbage:
                    if path.is_dir():
                        _remove_dir(path)
                    else:
                        path.unlink(missing_ok=True)
            return garbage


def _same_slot(entry: dict[str, Any], ref: str | None, digest: str) -> bool:
    """Entries a new write replaces: the same tag, or (untagged writes) the same untagged digest."""
    name = (entry.get("annotations") or {}).get(REF_NAME)
    if ref is not None and is_digest(ref):
        return bool(entry.get("digest") == ref)
    if ref is None:
        return name is None and entry.get("digest") == digest
    return bool(name == ref)


class _Staging:
    """A private directory under ``.cnb-tmp`` for one write's blobs, made when the first blob needs it (a write
    whose blobs are all present, or a rebase that adds only a config and a manifest, costs no more than that).

    Its writer holds an exclusive ``flock`` on it until the write ends; the dir is made and locked under the
    layout's staging lock, which cleaners take too, so a cleaner never sees a new dir before its owner locks it."""

    def __init__(self, parent: Path, lock: Path) -> None:
        self.parent = parent
        self.lock = lock
        self.dir: Path | None = None
        self._fd: int | None = None

    def path(self, name: str) -> Path:
        if self.dir is None:
            self.parent.mkdir(exist_ok=True)
            with locked_file(self.lock):
                while True:
                    candidate = self.parent / f"write-{os.urandom(8).hex()}"
                    try:
                        candidate.mkdir(mode=0o700)
                    except FileExistsError:
                        continue
                    self._fd = try_lock_dir(candidate)
                    if self._fd is None:
                        raise CnbError(f"cannot lock the staging directory {candidate}")
                    self.dir = candidate
                    break
        return self.dir / name

    def clean_dead(self) -> None:
        """Remove the staging dirs of writers that are gone (killed mid-write): those whose lock can be taken."""
        try:
            entries = [e.path for e in os.scandir(self.parent) if e.name.startswith("write-")]
        except FileNotFoundError:
            return
        if not entries:
            return
        with locked_file(self.lock):
            for entry in entries:
                fd = try_lock_dir(Path(entry))
                if fd is not None:
                    try:
                        _remove_dir(Path(entry))
                    finally:
                        os.close(fd)

    def remove(self) -> None:
        """Remove what is left (everything, when the write failed; nothing but the directory, when it worked)."""
        if self.dir is None:
            return
        try:
            _remove_dir(self.dir)
        finally:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def _remove_dir(path: Path) -> None:
    """Remove a staging dir and the blobs in it (it holds files only)."""
    try:
        with os.scandir(path) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
    except FileNotFoundError:
        return
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _flush(paths: Iterable[Path]) -> None:
    """Flush the staged blobs to disk, all in one pass after they were all written (the kernel has been writing
    them back meanwhile, so most of each ``fsync`` is already done). A linked blob is flushed too: the layer writer
    does not flush its output, and the layout must not name content that a power loss can take away."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        import shutil

        shutil.copyfile(src, dst)
