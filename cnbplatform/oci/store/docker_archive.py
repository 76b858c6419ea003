"""The Docker image archive format (moby ``image/spec/v1.2.md``, "Combined Image JSON + Filesystem Changeset
Format"; what ``docker save`` writes and ``docker load`` reads), apart from the engine that speaks it
(:mod:`cnbplatform.oci.store.daemon`): :func:`archive` generates one chunk by chunk from an image (``manifest.json``,
the config blob, each layer blob as stored); :class:`SpoolSource` receives one onto disk and
:func:`image_from_archive` reads it back as an OCI image (uncompressed layers gzip-compressed with cnb's
deterministic encoder, diffIDs checked; Docker 25+ OCI-layout saves are read through ``manifest.json`` too)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import shutil
import tarfile
import weakref
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from cnbplatform.errors import DaemonError, DigestMismatchError, NotFoundError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.digest import CHUNK, hash_file, hex_part, new_hasher, sha256_bytes
from cnbplatform.oci.image import (
    BlobOrigin,
    Image,
    SourcedImage,
    descriptor_for,
    read_small_blob,
)
from cnbplatform.oci.layers.compress import GzipEncoder
from cnbplatform.oci.model import Descriptor, ImageConfig, Manifest
from cnbplatform.oci.store.protocol import Progress, WriteResult

_BLOCK = 512
_MAGIC = {b"\x1f\x8b": mt.OCI_LAYER_GZIP, b"\x28\xb5\x2f\xfd": mt.OCI_LAYER_ZSTD}


def guarded(chunks: Iterator[bytes], failure: list[BaseException]) -> Iterator[bytes]:
    """Remember an error raised while generating, so it is reported instead of the broken upload."""
    try:
        yield from chunks
    except BaseException as exc:
        failure.append(exc)
        raise


def _header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="strict")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def archive(image: Image, tags: list[str], progress: Progress, result: WriteResult) -> Iterator[bytes]:
    """The tar stream of a ``docker load`` archive for *image* (moby image/spec v1.2)."""
    config = image.manifest.config
    config_name = f"{hex_part(config.digest)}.json"
    layers = image.layers()
    names = [f"blobs/sha256/{hex_part(layer.descriptor.digest)}" for layer in layers]
    manifest = json.dumps([{"Config": config_name, "RepoTags": tags, "Layers": names}]).encode()
    for name, data in (("manifest.json", manifest), (config_name, image.raw_config)):
        yield _header(name, len(data)) + data + _padding(len(data))
    result.written.append(config.digest)
    sent: set[str] = set()
    for name, layer in zip(names, layers, strict=True):
        desc = layer.descriptor
        if desc.digest in sent:
            continue
        sent.add(desc.digest)
        progress.start(desc.digest, f"layer {desc.digest[7:19]}", desc.size)
        yield _header(name, desc.size)
        with layer.open() as src:
            while chunk := src.read(CHUNK):  # reading to EOF is what verifies the digest
                progress.advance(desc.digest, len(chunk))
                yield chunk
        yield _padding(desc.size)
        progress.finish(desc.digest, "loaded")
        result.written.append(desc.digest)
        result.bytes_written += desc.size
    yield b"\0" * (2 * _BLOCK)


# -- docker save: the spool and the image built from it ------------------------------------------------


class _ChunkReader(io.RawIOBase):
    """A readable stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._rest = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest:
            try:
                self._rest = next(self._chunks)
            except StopIteration:
                return 0
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._rest))
        view[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


class SpoolSource:
    """Blobs of a saved image, in a private temp dir removed by :meth:`close` (or at exit / when dropped)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs: dict[str, Path] = {}
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(root), True)

    @property
    def origin(self) -> BlobOrigin | None:
        return None

    def blob_path(self, descriptor: Descriptor) -> Path | None:
        return self.blobs.get(descriptor.digest)

    @contextlib.contextmanager
    def open_blob(self, descriptor: Descriptor) -> Iterator[BinaryIO]:
        path = self.blobs.get(descriptor.digest)
        if path is None or not path.exists():
            raise NotFoundError(f"blob {descriptor.digest} is not in the docker save spool {self.root}")
        with open(path, "rb") as f:
            yield f

    def read_manifest(self, descriptor: Descriptor) -> bytes:
        return read_small_blob(self, descriptor, "manifest")

    def close(self) -> None:
        self._finalizer()

    def receive(self, chunks: Iterable[bytes]) -> dict[str, Path]:
        """Spool a ``docker save`` stream; returns archive path -> spooled file (links resolved)."""
        files: dict[str, Path] = {}
        links: dict[str, str] = {}
        try:
            with tarfile.open(fileobj=io.BufferedReader(_ChunkReader(chunks), CHUNK), mode="r|") as archive:
                for member in archive:
                    name = posixpath.normpath(member.name.lstrip("/"))
                    if member.isreg():
                        target = self.root / f"file-{len(files)}"
                        src = archive.extractfile(member)
                        assert src is not None
                        with open(target, "wb") as dst:
                            shutil.copyfileobj(src, dst, CHUNK)
                        files[name] = target
                    elif member.issym():
                        links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
                    elif member.islnk():
                        links[name] = posixpath.normpath(member.linkname.lstrip("/"))
        except (tarfile.TarError, EOFError) as exc:
            raise DaemonError(f"docker save returned a broken archive: {exc}") from exc
        for name in links:
            target_name, hops = name, 0
            while target_name in links and hops < 16:
                target_name, hops = links[target_name], hops + 1
            if target_name in files:
                files[name] = files[target_name]
        return files

    def add(self, digest: str, path: Path) -> None:
        self.blobs[digest] = path


def _pick_entry(entries: Any, image_id: str, name: str) -> dict[str, Any]:
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise DaemonError(f"docker save of {name} has no usable manifest.json")
    for entry in entries:
        if hex_part(image_id) in str(entry.get("Config", "")):
            return dict(entry)
    return dict(entries[0])


def image_from_archive(spool: SpoolSource, files: dict[str, Path], image_id: str, name: str) -> Image:
    if "manifest.json" not in files:
        raise DaemonError(f"docker save of {name} has no manifest.json")
    try:
        entry = _pick_entry(json.loads(files["manifest.json"].read_bytes()), image_id, name)
    except json.JSONDecodeError as exc:
        raise DaemonError(f"docker save of {name}: manifest.json is not JSON ({exc})") from exc
    config_path = files.get(posixpath.normpath(str(entry.get("Config", ""))))
    layer_paths = [files.get(posixpath.normpath(str(p))) for p in entry.get("Layers") or ()]
    if config_path is None or any(p is None for p in layer_paths):
        raise DaemonError(f"docker save of {name}: manifest.json names files the archive does not hold")
    raw_config = config_path.read_bytes()
    config = ImageConfig.parse(raw_config)
    if len(config.diff_ids) != len(layer_paths):
        raise DaemonError(
            f"docker save of {name}: {len(layer_paths)} layers but {len(config.diff_ids)} diff_ids in its config"
        )
    config_desc = Descriptor(mt.OCI_CONFIG, sha256_bytes(raw_config), len(raw_config))
    spool.add(config_desc.digest, config_path)
    jobs = dict(zip(layer_paths, config.diff_ids, strict=True))  # a layer saved twice is one file
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        done = dict(zip(jobs, pool.map(lambda job: _layer_blob(spool, *job), jobs.items()), strict=True))
    layers = tuple(done[path] for path in layer_paths)
    manifest = Manifest(media_type=mt.OCI_MANIFEST, config=config_desc, layers=layers)
    raw = manifest.to_bytes()
    return SourcedImage(spool, raw, descriptor_for(raw, mt.OCI_MANIFEST))


def _layer_blob(spool: SpoolSource, path: Path | None, diff_id: str) -> Descriptor:
    """Keep a compressed saved layer; gzip an uncompressed one, checking it against *diff_id*."""
    assert path is not None
    with open(path, "rb") as f:
        head = f.read(4)
    for magic, media_type in _MAGIC.items():
        if head.startswith(magic):
            digest, size = hash_file(path)
            spool.add(digest, path)
            return Descriptor(media_type, digest, size)
    target = path.with_name(path.name + ".gz")
    encoder, plain, packed = GzipEncoder(), new_hasher(diff_id), new_hasher()
    size = 0
    with open(path, "rb") as src, open(target, "wb") as dst:
        while chunk := src.read(CHUNK):
            plain.update(chunk)
            data = encoder.compress(chunk)
            packed.update(data)
            dst.write(data)
            size += len(data)
        data = encoder.finish()
        packed.update(data)
        dst.write(data)
        size += len(data)
    actual = f"{diff_id.split(':', 1)[0]}:{plain.hexdigest()}"
    if actual != diff_id:
        raise DigestMismatchError(f"saved layer {path.name} has diffID {actual}, its config says {diff_id}")
    path.unlink()
    digest = f"sha256:{packed.hexdigest()}"
    spool.add(digest, target)
    return Descriptor(mt.OCI_LAYER_GZIP, digest, size)
