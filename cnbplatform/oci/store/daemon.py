"""A Docker engine as an image store, through docker-py (docs/design.md section 2, ``daemon``).

Images go in and out as Docker image archives (moby ``image/spec/v1.2.md``, "Combined Image JSON +
Filesystem Changeset Format"; the ``docker save`` / ``docker load`` format):

* ``write`` streams an archive to ``POST /images/load``: ``manifest.json`` (``Config``, ``RepoTags``,
  ``Layers``), the config blob, and each layer blob exactly as stored (``docker load`` accepts
  compressed layer tars). The archive is generated chunk by chunk while the layers are read through
  their verifying readers; it is never held in memory or on disk.
* ``read`` streams ``GET /images/{name}/get`` into a spool directory, then builds an OCI image from it
  (OCI image-spec "Image Manifest"): the saved config as is, and every uncompressed layer tar
  gzip-compressed with cnb's deterministic encoder, its diffID checked against the config. Docker 25+
  saves an OCI image layout whose ``manifest.json`` names ``blobs/sha256/...`` paths; both forms are read
  through ``manifest.json``.

The engine's image ID is the config digest (classic image store). Every docker-py or requests failure
becomes a :class:`~cnbplatform.errors.DaemonError` or :class:`~cnbplatform.errors.NotFoundError`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posixpath
import shutil
import tarfile
import tempfile
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import docker
import docker.errors
import requests

from cnbplatform.errors import CnbError, DaemonError, DigestMismatchError, NotFoundError, UsageError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.digest import CHUNK, hash_file, hex_part, is_digest, new_hasher, sha256_bytes
from cnbplatform.oci.image import (
    Artifact,
    BlobOrigin,
    Image,
    SourcedImage,
    descriptor_for,
    is_index,
    read_small_blob,
)
from cnbplatform.oci.layers.compress import GzipEncoder
from cnbplatform.oci.model import Descriptor, ImageConfig, InvalidDocumentError, Manifest, Platform
from cnbplatform.oci.reference import parse_reference
from cnbplatform.oci.store.protocol import NullProgress, Progress, StoredRef, WriteResult

DEFAULT_URL = "unix:///var/run/docker.sock"
_BLOCK = 512
_MAGIC = {b"\x1f\x8b": mt.OCI_LAYER_GZIP, b"\x28\xb5\x2f\xfd": mt.OCI_LAYER_ZSTD}


class DaemonStore:
    """Images in a Docker engine, named by Docker references (``myapp:latest``) or image IDs."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        client_factory: Callable[[], Any] | None = None,
        environment: Mapping[str, str] | None = None,
        spool_dir: Path | None = None,
        timeout: int = 600,
    ) -> None:
        self._factory = client_factory
        self._kwargs: dict[str, Any] = {}
        if base_url is not None:
            self._kwargs["base_url"] = base_url
        elif client_factory is None and environment is None:
            self._kwargs = dict(docker.utils.kwargs_from_env())
        elif client_factory is None and environment:
            self._kwargs = dict(docker.utils.kwargs_from_env(environment=environment))
        self.url = str(self._kwargs.get("base_url") or ("the configured address" if client_factory else DEFAULT_URL))
        self._spool_dir = spool_dir
        self._timeout = timeout
        self._client: Any = None

    @property
    def description(self) -> str:
        return f"Docker engine at {self.url}"

    def close(self) -> None:
        """Close the connection (images already read keep their spool until they are released)."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    # -- plumbing --------------------------------------------------------------------------------------

    def _api(self) -> Any:
        if self._client is None:
            try:
                if self._factory is not None:
                    self._client = self._factory()
                else:
                    self._client = docker.DockerClient(version="auto", timeout=self._timeout, **self._kwargs)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                raise self._unreachable(exc) from exc
        return self._client.api

    def _unreachable(self, exc: BaseException) -> DaemonError:
        return DaemonError(
            f"cannot reach the Docker engine at {self.url}: {_reason(exc)} "
            "(is it running? set DOCKER_HOST to its address)"
        )

    @contextlib.contextmanager
    def _calling(self, action: str, name: str | None = None) -> Iterator[None]:
        """Turn docker-py / requests failures during *action* into one-line cnb errors."""
        try:
            yield
        except CnbError:
            raise
        except docker.errors.NotFound as exc:
            what = f"image {name!r}" if name else "the image"
            raise NotFoundError(f"{what} not found in the Docker engine at {self.url}") from exc
        except docker.errors.APIError as exc:
            detail = " ".join(str(exc.explanation or exc).split())
            raise DaemonError(f"the Docker engine refused to {action}: {detail}") from exc
        except requests.exceptions.ConnectionError as exc:
            raise self._unreachable(exc) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DaemonError(f"cannot {action} in the Docker engine at {self.url}: {_reason(exc)}") from exc

    def _name(self, ref: str | None) -> str:
        if ref is None:
            raise UsageError(f"{self.description}: name the image (docker-daemon:NAME[:TAG])")
        if is_digest(ref):
            return ref
        return parse_reference(ref).familiar()

    def engine_platform(self) -> Platform:
        """The os/arch the engine runs images for (``GET /version``)."""
        with self._calling("report its version"):
            version = self._api().version()
        return Platform(os=str(version.get("Os", "linux")), architecture=str(version.get("Arch", "")))

    # -- queries ---------------------------------------------------------------------------------------

    def image_id(self, ref: str) -> str:
        """The engine's ID of *ref* (``sha256:<config digest>`` on the classic image store)."""
        name = self._name(ref)
        with self._calling(f"inspect {name}", name):
            return str(self._api().inspect_image(name)["Id"])

    def inspect(self, ref: str) -> dict[str, Any]:
        """``docker image inspect`` of *ref*, as the engine returns it."""
        name = self._name(ref)
        with self._calling(f"inspect {name}", name):
            return dict(self._api().inspect_image(name))

    def _has(self, image_id: str) -> bool:
        with self._calling(f"inspect {image_id}", image_id):
            try:
                self._api().inspect_image(image_id)
            except docker.errors.NotFound:
                return False
        return True

    def list(self) -> Sequence[StoredRef]:
        """Every tag the engine holds; the descriptor names the image ID (size unknown, so 0)."""
        with self._calling("list images"):
            images = self._api().images()
        out: list[StoredRef] = []
        for image in images:
            desc = Descriptor(mt.DOCKER_CONFIG, str(image["Id"]), 0)
            out.extend(StoredRef(str(tag), desc) for tag in image.get("RepoTags") or () if tag != "<none>:<none>")
        return sorted(out, key=lambda s: s.name)

    # -- changes ---------------------------------------------------------------------------------------

    def tag(self, ref: str, new_ref: str) -> None:
        name, new = self._name(ref), parse_reference(_tag_name(new_ref))
        with self._calling(f"tag {name} as {new.familiar()}", name):
            self._api().tag(name, replace(new, tag=None).familiar(), new.tag)

    def delete(self, ref: str) -> None:
        """Untag *ref* (the image goes when its last tag does); never forced."""
        name = self._name(ref)
        with self._calling(f"remove {name}", name):
            self._api().remove_image(name, force=False)

    def write(self, artifact: Artifact, ref: str | None, progress: Progress | None = None) -> WriteResult:
        """Load *artifact* into the engine and tag it *ref*; an index gives the entry for the engine's platform."""
        progress = progress or NullProgress()
        image = self._select(artifact)
        tags = [] if ref is None else [_tag_name(ref)]
        result = WriteResult(descriptor=image.descriptor)
        config = image.manifest.config
        layers = image.layers()
        if self._has(config.digest):
            result.existing = [config.digest, *(layer.descriptor.digest for layer in layers)]
            for digest in result.existing:
                progress.finish(digest, "exists")
            for name in tags:
                self.tag(config.digest, name)
            return result
        failure: list[BaseException] = []
        chunks = _guard(_archive(image, tags, progress, result), failure)
        try:
            with self._calling(f"load {tags[0] if tags else config.digest}", None):
                for message in self._api().load_image(chunks, quiet=True) or ():
                    if isinstance(message, dict) and (message.get("error") or message.get("errorDetail")):
                        detail = message.get("error") or message["errorDetail"].get("message", "")
                        raise DaemonError(f"the Docker engine refused to load the image: {detail}")
        except CnbError:
            if failure:
                raise failure[0] from None
            raise
        if failure:
            raise failure[0]
        return result

    def _select(self, artifact: Artifact) -> Image:
        current = artifact
        platform: Platform | None = None
        while is_index(current):
            platform = platform or self.engine_platform()
            try:
                current = current.child(current.index.select(platform))
            except InvalidDocumentError as exc:
                raise DaemonError(f"cannot load {artifact.descriptor.digest} into the Docker engine: {exc}") from exc
        return current  # type: ignore[return-value]

    # -- reading ---------------------------------------------------------------------------------------

    def read(self, ref: str | None) -> Artifact:
        """``docker save`` *ref*, spooled to disk, as an OCI image with gzip layers."""
        name = self._name(ref)
        if self._spool_dir is not None:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
        spool = SpoolSource(Path(tempfile.mkdtemp(prefix="cnb-docker-save-", dir=self._spool_dir)))
        try:
            with self._calling(f"save {name}", name):
                image_id = str(self._api().inspect_image(name)["Id"])
                files = spool.receive(self._api().get_image(name, chunk_size=CHUNK))
            return _build_image(spool, files, image_id, name)
        except BaseException:
            spool.close()
            raise


def _tag_name(ref: str) -> str:
    """The familiar ``NAME:TAG`` a Docker tag takes; a digest cannot be one."""
    parsed = None if is_digest(ref) else parse_reference(ref)
    if parsed is None or parsed.digest is not None:
        raise UsageError(f"cannot tag an image as {ref!r} in the Docker engine: name it NAME[:TAG]")
    return parsed.familiar()


def _reason(exc: BaseException) -> str:
    """The most telling one-line cause of *exc* (the innermost OS error, when there is one)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# -- docker load: the archive, generated ---------------------------------------------------------------


def _guard(chunks: Iterator[bytes], failure: list[BaseException]) -> Iterator[bytes]:
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


def _archive(image: Image, tags: list[str], progress: Progress, result: WriteResult) -> Iterator[bytes]:
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


def _build_image(spool: SpoolSource, files: dict[str, Path], image_id: str, name: str) -> Image:
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
