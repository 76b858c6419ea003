"""Cache backends (docs/spec-notes.md §7.1, §7.2): the directory cache with its atomic commit and extracted trees, and
the image cache against an OCI layout and a real registry.

The helpers at the top build layer directories, layer blobs and images with cnb's real layer writer and
layout store; test_restore.py and test_analyze.py use them too.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

import pytest

from cnbplatform.errors import CnbError
from cnbplatform.files.analyzed import BuildpackLayers, LayerEntry
from cnbplatform.files.labels import CACHE_METADATA_LABEL, CacheMetadata
from cnbplatform.lifecycle.cache import directory as cache_dir
from cnbplatform.lifecycle.cache import trees as trees_module
from cnbplatform.lifecycle.cache.directory import BACKUP, COMMITTED, STAGING, DirCache
from cnbplatform.lifecycle.cache.image import ImageCache
from cnbplatform.lifecycle.cache.protocol import READ_ERRORS, LayerOpener, extract_layer
from cnbplatform.lifecycle.common import RecordingReporter
from cnbplatform.oci.digest import hex_part
from cnbplatform.oci.image import FileLayer, Image, as_image
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import LayerBlob
from cnbplatform.oci.model import ContainerConfig, Descriptor, ImageConfig
from cnbplatform.oci.mutate import BuiltImage
from cnbplatform.oci.reference import parse_reference
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.oci.store.stores import StoreOptions, Stores
from tests.support.registry import RunningRegistry

REPO = Path(__file__).resolve().parents[2]
UID, GID = 1000, 1000

# -- helpers shared with test_restore.py / test_analyze.py ---------------------------------------------------


def make_tree(root: Path, files: Mapping[str, bytes]) -> Path:
    """A directory holding *files* (relative path -> content)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def make_blob(layer_cache: LayerCache, source: Path, prefix: str, blobs_dir: Path) -> LayerBlob:
    """The layer of *source* archived under *prefix* (an absolute container path such as ``/layers/bp/l``)."""
    return layer_cache.create_layer(source, prefix=prefix, uid=UID, gid=GID, blobs_dir=blobs_dir)


def file_layer(blob: LayerBlob) -> FileLayer:
    return FileLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, blob.path)


def write_image(
    store: LayoutStore,
    ref: str,
    blobs: list[LayerBlob],
    labels: Mapping[str, str],
    *,
    os_name: str = "linux",
    arch: str = "amd64",
    variant: str | None = None,
) -> Image:
    """Write an image of *blobs* with *labels* to *store* as *ref* and read it back (a layout-backed image)."""
    config = ImageConfig(
        architecture=arch,
        os=os_name,
        diff_ids=(),
        variant=variant,
        config=ContainerConfig(labels=dict(labels)),
    )
    store.write(BuiltImage(config, [file_layer(b) for b in blobs]), ref)
    return as_image(store.read(ref))


def tar_names(opener: LayerOpener) -> list[str]:
    with opener() as stream:
        data = stream.read()
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.getnames()


def cache_meta(bp: str, layers: Mapping[str, LayerEntry], sbom: str | None = None) -> CacheMetadata:
    return CacheMetadata(sbom=sbom, buildpacks=(BuildpackLayers(key=bp, version="1.0.0", layers=dict(layers)),))


def cached(sha: str, **flags: bool) -> LayerEntry:
    return LayerEntry(sha=sha, metadata={"v": "1"}, cache=True, **flags)


def dir_cache(tmp_path: Path, reporter: RecordingReporter | None = None) -> DirCache:
    return DirCache(tmp_path / "cache", LayerCache(tmp_path / "layer-cache"), reporter=reporter)


def commit_layer(
    cache: DirCache, source: Path, bp: str = "example/bp", name: str = "deps", *, adopt: bool = False
) -> str:
    """Export-side use of a DirCache: add the layer of *source*, optionally hand its tree over, commit."""
    prefix = f"/layers/{bp.replace('/', '_')}/{name}"
    with cache.begin() as writer:
        diff_id = writer.add_dir(source, prefix=prefix, uid=UID, gid=GID)
        if adopt:
            assert writer.adopt_tree(diff_id, source)
        writer.set_metadata(cache_meta(bp, {name: cached(diff_id)}))
        writer.commit()
    return diff_id


# -- DirCache --------------------------------------------------------------------------------------------------


def test_dir_cache_round_trip(tmp_path: Path) -> None:
    """A committed layer and its metadata come back from a freshly opened cache; the tar holds the layer under
    its container path and extracts into the host layers dir."""
    source = make_tree(tmp_path / "src", {"bin/tool": b"#!/bin/sh\n", "lib/x.so": b"x" * 1000})
    diff_id = commit_layer(dir_cache(tmp_path), source)

    reopened = dir_cache(tmp_path)
    assert reopened.metadata() == cache_meta("example/bp", {"deps": cached(diff_id)})
    opener = reopened.layer(diff_id)
    assert opener is not None
    assert "layers/example_bp/deps/bin/tool" in tar_names(opener)
    layers = tmp_path / "layers"
    assert extract_layer(opener, layers, layers_mount="/layers", what="test") == ["example_bp"]
    assert (layers / "example_bp/deps/lib/x.so").read_bytes() == b"x" * 1000
    assert [p.name for p in layers.iterdir()] == ["example_bp"]  # the scratch dir is gone
    assert reopened.layer("sha256:" + "0" * 64) is None


def test_empty_and_missing_cache(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    cache = dir_cache(tmp_path, reporter)
    assert cache.metadata() == CacheMetadata()
    assert reporter.warnings == []


def test_corrupt_metadata_is_empty_with_a_warning(tmp_path: Path) -> None:
    """§7.1: corrupt cache metadata is treated as an empty cache."""
    source = make_tree(tmp_path / "src", {"f": b"1"})
    commit_layer(dir_cache(tmp_path), source)
    (tmp_path / "cache" / COMMITTED / CACHE_METADATA_LABEL).write_text("{not json")
    reporter = RecordingReporter()
    assert dir_cache(tmp_path, reporter).metadata() == CacheMetadata()
    assert any("corrupt cache metadata" in w for w in reporter.warnings)


def test_reuse_hard_links_and_refuses_a_corrupt_blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """§7.1/§7.2: a reused layer is hard-linked from committed into the new cache, after its blob verifies: by
    its unchanged file stamp (no hashing), else by its digest."""
    source = make_tree(tmp_path / "src", {"f": b"content" * 100})
    cache = dir_cache(tmp_path)
    diff_id = commit_layer(cache, source)
    blob = next((tmp_path / "cache" / COMMITTED / "blobs").iterdir())
    inode = blob.stat().st_ino

    def no_hashing(path: Path) -> tuple[str, int]:
        raise AssertionError(f"{path} was hashed")

    monkeypatch.setattr(cache_dir, "hash_file", no_hashing)
    with cache.begin() as writer:
        assert writer.reuse(diff_id)
        assert not writer.reuse("sha256:" + "1" * 64)
        writer.set_metadata(cache_meta("example/bp", {"deps": cached(diff_id)}))
        writer.commit()
    assert (tmp_path / "cache" / COMMITTED / "blobs" / blob.name).stat().st_ino == inode
    monkeypatch.undo()

    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "cache" / COMMITTED / "blobs" / blob.name).write_bytes(bytes(data))
    reporter = RecordingReporter()
    with dir_cache(tmp_path, reporter).begin() as writer:
        assert not writer.reuse(diff_id)
    assert any("corrupt" in w for w in reporter.warnings)


def test_a_copied_cache_is_hashed_once_then_reused_by_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache directory copied elsewhere (new inodes: a CI cache restored, ``cp -a``) has stale stamps: its blobs
    verify by their digests, and an otherwise unchanged commit records their new stamps, so the next build reuses
    them without hashing again."""
    source = make_tree(tmp_path / "src", {"f": b"content" * 100})
    diff_id = commit_layer(dir_cache(tmp_path / "first"), source)
    shutil.copytree(tmp_path / "first" / "cache", tmp_path / "copy" / "cache")
    hashed: list[Path] = []
    real_hash = cache_dir.hash_file

    def counting(path: Path) -> tuple[str, int]:
        hashed.append(path)
        return real_hash(path)

    monkeypatch.setattr(cache_dir, "hash_file", counting)
    for _ in range(2):
        with dir_cache(tmp_path / "copy").begin() as writer:
            assert writer.reuse(diff_id)
            writer.set_metadata(cache_meta("example/bp", {"deps": cached(diff_id)}))
            writer.commit()
    assert len(hashed) == 1
    opener = dir_cache(tmp_path / "copy").layer(diff_id)
    assert opener is not None
    extract_layer(opener, tmp_path / "layers", layers_mount="/layers", what="test")
    assert (tmp_path / "layers" / "example_bp" / "deps" / "f").read_bytes() == b"content" * 100


def test_corrupt_blob_fails_to_read(tmp_path: Path) -> None:
    """A damaged blob never reads as a complete tar: the opener raises one of READ_ERRORS."""
    source = make_tree(tmp_path / "src", {"f": os.urandom(50_000)})
    cache = dir_cache(tmp_path)
    diff_id = commit_layer(cache, source)
    blob = next((tmp_path / "cache" / COMMITTED / "blobs").iterdir())
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    opener = cache.layer(diff_id)
    assert opener is not None
    with pytest.raises(READ_ERRORS):
        extract_layer(opener, tmp_path / "layers", layers_mount="/layers", what="test")
    assert not (tmp_path / "layers" / "example_bp").exists()


def test_abort_and_unreferenced_layers_leave_the_cache_unchanged(tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"f": b"1"})
    cache = dir_cache(tmp_path)
    diff_id = commit_layer(cache, source)
    other = make_tree(tmp_path / "other", {"g": b"2"})
    with cache.begin() as writer:
        writer.add_dir(other, prefix="/layers/example_bp/other", uid=UID, gid=GID)
        writer.set_metadata(CacheMetadata())
        # leaving the block without commit aborts
    assert not (tmp_path / "cache" / STAGING).exists()
    assert dir_cache(tmp_path).metadata() == cache_meta("example/bp", {"deps": cached(diff_id)})

    with cache.begin() as writer:
        writer.add_dir(other, prefix="/layers/example_bp/other", uid=UID, gid=GID)
        writer.set_metadata(cache_meta("example/bp", {"gone": cached("sha256:" + "2" * 64)}))
        with pytest.raises(CnbError, match="no layer was added"):
            writer.commit()
    assert dir_cache(tmp_path).metadata() == cache_meta("example/bp", {"deps": cached(diff_id)})


def test_a_commit_that_changes_nothing_keeps_the_committed_version(tmp_path: Path) -> None:
    """A rebuild that caches the same layers with the same metadata leaves ``committed`` in place (nothing is
    rewritten or renamed); any difference in metadata commits a new version."""
    cache = dir_cache(tmp_path)
    diff_id = commit_layer(cache, make_tree(tmp_path / "src", {"f": b"1"}))
    committed = tmp_path / "cache" / COMMITTED
    before = (committed.stat().st_ino, (committed / "layers.json").stat().st_ino)
    with cache.begin() as writer:
        assert writer.reuse(diff_id)
        writer.set_metadata(cache_meta("example/bp", {"deps": cached(diff_id)}))
        writer.commit()
    assert (committed.stat().st_ino, (committed / "layers.json").stat().st_ino) == before
    assert not (tmp_path / "cache" / STAGING).exists()
    assert dir_cache(tmp_path).metadata() == cache_meta("example/bp", {"deps": cached(diff_id)})

    changed = LayerEntry(sha=diff_id, metadata={"v": "2"}, cache=True)
    # An open descriptor keeps the old version's inode allocated, so the new version cannot reuse its number.
    held = os.open(committed, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with cache.begin() as writer:
            assert writer.reuse(diff_id)
            writer.set_metadata(cache_meta("example/bp", {"deps": changed}))
            writer.commit()
        assert committed.stat().st_ino != before[0]
    finally:
        os.close(held)
    assert dir_cache(tmp_path).metadata() == cache_meta("example/bp", {"deps": changed})
    assert dir_cache(tmp_path).layer(diff_id) is not None


def test_failed_commit_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """§7.1: a failure between the renames puts the previous cache back."""
    cache = dir_cache(tmp_path)
    old = commit_layer(cache, make_tree(tmp_path / "src", {"f": b"old"}))
    real_rename = os.rename

    def failing(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(src).name == STAGING:
            raise OSError(28, "No space left on device")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", failing)
    with pytest.raises(CnbError, match="No space left"):
        commit_layer(cache, make_tree(tmp_path / "src2", {"f": b"new"}))
    monkeypatch.undo()
    assert not (tmp_path / "cache" / BACKUP).exists()
    reopened = dir_cache(tmp_path)
    assert reopened.metadata() == cache_meta("example/bp", {"deps": cached(old)})
    assert reopened.layer(old) is not None


_CRASH = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    from cnbplatform.lifecycle.cache.directory import DirCache
    from cnbplatform.oci.layers.cache import LayerCache
    from cnbplatform.files.labels import CacheMetadata
    from cnbplatform.files.analyzed import BuildpackLayers, LayerEntry
    real = os.rename
    def crash(src, dst):
        real(src, dst)
        if Path(dst).name == {after!r}:
            os._exit(3)
    os.rename = crash
    tmp = Path({tmp!r})
    cache = DirCache(tmp / "cache", LayerCache(tmp / "layer-cache"))
    writer = cache.begin()
    diff_id = writer.add_dir(tmp / "src2", prefix="/layers/example_bp/deps", uid=1000, gid=1000)
    layers = {{"deps": LayerEntry(sha=diff_id, metadata={{"v": "1"}}, cache=True)}}
    writer.set_metadata(CacheMetadata(buildpacks=(BuildpackLayers(key="example/bp", version="1.0.0", layers=layers),)))
    writer.commit()
    """
)


def _crash_commit(tmp_path: Path, after: str) -> None:
    make_tree(tmp_path / "src2", {"f": b"new"})
    script = _CRASH.format(repo=str(REPO), tmp=str(tmp_path), after=after)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3, done.stderr


def test_crash_between_the_renames_keeps_the_previous_cache(tmp_path: Path) -> None:
    """§7.1: a process killed after committed -> committed-backup but before staging -> committed leaves a cache
    that the next open repairs to the previous version."""
    cache = dir_cache(tmp_path)
    old = commit_layer(cache, make_tree(tmp_path / "src", {"f": b"old"}))
    _crash_commit(tmp_path, after=BACKUP)
    root = tmp_path / "cache"
    assert not (root / COMMITTED).exists() and (root / BACKUP).is_dir() and (root / STAGING).is_dir()

    reporter = RecordingReporter()
    reopened = dir_cache(tmp_path, reporter)
    assert (root / COMMITTED).is_dir() and not (root / BACKUP).exists()
    assert reopened.metadata() == cache_meta("example/bp", {"deps": cached(old)})
    assert reopened.layer(old) is not None
    assert any("interrupted commit" in w for w in reporter.warnings)
    with reopened.begin() as writer:  # a new export starts from a clean staging dir
        assert writer.reuse(old)
        assert [p.name for p in (root / STAGING / "blobs").iterdir()] != []


def test_crash_after_the_renames_keeps_the_new_cache(tmp_path: Path) -> None:
    cache = dir_cache(tmp_path)
    commit_layer(cache, make_tree(tmp_path / "src", {"f": b"old"}))
    _crash_commit(tmp_path, after=COMMITTED)
    root = tmp_path / "cache"
    assert (root / COMMITTED).is_dir() and (root / BACKUP).is_dir()
    reopened = dir_cache(tmp_path)
    assert not (root / BACKUP).exists()
    (entry,) = reopened.metadata().buildpacks[0].layers.values()
    opener = reopened.layer(entry.sha)
    assert opener is not None
    extract_layer(opener, tmp_path / "layers", layers_mount="/layers", what="test")
    assert (tmp_path / "layers/example_bp/deps/f").read_bytes() == b"new"


# -- extracted trees ---------------------------------------------------------------------------------------


def test_adopted_tree_is_taken_back_by_rename(tmp_path: Path) -> None:
    """The fast path: the exporter hands the layer dir over, the restorer gets the same inodes back."""
    source = make_tree(tmp_path / "layers1/example_bp/deps", {"big": b"b" * 10_000, "sub/f": b"f"})
    inode = (source / "big").stat().st_ino
    cache = dir_cache(tmp_path)
    diff_id = commit_layer(cache, source, adopt=True)
    assert not source.exists()
    assert (tmp_path / "cache/trees" / hex_part(diff_id)).is_dir()

    dest = tmp_path / "layers2/example_bp/deps"
    dest.parent.mkdir(parents=True)
    assert dir_cache(tmp_path).take_tree(diff_id, dest)
    assert (dest / "big").stat().st_ino == inode
    assert (dest / "sub/f").read_bytes() == b"f"
    assert not dir_cache(tmp_path).take_tree(diff_id, tmp_path / "layers2/example_bp/again")  # taken once


def test_changed_tree_is_not_taken(tmp_path: Path) -> None:
    """A tree modified while in the cache fails its stat digest and is discarded (the blob stays)."""
    source = make_tree(tmp_path / "layers1/example_bp/deps", {"f": b"original"})
    cache = dir_cache(tmp_path)
    diff_id = commit_layer(cache, source, adopt=True)
    (tmp_path / "cache/trees" / hex_part(diff_id) / "f").write_bytes(b"tampered")
    dest = tmp_path / "layers2/example_bp/deps"
    dest.parent.mkdir(parents=True)
    assert not cache.take_tree(diff_id, dest)
    assert not dest.exists()
    assert not (tmp_path / "cache/trees" / hex_part(diff_id)).exists()
    assert cache.layer(diff_id) is not None


def test_adopt_records_the_digest_of_the_scan_the_tar_was_made_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exporter's scan of a layer dir is the tree's record (no second walk at adopt); a tree that changed
    after that scan does not match its record, so the next restore extracts the blob instead of taking it."""
    layer_cache = LayerCache(tmp_path / "layer-cache")
    source = make_tree(tmp_path / "layers1/example_bp/deps", {"f": b"v1", "sub/g": b"g"})
    blob = layer_cache.create_layer(source, prefix="/layers/example_bp/deps", blobs_dir=tmp_path / "blobs")
    assert blob.tree_digest is not None and blob.tree_digest.startswith("sha256:")
    assert blob.tree_digest == trees_module.tree_digest(source)  # the tree store's own walk agrees
    assert blob == replace(blob, tree_digest=None)  # not part of the blob's identity

    walks: list[Path] = []
    real = trees_module.tree_digest
    monkeypatch.setattr(trees_module, "tree_digest", lambda root: walks.append(root) or real(root))
    cache = dir_cache(tmp_path)
    with cache.begin() as writer:
        writer.add_blob(blob)
        assert writer.adopt_tree(blob.diff_id, source, blob.tree_digest)
        writer.set_metadata(cache_meta("example/bp", {"deps": cached(blob.diff_id)}))
        writer.commit()
    assert walks == []  # adopt took the digest it was given
    dest = tmp_path / "layers2/example_bp/deps"
    dest.parent.mkdir(parents=True)
    assert cache.take_tree(blob.diff_id, dest)
    assert len(walks) == 1  # take always checks

    # the same with a stale digest: the tree changed between the scan and the hand-over
    stale = make_tree(tmp_path / "layers3/example_bp/deps", {"f": b"v1", "sub/g": b"g"})
    blob2 = layer_cache.create_layer(stale, prefix="/layers/example_bp/deps", blobs_dir=tmp_path / "blobs")
    (stale / "f").write_bytes(b"v2")
    with cache.begin() as writer:
        writer.add_blob(blob2)
        assert writer.adopt_tree(blob2.diff_id, stale, blob2.tree_digest)
        writer.set_metadata(cache_meta("example/bp", {"deps": cached(blob2.diff_id)}))
        writer.commit()
    again = tmp_path / "layers4/example_bp/deps"
    again.parent.mkdir(parents=True)
    assert not cache.take_tree(blob2.diff_id, again)
    assert not again.exists()
    assert cache.layer(blob2.diff_id) is not None  # the blob is still there to extract


def test_trees_of_uncached_layers_are_pruned(tmp_path: Path) -> None:
    cache = dir_cache(tmp_path)
    first = commit_layer(cache, make_tree(tmp_path / "a/deps", {"f": b"1"}), adopt=True)
    second = commit_layer(cache, make_tree(tmp_path / "b/deps", {"f": b"2"}), adopt=True)
    trees = tmp_path / "cache/trees"
    assert sorted(p.name for p in trees.iterdir()) == sorted([hex_part(second), hex_part(second) + ".json"])
    assert first != second


# -- ImageCache ------------------------------------------------------------------------------------------------


def _exercise_image_cache(make: Callable[[RecordingReporter], ImageCache], tmp_path: Path) -> None:
    """Shared ImageCache scenario: empty, commit of one layer, reopen, reuse without re-sending."""
    reporter = RecordingReporter()
    cache: ImageCache = make(reporter)
    assert cache.metadata() == CacheMetadata()
    assert reporter.warnings == []

    with cache.begin() as writer:  # nothing cached: one empty layer
        writer.set_metadata(CacheMetadata())
        writer.commit()
    image = make(reporter).image()
    assert image is not None and len(image.layers()) == 1
    assert json.loads(image.config.labels[CACHE_METADATA_LABEL]) == {"buildpacks": []}

    source = make_tree(tmp_path / "src", {"bin/tool": b"tool" * 1000})
    with make(reporter).begin() as writer:
        diff_id = writer.add_dir(source, prefix="/layers/example_bp/deps", uid=UID, gid=GID)
        assert not writer.adopt_tree(diff_id, source)
        writer.set_metadata(cache_meta("example/bp", {"deps": cached(diff_id)}))
        writer.commit()
    assert source.exists()

    reopened = make(reporter)
    assert reopened.metadata() == cache_meta("example/bp", {"deps": cached(diff_id)})
    opener = reopened.layer(diff_id)
    assert opener is not None and "layers/example_bp/deps/bin/tool" in tar_names(opener)
    assert not reopened.take_tree(diff_id, tmp_path / "nowhere")
    image = reopened.image()
    assert image is not None
    layer_digest = next(layer.descriptor.digest for layer in image.layers())

    with make(reporter).begin() as writer:
        assert writer.reuse(diff_id)
        assert not writer.reuse("sha256:" + "3" * 64)
        writer.set_metadata(cache_meta("example/bp", {"deps": cached(diff_id)}, sbom=None))
        writer.commit()
        assert writer.result is not None
        assert layer_digest in writer.result.existing and layer_digest not in writer.result.written
    assert reporter.warnings == []


def test_image_cache_in_a_layout(tmp_path: Path) -> None:
    """§7.1 image cache, stored in an OCI layout."""
    store = LayoutStore(tmp_path / "store")
    layer_cache = LayerCache(tmp_path / "layer-cache")
    _exercise_image_cache(
        lambda reporter: ImageCache(store, "cache", layer_cache, blobs_dir=tmp_path / "blobs", reporter=reporter),
        tmp_path,
    )


@pytest.mark.integration
def test_image_cache_in_a_registry(tmp_path: Path, registry: RunningRegistry) -> None:
    """§7.1 image cache pushed to a real registry; the reused layer is not uploaded again."""
    with Stores(StoreOptions(home=tmp_path / "home")) as stores:
        store = stores.remote(parse_reference(f"{registry.host}/cache/lifecycle-test:1"))
        layer_cache = LayerCache(tmp_path / "layer-cache")
        _exercise_image_cache(lambda reporter: ImageCache(store, "1", layer_cache, reporter=reporter), tmp_path)


def test_image_cache_with_a_corrupt_label_is_empty(tmp_path: Path) -> None:
    store = LayoutStore(tmp_path / "store")
    layer_cache = LayerCache(tmp_path / "layer-cache")
    empty = layer_cache.create_layer(None, blobs_dir=tmp_path / "blobs")
    write_image(store, "cache", [empty], {CACHE_METADATA_LABEL: "[1, 2"})
    reporter = RecordingReporter()
    assert ImageCache(store, "cache", layer_cache, reporter=reporter).metadata() == CacheMetadata()
    assert any("corrupt metadata" in w for w in reporter.warnings)


def _tar_opener(entries: list[tarfile.TarInfo]) -> LayerOpener:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info in entries:
            archive.addfile(info, io.BytesIO(b"x" * info.size) if info.isreg() else None)
    data = buffer.getvalue()

    @contextlib.contextmanager
    def opener() -> Iterator[BinaryIO]:
        yield io.BytesIO(data)

    return opener


def _info(name: str, kind: bytes, target: str = "", size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, target, size, 0o755
    return info


def test_extraction_never_puts_a_symlink_where_a_buildpack_dir_belongs(tmp_path: Path) -> None:
    """A crafted cached tar cannot make <layers>/<bp> (or <layers>/sbom) a symlink out of the layers dir;
    entries outside the layers mount are dropped."""
    layers = tmp_path / "layers"
    evil = _tar_opener([_info("layers", tarfile.DIRTYPE), _info("layers/example_bp", tarfile.SYMTYPE, "/etc")])
    with pytest.raises(CnbError, match="not a directory"):
        extract_layer(evil, layers, layers_mount="/layers", what="test")
    assert list(layers.iterdir()) == []

    mixed = _tar_opener(
        [_info("etc/passwd", tarfile.REGTYPE, size=3), _info("layers/example_bp/deps/f", tarfile.REGTYPE, size=2)]
    )
    assert extract_layer(mixed, layers, layers_mount="/layers", what="test") == ["example_bp"]
    assert (layers / "example_bp/deps/f").read_bytes() == b"xx"
    assert sorted(p.name for p in layers.iterdir()) == ["example_bp"]
