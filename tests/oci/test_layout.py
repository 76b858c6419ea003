"""The OCI layout store: round trips, tags, atomicity on corrupt input, gc, concurrent writers."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from cnbplatform.errors import DigestMismatchError, NotFoundError, UsageError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.image import FileLayer, as_image
from cnbplatform.oci.model import Descriptor, ImageConfig
from cnbplatform.oci.mutate import BuiltImage, with_config
from cnbplatform.oci.store.layout import REF_NAME, LayoutStore
from cnbplatform.oci.store.local import LocalStore


def make_layer(directory: Path, files: dict[str, bytes]) -> FileLayer:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 315532801
            tar.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    blob = gzip.compress(plain, mtime=0)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    path = directory / digest[7:]
    path.write_bytes(blob)
    return FileLayer(
        Descriptor(mt.OCI_LAYER_GZIP, digest, len(blob)), "sha256:" + hashlib.sha256(plain).hexdigest(), path
    )


def make_image(tmp: Path, *contents: dict[str, bytes]) -> BuiltImage:
    tmp.mkdir(parents=True, exist_ok=True)
    layers = [make_layer(tmp, c) for c in contents]
    return BuiltImage(ImageConfig(architecture="amd64", os="linux", diff_ids=()), layers)


def blobs(root: Path) -> set[str]:
    d = root / "blobs" / "sha256"
    return {p.name for p in d.iterdir()} if d.exists() else set()


def test_round_trip_keeps_bytes_and_tags(tmp_path: Path) -> None:
    image = make_image(tmp_path / "src", {"a.txt": b"hello"}, {"b.txt": b"world"})
    store = LayoutStore(tmp_path / "layout")
    result = store.write(image, "v1")
    assert len(result.written) == 4  # 2 layers, config, manifest
    store.write(image, "v2")
    again = as_image(store.read("v1"))
    assert again.raw_manifest == image.raw_manifest
    assert again.descriptor.digest == image.descriptor.digest
    assert again.config.diff_ids == image.config.diff_ids
    assert [x.name for x in store.list()] == ["v1", "v2"]
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert {m["annotations"][REF_NAME] for m in index["manifests"]} == {"v1", "v2"}
    assert json.loads((tmp_path / "layout" / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    # writing the same image again writes nothing new
    assert store.write(image, "v1").written == []


def test_retag_replaces_and_delete_and_gc(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "layout")
    first = make_image(tmp_path / "a", {"a": b"1"})
    second = make_image(tmp_path / "b", {"b": b"2"})
    store.write(first, "app")
    store.write(second, "app")
    assert store.read("app").descriptor.digest == second.descriptor.digest
    assert len(store.list()) == 1
    assert store.gc() == 3  # first image's layer, config and manifest are unreferenced now
    assert first.manifest.layers[0].digest[7:] not in blobs(tmp_path / "layout")
    store.tag("app", "other")
    store.delete("app")
    assert [x.name for x in store.list()] == ["other"]
    with pytest.raises(NotFoundError):
        store.read("app")


def test_read_without_tag(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "layout")
    image = make_image(tmp_path / "a", {"a": b"1"})
    store.write(image, None)
    assert store.read(None).descriptor.digest == image.descriptor.digest
    store.write(make_image(tmp_path / "b", {"b": b"1"}), "x")
    with pytest.raises(UsageError, match="holds 2 images"):
        store.read(None)


def test_corrupt_source_blob_writes_nothing(tmp_path: Path) -> None:
    src = LayoutStore(tmp_path / "src")
    image = make_image(tmp_path / "tmp", {"a": b"x" * 5000}, {"b": b"y" * 5000})
    src.write(image, "app")
    victim = tmp_path / "src" / "blobs" / "sha256" / image.manifest.layers[1].digest[7:]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    dst_root = tmp_path / "dst"
    dst = LayoutStore(dst_root)
    with pytest.raises(DigestMismatchError, match=image.manifest.layers[1].digest):
        dst.write(src.read("app"), "app")
    assert blobs(dst_root) == set()
    assert dst.list() == []
    assert not any((dst_root / ".cnb-tmp").iterdir())


def test_truncated_blob_is_detected(tmp_path: Path) -> None:
    src = LayoutStore(tmp_path / "src")
    image = make_image(tmp_path / "tmp", {"a": b"x" * 5000})
    src.write(image, "app")
    victim = tmp_path / "src" / "blobs" / "sha256" / image.manifest.layers[0].digest[7:]
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(DigestMismatchError, match="size mismatch"):
        LayoutStore(tmp_path / "dst").write(src.read("app"), "app")


def test_corrupt_manifest_is_detected(tmp_path: Path) -> None:
    src = LayoutStore(tmp_path / "src")
    image = make_image(tmp_path / "tmp", {"a": b"1"})
    src.write(image, "app")
    victim = tmp_path / "src" / "blobs" / "sha256" / image.descriptor.digest[7:]
    victim.write_bytes(victim.read_bytes().replace(b"layers", b"Layers"))
    with pytest.raises(DigestMismatchError):
        src.read("app")


def test_local_store_normalises_names(tmp_path: Path) -> None:
    local = LocalStore(tmp_path / "home")
    with pytest.raises(NotFoundError, match="'myapp:latest' not found in the local store"):
        local.read("myapp")
    assert local.list() == []
    image = make_image(tmp_path / "tmp", {"a": b"1"})
    local.write(image, "myapp")
    assert local.read("docker.io/library/myapp:latest").descriptor.digest == image.descriptor.digest
    local.tag("myapp", "127.0.0.1:5000/team/app:v1")
    assert [r.name for r in local.list()] == ["127.0.0.1:5000/team/app:v1", "myapp:latest"]
    local.delete("myapp")
    assert [r.name for r in local.list()] == ["127.0.0.1:5000/team/app:v1"]
    assert len(blobs(tmp_path / "home" / "images")) == 3  # still referenced by the other tag


def test_a_new_config_over_present_layers_writes_only_the_documents(tmp_path: Path) -> None:
    """What a rebase writes: the layers are already in the layout, so they are counted, not read again (their
    source files are gone here), and nothing is left in the staging area."""
    image = make_image(tmp_path / "src", {"a": b"1"}, {"b": b"2"})
    store = LayoutStore(tmp_path / "layout")
    store.write(image, "app")
    for layer in image.layers():
        path = layer.path()
        assert path is not None
        path.unlink()
    changed = with_config(image, created="2030-01-01T00:00:00Z")
    result = store.write(changed, "app")
    assert result.written == [changed.manifest.config.digest, changed.descriptor.digest]
    assert result.existing == [layer.descriptor.digest for layer in image.layers()]
    assert store.read("app").descriptor.digest == changed.descriptor.digest
    assert not any((tmp_path / "layout" / ".cnb-tmp").iterdir())


def test_names_resolve_past_an_entry_that_is_not_an_object(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "layout")
    image = make_image(tmp_path / "src", {"a": b"1"})
    store.write(image, "app")
    index_path = tmp_path / "layout" / "index.json"
    index = json.loads(index_path.read_text())
    index["manifests"].insert(0, "junk")
    index_path.write_text(json.dumps(index))
    assert store.read("app").descriptor.digest == image.descriptor.digest
    assert store.resolve(image.descriptor.digest).digest == image.descriptor.digest
    with pytest.raises(NotFoundError, match="'other' not found"):
        store.resolve("other")
