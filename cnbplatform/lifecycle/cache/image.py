"""The image cache (``-cache-image``, docs/spec-notes.md §7.1): the cache is an image in any :class:`ImageStore`.

Its layers are the cached layers (gzip blobs, named in the metadata by diffID) and its label
``io.buildpacks.lifecycle.cache.metadata`` holds the cache metadata; an image with nothing cached gets one empty
layer. A commit writes a whole new image to the same reference. Reused layers are the previous cache image's own
layers, so the store finds them already present (a registry answers the ``HEAD``; docs/design.md §3 decision 5) and
nothing is uploaded again. Corrupt or unreadable metadata is an empty cache with a warning; a missing image is
an empty cache.
"""

from __future__ import annotations

import os
from pathlib import Path

from cnbplatform.errors import CnbError, NotFoundError
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.labels import CACHE_METADATA_LABEL, CacheMetadata
from cnbplatform.lifecycle.cache.protocol import LayerOpener, WriterBase, tar_opener
from cnbplatform.lifecycle.common import NullReporter, Reporter
from cnbplatform.oci.image import FileLayer, Image, Layer, as_image
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import LayerBlob
from cnbplatform.oci.model import NORMALIZED_CREATED as CREATED
from cnbplatform.oci.model import ContainerConfig, Descriptor, ImageConfig
from cnbplatform.oci.mutate import BuiltImage
from cnbplatform.oci.store.protocol import ImageStore, WriteResult

_ARCHITECTURES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def host_architecture() -> str:
    machine = os.uname().machine.lower()
    return _ARCHITECTURES.get(machine, machine or "amd64")


class ImageCache:
    """A cache kept as the image *ref* of *store*; new layer blobs are made in *blobs_dir*."""

    def __init__(
        self,
        store: ImageStore,
        ref: str,
        layer_cache: LayerCache,
        *,
        blobs_dir: Path | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.store = store
        self.ref = ref
        self.layer_cache = layer_cache
        self.blobs_dir = blobs_dir if blobs_dir is not None else layer_cache.cache_dir / "blobs"
        self.reporter: Reporter = reporter or NullReporter()
        self._loaded = False
        self._image: Image | None = None

    @property
    def description(self) -> str:
        return f"cache image {self.store.description}:{self.ref}"

    def image(self) -> Image | None:
        """The current cache image (read once), or None when there is none or it cannot be read."""
        if not self._loaded:
            self._loaded = True
            try:
                image = as_image(self.store.read(self.ref))
                image.config  # noqa: B018 - read (and verify) the config now, so a broken image is an empty cache
                self._image = image
            except NotFoundError:
                self._image = None
            except CnbError as exc:
                self.reporter.warn(f"cannot read {self.description}, using an empty cache: {exc.message}")
                self._image = None
        return self._image

    def metadata(self) -> CacheMetadata:
        image = self.image()
        if image is None:
            return CacheMetadata()
        label = image.config.labels.get(CACHE_METADATA_LABEL)
        if label is None:
            return CacheMetadata()
        try:
            return CacheMetadata.from_json_strict(label)
        except SpecFileError as exc:
            self.reporter.warn(f"corrupt metadata in {self.description}, using an empty cache: {exc.message}")
            return CacheMetadata()

    def find(self, diff_id: str) -> Layer | None:
        image = self.image()
        if image is None:
            return None
        try:
            layers = image.layers()
        except CnbError as exc:
            self.reporter.warn(f"cannot list the layers of {self.description}: {exc.message}")
            return None
        return next((layer for layer in layers if layer.diff_id == diff_id), None)

    def layer(self, diff_id: str) -> LayerOpener | None:
        layer = self.find(diff_id)
        return tar_opener(layer) if layer is not None else None

    def take_tree(self, diff_id: str, dest: Path) -> bool:
        return False  # an image cache keeps no extracted copies

    def begin(self) -> ImageCacheWriter:
        return ImageCacheWriter(self)


def _file_layer(blob: LayerBlob) -> FileLayer:
    return FileLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, blob.path)


class ImageCacheWriter(WriterBase):
    """Collects the layers of the next cache image; :meth:`commit` writes it. ``result`` tells what was sent."""

    def __init__(self, cache: ImageCache) -> None:
        self.cache = cache
        self._layers: dict[str, Layer] = {}
        self._metadata = CacheMetadata()
        self.result: WriteResult | None = None

    def __enter__(self) -> ImageCacheWriter:
        return self

    def _check_open(self) -> None:
        if self._done:
            raise CnbError(f"{self.cache.description}: the cache writer was already committed or aborted")

    def reuse(self, diff_id: str) -> bool:
        self._check_open()
        layer = self.cache.find(diff_id)
        if layer is None:
            return False
        self._layers[diff_id] = layer
        return True

    def add_blob(self, blob: LayerBlob) -> str:
        self._check_open()
        self._layers[blob.diff_id] = _file_layer(blob)
        return blob.diff_id

    def add_dir(self, source_dir: Path, *, prefix: str, uid: int, gid: int) -> str:
        self._check_open()
        blob = self.cache.layer_cache.create_layer(
            source_dir, prefix=prefix, uid=uid, gid=gid, blobs_dir=self.cache.blobs_dir
        )
        return self.add_blob(blob)

    def adopt_tree(self, diff_id: str, layer_dir: Path, digest: str | None = None) -> bool:
        return False

    def set_metadata(self, metadata: CacheMetadata) -> None:
        self._check_open()
        self._metadata = metadata

    def _image(self) -> BuiltImage:
        metadata = self._metadata
        referenced = {layer.sha for bp in metadata.buildpacks for layer in bp.layers.values() if layer.sha}
        if metadata.sbom:
            referenced.add(metadata.sbom)
        missing = sorted(referenced - set(self._layers))
        if missing:
            raise CnbError(f"cannot commit {self.cache.description}: no layer was added for {', '.join(missing)}")
        layers = [layer for diff_id, layer in self._layers.items() if diff_id in referenced]
        if not layers:
            layers = [_file_layer(self.cache.layer_cache.create_layer(None, blobs_dir=self.cache.blobs_dir))]
        config = ImageConfig(
            architecture=host_architecture(),
            os="linux",
            diff_ids=(),
            config=ContainerConfig(labels={CACHE_METADATA_LABEL: metadata.to_json()}),
            created=CREATED,
        )
        return BuiltImage(config, layers)

    def commit(self) -> None:
        self._check_open()
        try:
            image = self._image()
        except CnbError:
            self.abort()
            raise
        try:
            self.result = self.cache.store.write(image, self.cache.ref)
        except (CnbError, OSError) as exc:
            self.abort()
            reason = exc.message if isinstance(exc, CnbError) else (exc.strerror or str(exc))
            raise CnbError(f"cannot write {self.cache.description}: {reason}") from exc
        self._done = True

    def abort(self) -> None:
        self._done = True
        self._layers.clear()
