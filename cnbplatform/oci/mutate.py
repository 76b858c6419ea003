"""Transformations that return new images (docs/design.md §4: nothing is edited in place; ggcr ``mutate``).

``BuiltImage`` is an image assembled in memory from a config and layers; its config and manifest bytes are
canonical JSON, so identical inputs give identical digests (docs/spec-notes.md §16 item 42).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cnbplatform.errors import CnbError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.digest import sha256_bytes
from cnbplatform.oci.image import Image, Layer
from cnbplatform.oci.model import NORMALIZED_CREATED, ContainerConfig, Descriptor, History, ImageConfig, Manifest


class BuiltImage:
    """An image made of an ImageConfig and a list of layers (whatever store those layers come from)."""

    def __init__(
        self,
        config: ImageConfig,
        layers: Sequence[Layer],
        *,
        annotations: dict[str, str] | None = None,
        media_type: str = mt.OCI_MANIFEST,
    ) -> None:
        self._layers = list(layers)
        self._config = replace(config, diff_ids=tuple(layer.diff_id for layer in self._layers))
        self._raw_config = self._config.to_bytes()
        config_type = mt.DOCKER_CONFIG if media_type == mt.DOCKER_MANIFEST else mt.OCI_CONFIG
        self._manifest = Manifest(
            media_type=media_type,
            config=Descriptor(config_type, sha256_bytes(self._raw_config), len(self._raw_config)),
            layers=tuple(layer.descriptor for layer in self._layers),
            annotations=dict(annotations or {}),
        )
        self._raw_manifest = self._manifest.to_bytes()
        self._descriptor = Descriptor(media_type, sha256_bytes(self._raw_manifest), len(self._raw_manifest))

    @property
    def descriptor(self) -> Descriptor:
        return self._descriptor

    @property
    def raw_manifest(self) -> bytes:
        return self._raw_manifest

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def raw_config(self) -> bytes:
        return self._raw_config

    @property
    def config(self) -> ImageConfig:
        return self._config

    def layers(self) -> Sequence[Layer]:
        return list(self._layers)


def _history_for(image: Image) -> tuple[History, ...]:
    """History entries aligned with layers (one non-empty entry per layer), as the spec requires."""
    history = image.config.history
    non_empty = [h for h in history if not h.empty_layer]
    if len(non_empty) == len(image.manifest.layers):
        return history
    return tuple(History() for _ in image.manifest.layers)


def append_layers(image: Image, layers: Sequence[Layer], history: Sequence[History] | None = None) -> BuiltImage:
    """*image* with *layers* on top (each with a history entry)."""
    entries = tuple(history) if history is not None else tuple(History() for _ in layers)
    if len(entries) != len(layers):
        raise CnbError("append_layers: one history entry per layer is required")
    config = replace(image.config, history=_history_for(image) + entries)
    return BuiltImage(config, [*image.layers(), *layers], annotations=image.manifest.annotations)


def with_config(image: Image, config: ContainerConfig | None = None, **fields: object) -> BuiltImage:
    """*image* with its container config and/or top-level config fields (``created``, ``os``…) replaced."""
    new = image.config
    if config is not None:
        new = replace(new, config=config)
    if fields:
        new = replace(new, **fields)  # type: ignore[arg-type]
    return BuiltImage(new, image.layers(), annotations=image.manifest.annotations)


# -- rebase (docs/design.md §3 decision 6; docs/spec-notes.md §8 step 4) -----------------------------------------------

BASE_DIGEST_ANNOTATION = "org.opencontainers.image.base.digest"
_DOCKER_LAYER_TYPES = frozenset(
    {mt.DOCKER_LAYER_GZIP, mt.DOCKER_LAYER_FOREIGN, "application/vnd.docker.image.rootfs.diff.tar"}
)


class RebaseError(CnbError):
    """The app image does not sit on the base it claims to sit on."""


def base_layer_count(app: Image, old_base_top_diff_id: str, old_base_diff_ids: Sequence[str] | None = None) -> int:
    """How many of *app*'s layers belong to its old base: up to and including *old_base_top_diff_id*.

    With *old_base_diff_ids* (the old base's own layers, when it is still readable) the whole prefix is checked;
    without, the first layer with the top diffID ends the base (a base comes before everything built on it).
    """
    diff_ids = list(app.config.diff_ids)
    if not old_base_top_diff_id:
        raise RebaseError("the app image does not record the top layer of its run image")
    if old_base_diff_ids is not None:
        prefix = list(old_base_diff_ids)
        if not prefix or prefix[-1] != old_base_top_diff_id:
            raise RebaseError(f"the old base's top layer is not {old_base_top_diff_id}")
        if diff_ids[: len(prefix)] != prefix:
            raise RebaseError("the app image's first layers are not the layers of the run image it names")
        return len(prefix)
    try:
        return diff_ids.index(old_base_top_diff_id) + 1
    except ValueError:
        raise RebaseError(
            f"the app image has no layer {old_base_top_diff_id} (the top layer of the run image it was built on)"
        ) from None


def _history_above(app: Image, base_count: int) -> tuple[History, ...]:
    """The app's history entries for its layers above the base (empty-layer entries among them kept; those
    right after the base's top belong to the base and go with it)."""
    layers = len(app.manifest.layers)
    history = app.config.history
    if sum(1 for h in history if not h.empty_layer) != layers:
        return tuple(History() for _ in range(layers - base_count))
    out: list[History] = []
    seen = 0
    for entry in history:
        if seen < base_count:
            seen += 0 if entry.empty_layer else 1
            continue
        if not out and entry.empty_layer:
            continue
        out.append(entry)
    return tuple(out)


def _manifest_type(app: Image, layers: Sequence[Layer]) -> str:
    """Keep a Docker manifest only when every layer has a Docker media type; otherwise OCI."""
    if app.manifest.media_type == mt.DOCKER_MANIFEST and all(
        layer.descriptor.media_type in _DOCKER_LAYER_TYPES for layer in layers
    ):
        return mt.DOCKER_MANIFEST
    return mt.OCI_MANIFEST


def rebase(
    app: Image,
    old_base_top_diff_id: str,
    new_base: Image,
    *,
    old_base_diff_ids: Sequence[str] | None = None,
    created: str = NORMALIZED_CREATED,
    config: ContainerConfig | None = None,
) -> BuiltImage:
    """*app* with its old base (its layers up to and including *old_base_top_diff_id*) replaced by *new_base*.

    The layers above the old base are kept as they are (the same Layer objects: on a registry their blobs stay
    where they are), the container config is the app's (or *config*), ``os``/``architecture``/``variant``/
    ``os.version`` come from the new base, the history is the new base's followed by the app's entries for the
    kept layers, and ``created`` is normalised (or *created*). Raises :class:`RebaseError` when the old base is
    not a prefix of the app's layers (docs/spec-notes.md §8 step 4).
    """
    count = base_layer_count(app, old_base_top_diff_id, old_base_diff_ids)
    kept = list(app.layers())[count:]
    layers = [*new_base.layers(), *kept]
    base = new_base.config
    new_config = replace(
        app.config,
        architecture=base.architecture,
        os=base.os,
        variant=base.variant,
        os_version=base.os_version,
        created=created,
        history=_history_for(new_base) + _history_above(app, count),
        config=config if config is not None else app.config.config,
    )
    annotations = dict(app.manifest.annotations)
    if BASE_DIGEST_ANNOTATION in annotations:
        annotations[BASE_DIGEST_ANNOTATION] = new_base.descriptor.digest
    return BuiltImage(new_config, layers, annotations=annotations, media_type=_manifest_type(app, layers))
