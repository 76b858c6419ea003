"""Transformations that return new images (DESIGN.md §4: nothing is edited in place; ggcr ``mutate``).

``BuiltImage`` is an image assembled in memory from a config and layers; its config and manifest bytes are
canonical JSON, so identical inputs give identical digests (CNB-SPEC §16 item 42).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cnbplatform.errors import CnbError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.digest import sha256_bytes
from cnbplatform.oci.image import Image, Layer
from cnbplatform.oci.model import ContainerConfig, Descriptor, History, ImageConfig, Manifest


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
