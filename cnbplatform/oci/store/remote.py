"""A registry repository as an image store (OCI distribution spec), on top of ``registry.RegistryClient``.

Pushes follow docs/design.md §3 decision 5: ``HEAD`` every blob first, mount blobs that already live in another
repository of the same registry, upload the rest in parallel (streamed, never a whole blob in memory), then
put child manifests by digest and the top manifest by tag. Nothing is tagged unless every blob arrived.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from cnbplatform.errors import CnbError, UsageError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.image import Artifact, BlobOrigin, artifact_from_raw
from cnbplatform.oci.model import Descriptor
from cnbplatform.oci.registry import RegistryClient
from cnbplatform.oci.store.protocol import (
    BlobItem,
    ConfigBlob,
    ManifestBlob,
    NullProgress,
    Progress,
    StoredRef,
    WriteResult,
    dedupe,
    walk,
)


class RegistryBlobSource:
    def __init__(self, client: RegistryClient, registry: str, repository: str) -> None:
        self._client = client
        self._origin = BlobOrigin(registry, repository)

    @property
    def origin(self) -> BlobOrigin | None:
        return self._origin

    def blob_path(self, descriptor: Descriptor) -> Path | None:
        return None

    def read_manifest(self, descriptor: Descriptor) -> bytes:
        raw, _, _ = self._client.get_manifest(self._origin.repository, descriptor.digest, mt.ACCEPT_ALL)
        return raw

    @contextlib.contextmanager
    def open_blob(self, descriptor: Descriptor) -> Iterator[BinaryIO]:
        with self._client.open_blob(self._origin.repository, descriptor.digest, descriptor.size) as stream:
            yield stream


class RemoteStore:
    """One repository of one registry."""

    def __init__(self, client: RegistryClient, registry: str, repository: str, *, parallel: int = 4) -> None:
        self.client = client
        self.registry = registry
        self.repository = repository
        self.parallel = parallel
        self.source = RegistryBlobSource(client, registry, repository)

    @property
    def description(self) -> str:
        return f"{self.registry}/{self.repository}"

    def read(self, ref: str | None) -> Artifact:
        if ref is None:
            raise UsageError(f"{self.description}: a tag or digest is required")
        raw, media_type, digest = self.client.get_manifest(self.repository, ref, mt.ACCEPT_ALL)
        return artifact_from_raw(self.source, raw, Descriptor(media_type, digest, len(raw)))

    def write(self, artifact: Artifact, ref: str | None, progress: Progress | None = None) -> WriteResult:
        progress = progress or NullProgress()
        result = WriteResult(descriptor=artifact.descriptor)
        if ref is not None and self._already_tagged(ref, artifact.descriptor.digest):
            # docs/design.md §3 decision 5: a re-push of an unchanged image costs one metadata comparison.
            result.existing += [item.descriptor.digest for item in dedupe(list(walk(artifact)))]
            return result
        items = dedupe(list(walk(artifact)))
        blobs = [i for i in items if not isinstance(i, ManifestBlob)]
        lock = threading.Lock()

        def push(item: BlobItem) -> None:
            status, size = self._push_blob(item, progress)
            with lock:
                getattr(result, status).append(item.descriptor.digest)
                if status == "written":
                    result.bytes_written += size

        if blobs:
            with ThreadPoolExecutor(max_workers=max(1, min(self.parallel, len(blobs)))) as pool:
                for future in [pool.submit(push, b) for b in blobs]:
                    future.result()
        manifests = [i for i in items if isinstance(i, ManifestBlob)]
        for item in manifests[:-1]:
            self.client.put_manifest(self.repository, item.descriptor.digest, item.data, item.descriptor.media_type)
        top = manifests[-1]
        self.client.put_manifest(self.repository, ref or top.descriptor.digest, top.data, top.descriptor.media_type)
        return result

    def _already_tagged(self, ref: str, digest: str) -> bool:
        """True when *ref* already names a manifest with *digest* (a registry keeps the blobs a manifest needs)."""
        try:
            head = self.client.head_manifest(self.repository, ref, mt.ACCEPT_ALL)
        except CnbError:
            return False
        return head is not None and head[1] == digest

    def _push_blob(self, item: BlobItem, progress: Progress) -> tuple[str, int]:
        desc = item.descriptor
        if self.client.blob_size(self.repository, desc.digest) is not None:
            progress.finish(desc.digest, "exists")
            return "existing", 0
        if isinstance(item, ConfigBlob | ManifestBlob):
            data = item.data
            self.client.upload_blob(self.repository, desc.digest, desc.size, lambda: io.BytesIO(data))
            return "written", desc.size
        origin = item.origin
        if (
            origin is not None
            and origin.registry == self.registry
            and origin.repository != self.repository
            and self.client.mount_blob(self.repository, desc.digest, origin.repository)
        ):
            progress.finish(desc.digest, "mounted")
            return "mounted", 0
        progress.start(desc.digest, f"layer {desc.digest[7:19]}", desc.size)
        self.client.upload_blob(
            self.repository,
            desc.digest,
            desc.size,
            item.open,
            progress=lambda n: progress.advance(desc.digest, n),
        )
        progress.finish(desc.digest, "pushed")
        return "written", desc.size

    def delete(self, ref: str) -> None:
        artifact = self.read(ref)
        self.client.delete_manifest(self.repository, artifact.descriptor.digest)

    def list(self) -> Sequence[StoredRef]:
        out = []
        for tag in self.client.list_tags(self.repository):
            head = self.client.head_manifest(self.repository, tag, mt.ACCEPT_ALL)
            if head is not None:
                out.append(StoredRef(f"{self.description}:{tag}", Descriptor(head[0], head[1], head[2])))
        return out

    def tag(self, ref: str, new_ref: str) -> None:
        artifact = self.read(ref)
        try:
            self.client.put_manifest(self.repository, new_ref, artifact.raw_manifest, artifact.descriptor.media_type)
        except CnbError as exc:
            raise CnbError(f"tag {self.description}:{new_ref}: {exc.message}") from exc
