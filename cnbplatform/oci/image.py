"""Read-only images, indexes and layers, whatever store they come from.

``Image``, ``ImageIndex`` and ``Layer`` are protocols (docs/design.md §4 "One protocol, many backends"). The concrete
``SourcedImage`` / ``SourcedIndex`` / ``SourcedLayer`` read their blobs through a :class:`BlobSource` (a layout
directory, a registry repository, a docker archive spool); every blob they hand out is verified against its
digest while it is read. ``FileLayer`` is a layer whose compressed blob is a file on disk (what cnb writes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeGuard

from cnbplatform.errors import CnbError, DigestMismatchError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.digest import sha256_bytes, verified_reader, verify_bytes
from cnbplatform.oci.model import Descriptor, ImageConfig, Index, InvalidDocumentError, Manifest, Platform

MAX_DOCUMENT = 8 * 1024 * 1024


@dataclass(frozen=True)
class BlobOrigin:
    """Where a blob already lives in a registry, so a push to the same registry can mount it."""

    registry: str
    repository: str


class BlobSource(Protocol):
    """Opens raw (unverified) blob bytes by descriptor."""

    @property
    def origin(self) -> BlobOrigin | None: ...

    def open_blob(self, descriptor: Descriptor) -> contextlib.AbstractContextManager[BinaryIO]: ...

    def blob_path(self, descriptor: Descriptor) -> Path | None:
        """The file holding the blob, when the source is a directory (lets stores hard-link)."""
        ...

    def read_manifest(self, descriptor: Descriptor) -> bytes:
        """The raw bytes of a child manifest (registries serve these from the manifests endpoint)."""
        ...


class Layer(Protocol):
    @property
    def descriptor(self) -> Descriptor: ...

    @property
    def diff_id(self) -> str: ...

    @property
    def origin(self) -> BlobOrigin | None: ...

    def path(self) -> Path | None: ...

    def open(self) -> contextlib.AbstractContextManager[BinaryIO]:
        """The compressed blob, verified against ``descriptor.digest`` while read."""
        ...


class Image(Protocol):
    @property
    def descriptor(self) -> Descriptor: ...

    @property
    def raw_manifest(self) -> bytes: ...

    @property
    def manifest(self) -> Manifest: ...

    @property
    def raw_config(self) -> bytes: ...

    @property
    def config(self) -> ImageConfig: ...

    def layers(self) -> Sequence[Layer]: ...


class ImageIndex(Protocol):
    @property
    def descriptor(self) -> Descriptor: ...

    @property
    def raw_manifest(self) -> bytes: ...

    @property
    def index(self) -> Index: ...

    def child(self, descriptor: Descriptor) -> Image | ImageIndex: ...


Artifact = Image | ImageIndex


def read_small_blob(source: BlobSource, descriptor: Descriptor, what: str) -> bytes:
    """Read a manifest/config-sized blob fully and verify it."""
    if descriptor.size > MAX_DOCUMENT:
        raise InvalidDocumentError(f"{what} {descriptor.digest} is too large ({descriptor.size} bytes)")
    with source.open_blob(descriptor) as raw:
        data = raw.read(descriptor.size + 1)
    if len(data) != descriptor.size:
        raise DigestMismatchError(
            f"size mismatch for {what} {descriptor.digest}: expected {descriptor.size}, got {len(data)}"
        )
    return verify_bytes(data, descriptor.digest, what)


@dataclass(frozen=True)
class SourcedLayer:
    descriptor: Descriptor
    diff_id: str
    source: BlobSource

    @property
    def origin(self) -> BlobOrigin | None:
        return self.source.origin

    def path(self) -> Path | None:
        return self.source.blob_path(self.descriptor)

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        with self.source.open_blob(self.descriptor) as raw:
            yield verified_reader(raw, self.descriptor.digest, self.descriptor.size, "layer")


@dataclass(frozen=True)
class FileLayer:
    """A layer whose compressed blob is a local file (written by cnb's layer writer)."""

    descriptor: Descriptor
    diff_id: str
    file: Path

    @property
    def origin(self) -> BlobOrigin | None:
        return None

    def path(self) -> Path | None:
        return self.file

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        try:
            raw = open(self.file, "rb")  # noqa: SIM115 - closed by the verified reader
        except OSError as exc:
            raise CnbError(f"cannot open layer {self.descriptor.digest}: {exc}") from exc
        with verified_reader(raw, self.descriptor.digest, self.descriptor.size, "layer") as reader:
            yield reader


class SourcedImage:
    """An image manifest plus its config and layers, read lazily through a BlobSource."""

    def __init__(self, source: BlobSource, raw_manifest: bytes, descriptor: Descriptor) -> None:
        verify_bytes(raw_manifest, descriptor.digest, "manifest")
        self._source = source
        self._raw = raw_manifest
        self._manifest = Manifest.parse(raw_manifest, descriptor.media_type or None)
        self._descriptor = Descriptor(
            media_type=self._manifest.media_type,
            digest=descriptor.digest,
            size=len(raw_manifest),
            annotations=descriptor.annotations,
            platform=descriptor.platform,
        )
        self._raw_config: bytes | None = None
        self._config: ImageConfig | None = None

    @property
    def source(self) -> BlobSource:
        return self._source

    @property
    def descriptor(self) -> Descriptor:
        return self._descriptor

    @property
    def raw_manifest(self) -> bytes:
        return self._raw

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def raw_config(self) -> bytes:
        if self._raw_config is None:
            self._raw_config = read_small_blob(self._source, self._manifest.config, "image config")
        return self._raw_config

    @property
    def config(self) -> ImageConfig:
        if self._config is None:
            self._config = ImageConfig.parse(self.raw_config)
        return self._config

    def layers(self) -> Sequence[Layer]:
        diff_ids = self.config.diff_ids
        layers = self._manifest.layers
        if len(diff_ids) != len(layers):
            raise InvalidDocumentError(
                f"image {self._descriptor.digest}: {len(layers)} layers but {len(diff_ids)} diff_ids in config"
            )
        return [SourcedLayer(d, diff_id, self._source) for d, diff_id in zip(layers, diff_ids, strict=True)]


class SourcedIndex:
    """An image index read through a BlobSource; children are read on demand."""

    def __init__(self, source: BlobSource, raw_manifest: bytes, descriptor: Descriptor) -> None:
        verify_bytes(raw_manifest, descriptor.digest, "index")
        self._source = source
        self._raw = raw_manifest
        self._index = Index.parse(raw_manifest, descriptor.media_type or None)
        self._descriptor = Descriptor(
            media_type=self._index.media_type,
            digest=descriptor.digest,
            size=len(raw_manifest),
            annotations=descriptor.annotations,
        )

    @property
    def descriptor(self) -> Descriptor:
        return self._descriptor

    @property
    def raw_manifest(self) -> bytes:
        return self._raw

    @property
    def index(self) -> Index:
        return self._index

    def child(self, descriptor: Descriptor) -> Image | ImageIndex:
        raw = self._source.read_manifest(descriptor)
        return artifact_from_raw(self._source, raw, descriptor)


def artifact_from_raw(source: BlobSource, raw: bytes, descriptor: Descriptor) -> Image | ImageIndex:
    """Build the Image or ImageIndex that *raw* (already fetched, about to be verified) describes."""
    kind = descriptor.media_type
    if not kind:
        from cnbplatform.oci.model import parse_document

        kind = mt.OCI_INDEX if isinstance(parse_document(raw, None), Index) else mt.OCI_MANIFEST
        descriptor = Descriptor(kind, descriptor.digest, descriptor.size, descriptor.annotations)
    if mt.is_index(kind):
        return SourcedIndex(source, raw, descriptor)
    return SourcedImage(source, raw, descriptor)


def descriptor_for(raw: bytes, media_type: str) -> Descriptor:
    return Descriptor(media_type=media_type, digest=sha256_bytes(raw), size=len(raw))


def is_index(artifact: Image | ImageIndex) -> TypeGuard[ImageIndex]:
    """Tell an index from an image by media type (no blob is read to decide)."""
    return mt.is_index(artifact.descriptor.media_type)


def as_image(artifact: Image | ImageIndex) -> Image:
    if is_index(artifact):
        raise InvalidDocumentError(
            f"{artifact.descriptor.digest} is an image index; choose a platform (--platform os/arch)"
        )
    return artifact  # type: ignore[return-value]


def resolve_platform(artifact: Image | ImageIndex, platform: Platform | None) -> Image | ImageIndex:
    """With a platform, descend through indexes to the matching image; without, return *artifact* as is."""
    if platform is None:
        return artifact
    current = artifact
    while is_index(current):
        current = current.child(current.index.select(platform))
    return current
