"""The one protocol every image store implements, and what stores share.

A store reads artifacts (images or indexes) by reference and writes them; ``write`` is the only thing that
touches storage (docs/design.md §4). Backends: ``layout`` (an OCI image layout directory; the local store is one),
``remote`` (a registry repository) and ``daemon`` (a Docker engine).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cnbplatform.oci.image import MAX_DOCUMENT, Artifact, Layer, as_image, is_index
from cnbplatform.oci.model import Descriptor, InvalidDocumentError


class Progress(Protocol):
    """Receives transfer progress; keys are blob digests."""

    def start(self, key: str, description: str, total: int) -> None: ...

    def advance(self, key: str, amount: int) -> None: ...

    def finish(self, key: str, status: str) -> None: ...


class NullProgress:
    def start(self, key: str, description: str, total: int) -> None:
        pass

    def advance(self, key: str, amount: int) -> None:
        pass

    def finish(self, key: str, status: str) -> None:
        pass


@dataclass
class WriteResult:
    """What a write did: the top descriptor, and how each blob got there."""

    descriptor: Descriptor
    written: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    mounted: list[str] = field(default_factory=list)
    bytes_written: int = 0

    def merge(self, other: WriteResult) -> None:
        self.written += other.written
        self.existing += other.existing
        self.mounted += other.mounted
        self.bytes_written += other.bytes_written


@dataclass(frozen=True)
class StoredRef:
    """One tagged artifact in a store listing."""

    name: str
    descriptor: Descriptor


class ImageStore(Protocol):
    """Read and write images and indexes by reference (a tag name, or None for a store's only image)."""

    @property
    def description(self) -> str: ...

    def read(self, ref: str | None) -> Artifact: ...

    def write(self, artifact: Artifact, ref: str | None, progress: Progress | None = None) -> WriteResult: ...

    def delete(self, ref: str) -> None: ...

    def list(self) -> Sequence[StoredRef]: ...

    def tag(self, ref: str, new_ref: str) -> None: ...


@dataclass(frozen=True)
class ManifestBlob:
    descriptor: Descriptor
    data: bytes


@dataclass(frozen=True)
class ConfigBlob:
    descriptor: Descriptor
    data: bytes


BlobItem = ManifestBlob | ConfigBlob | Layer


def walk(artifact: Artifact) -> Iterator[BlobItem]:
    """Every blob an artifact needs, children before parents (the order a push must follow).

    The artifact's own manifest comes last. Layers and configs of an image come before its manifest. A manifest
    or config that readers would refuse (:func:`check_readable`) is refused before the first blob is yielded.
    """
    check_readable(artifact)
    if is_index(artifact):
        for desc in artifact.index.manifests:
            yield from walk(artifact.child(desc))
    else:
        image = as_image(artifact)
        yield from image.layers()
        yield ConfigBlob(image.manifest.config, image.raw_config)
    yield ManifestBlob(artifact.descriptor, artifact.raw_manifest)


def check_readable(artifact: Artifact) -> None:
    """Never store what cannot be read back: a manifest, index or config larger than :data:`MAX_DOCUMENT` (what
    every reader here accepts, as registries cap manifests) is refused before a write begins."""
    documents = [("manifest" if not is_index(artifact) else "index", len(artifact.raw_manifest))]
    if not is_index(artifact):
        documents.append(("config", as_image(artifact).manifest.config.size))
    for what, size in documents:
        if size > MAX_DOCUMENT:
            raise InvalidDocumentError(
                f"the image {what} would be {size} bytes, more than the {MAX_DOCUMENT} bytes readers accept; "
                "refusing to write an image that cannot be read back"
            )


def dedupe(items: Sequence[BlobItem]) -> list[BlobItem]:
    seen: set[str] = set()
    out: list[BlobItem] = []
    for item in items:
        if item.descriptor.digest not in seen:
            seen.add(item.descriptor.digest)
            out.append(item)
    return out
