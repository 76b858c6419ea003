"""Images for rebase tests (docs/spec-notes.md §8).

In memory: :func:`fake_layer`, :func:`base_image` and :func:`app_image` make images whose layers have no bytes
(enough for everything that only looks at manifests and configs). On disk: :func:`write_updated_run_image` makes
the "OS update" of a run image in a local store (the same image plus one small layer with ``/etc/os-update``),
and :func:`write_changed_image` a copy with another config (architecture, labels).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from cnbplatform.files.analyzed import RunImageForRebase, RunImageRef
from cnbplatform.files.labels import LIFECYCLE_METADATA_LABEL, LifecycleMetadata
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.image import BlobOrigin, FileLayer, Image, Layer, as_image
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import Entry, LayerSpec
from cnbplatform.oci.model import ContainerConfig, Descriptor, History, ImageConfig
from cnbplatform.oci.mutate import BuiltImage, append_layers, with_config
from cnbplatform.oci.store.local import LocalStore

CREATED = "1980-01-01T00:00:01Z"


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class FakeLayer:
    """A layer known only by its digests (its bytes are never read)."""

    descriptor: Descriptor
    diff_id: str

    @property
    def origin(self) -> BlobOrigin | None:
        return None

    def path(self) -> Path | None:
        return None

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        raise AssertionError(f"layer {self.diff_id} was read")
        yield  # pragma: no cover


def fake_layer(name: str, media_type: str = mt.OCI_LAYER_GZIP) -> FakeLayer:
    return FakeLayer(Descriptor(media_type, _sha(f"blob of {name}"), 100 + len(name)), _sha(name))


def base_image(
    names: Sequence[str],
    *,
    architecture: str = "amd64",
    os: str = "linux",
    variant: str | None = None,
    labels: Mapping[str, str] | None = None,
    env: Sequence[str] = ("PATH=/bin",),
    history: Sequence[History] | None = None,
    media_type: str = mt.OCI_MANIFEST,
) -> BuiltImage:
    layers = [fake_layer(n) for n in names]
    config = ImageConfig(
        architecture=architecture,
        os=os,
        variant=variant,
        diff_ids=(),
        created=CREATED,
        config=ContainerConfig(env=tuple(env), labels=dict(labels or {}), user="1000:1000"),
        history=tuple(history) if history is not None else tuple(History(created_by=f"base {n}") for n in names),
    )
    return BuiltImage(config, layers, media_type=media_type)


def lifecycle_label(
    base: Image, *, image: str = "run", mirrors: Sequence[str] = (), reference: str = "run@sha256:old"
) -> str:
    metadata = LifecycleMetadata(
        app=(_sha("app"),),
        run_image=RunImageForRebase(
            top_layer=base.config.diff_ids[-1], reference=reference, image=image, mirrors=tuple(mirrors)
        ),
        stack=RunImageRef(image, tuple(mirrors)) if image else None,
    )
    return metadata.to_json()


def app_image(
    base: Image,
    names: Sequence[str] = ("bp-layer", "app", "launcher"),
    *,
    labels: Mapping[str, str] | None = None,
    platform_api: str | None = "0.15",
    image: str = "run",
    mirrors: Sequence[str] = (),
    with_label: bool = True,
) -> BuiltImage:
    """*base* plus fake app layers, with the exporter's env, entrypoint and labels (inherited base labels too)."""
    built = append_layers(base, [fake_layer(n) for n in names], [History(created_by=f"app {n}") for n in names])
    merged = dict(base.config.labels)
    if with_label:
        merged[LIFECYCLE_METADATA_LABEL] = lifecycle_label(base, image=image, mirrors=mirrors)
    merged.update(labels or {})
    env = [*base.config.config.env, "CNB_LAYERS_DIR=/layers"]
    if platform_api is not None:
        env.append(f"CNB_PLATFORM_API={platform_api}")
    container = replace(
        base.config.config,
        env=tuple(env),
        entrypoint=("/cnb/process/web",),
        working_dir="/workspace",
        labels=merged,
    )
    return with_config(built, container, created=CREATED)


# -- on disk ------------------------------------------------------------------------------------------------


def write_updated_run_image(home: Path, source: str, target: str, content: bytes = b"patched\n") -> Image:
    """The "OS update" of local run image *source*: the same image plus a layer adding ``/etc/os-update``
    (deterministic: the same content gives the same digest), saved in the local store of *home* as *target*."""
    store = LocalStore(home)
    run = as_image(store.read(source))
    spec = LayerSpec(entries=(Entry.directory("etc"), Entry.file("etc/os-update", content)))
    blob = LayerCache(home / "layer-cache").create(spec, home / "blobs").blob
    layer: Layer = FileLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, blob.path)
    updated = append_layers(run, [layer], [History(created=CREATED, created_by="os update: /etc/os-update")])
    store.write(updated, target)
    return updated


def write_changed_image(
    home: Path, source: str, target: str, *, architecture: str | None = None, labels: Mapping[str, str] | None = None
) -> Image:
    """A copy of local image *source* with another architecture and/or extra labels, saved as *target*."""
    store = LocalStore(home)
    image = as_image(store.read(source))
    config = replace(image.config.config, labels={**image.config.labels, **(labels or {})})
    fields = {"architecture": architecture} if architecture else {}
    changed = with_config(image, config, **fields)
    store.write(changed, target)
    return changed
