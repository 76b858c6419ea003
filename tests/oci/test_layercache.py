"""The layer cache: unchanged layers are not tarred, hashed or compressed twice (docs/design.md section 3
decision 4; docs/spec-notes.md section 16 items 42 and 45)."""

from __future__ import annotations

import gzip
import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cnbplatform.oci.layers import compress, tarlayer
from cnbplatform.oci.layers import stream as layerstream
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.tarlayer import Entry, LayerSpec, TreeSource

OLD = 1_600_000_000


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "deps"
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "a.txt").write_text("alpha\n" * 100)
    (root / "lib" / "b.bin").write_bytes(os.urandom(300_000))
    os.symlink("lib/a.txt", root / "a")
    for path in (root / "lib" / "a.txt", root / "lib" / "b.bin", root / "lib", root):
        os.utime(path, (OLD, OLD))
    return root


def _cache(tmp_path: Path) -> LayerCache:
    # margin 0: the fixture's files count as settled (the default 2 s margin is tested below)
    return LayerCache(tmp_path / "cache", racy_margin_ns=0)


def _spec(tree: Path, **kwargs: Any) -> LayerSpec:
    return LayerSpec(trees=(TreeSource(tree, prefix="layers/bp/deps"),), **kwargs)


class _Watch:
    """Records every path opened with os.open/open below *root*, and every block compressed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.opened: list[str] = []
        self.compressed = 0
        real_os_open: Callable[..., int] = os.open
        real_deflate = compress.deflate_block

        def os_open(path: Any, *args: Any, **kwargs: Any) -> int:
            if os.fspath(path).startswith(os.fspath(root)):
                self.opened.append(os.fspath(path))
            return real_os_open(path, *args, **kwargs)

        def deflate(*args: Any, **kwargs: Any) -> bytes:
            self.compressed += 1
            return real_deflate(*args, **kwargs)

        monkeypatch.setattr(os, "open", os_open)
        monkeypatch.setattr(layerstream, "deflate_block", deflate)  # the name layerstream calls


def test_second_creation_is_a_fingerprint_hit_that_reads_no_file(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    first = cache.create(_spec(tree, uid=1000, gid=1000), blobs)
    assert first.outcome == "written"
    watch = _Watch(monkeypatch, tree)
    second = cache.create(_spec(tree, uid=1000, gid=1000), blobs)
    assert second.outcome == "fingerprint"
    assert second.blob == first.blob
    assert watch.opened == [] and watch.compressed == 0


def test_create_layer_returns_the_recorded_blob(tree: Path, tmp_path: Path) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    first = cache.create_layer(tree, prefix="layers/bp/deps", uid=1000, gid=1000, blobs_dir=blobs)
    again = cache.create_layer(tree, prefix="layers/bp/deps", uid=1000, gid=1000, blobs_dir=blobs)
    assert again == first
    raw = first.path.read_bytes()
    assert first.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert first.diff_id == "sha256:" + hashlib.sha256(gzip.decompress(raw)).hexdigest()


def test_edit_recreates_the_layer(tree: Path, tmp_path: Path) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    first = cache.create(_spec(tree), blobs)
    (tree / "lib" / "a.txt").write_text("changed\n")
    second = cache.create(_spec(tree), blobs)
    assert second.outcome == "written"
    assert second.blob.diff_id != first.blob.diff_id
    assert b"changed" in gzip.decompress(second.blob.path.read_bytes())


def test_touched_but_identical_tree_is_hashed_not_compressed(
    tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    first = cache.create(_spec(tree), blobs)
    os.utime(tree / "lib" / "a.txt", (OLD + 10, OLD + 10))  # e.g. a layer restored from a cache
    watch = _Watch(monkeypatch, tree)
    second = cache.create(_spec(tree), blobs)
    assert second.outcome == "diff_id"
    assert second.blob == first.blob
    assert watch.compressed == 0 and watch.opened  # the files were read (hashed) but not compressed
    assert cache.create(_spec(tree), blobs).outcome == "fingerprint"  # and the new fingerprint is recorded


def test_missing_blob_is_written_again(tree: Path, tmp_path: Path) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    first = cache.create(_spec(tree), blobs)
    first.blob.path.unlink()
    second = cache.create(_spec(tree), blobs)
    assert second.outcome == "written"
    assert second.blob == first.blob and second.blob.path.exists()


def test_blob_of_the_wrong_size_is_not_trusted(tree: Path, tmp_path: Path) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    first = cache.create(_spec(tree), blobs)
    first.blob.path.write_bytes(b"truncated")
    assert cache.create(_spec(tree), blobs).outcome == "written"
    assert first.blob.path.read_bytes() != b"truncated"


def test_options_are_part_of_the_key(tree: Path, tmp_path: Path) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    base = cache.create(_spec(tree), blobs).blob
    other_owner = cache.create(_spec(tree, uid=1000), blobs)
    other_prefix = cache.create(LayerSpec(trees=(TreeSource(tree, prefix="x"),)), blobs)
    with_entry = cache.create(_spec(tree, entries=(Entry.file("cnb/x", b"1"),)), blobs)
    other_data = cache.create(_spec(tree, entries=(Entry.file("cnb/x", b"2"),)), blobs)
    results = [other_owner, other_prefix, with_entry, other_data]
    assert all(r.outcome == "written" for r in results)
    assert len({base.diff_id, *(r.blob.diff_id for r in results)}) == 5


def test_unstable_tree_is_not_skipped_by_fingerprint(tree: Path, tmp_path: Path) -> None:
    # a margin longer than the test: the fresh file stays racy through both creations and the scans after them
    cache, blobs = LayerCache(tmp_path / "cache", racy_margin_ns=60_000_000_000), tmp_path / "blobs"
    (tree / "lib" / "fresh.txt").write_text("just written\n")
    first = cache.create(_spec(tree), blobs)
    second = cache.create(_spec(tree), blobs)
    assert (first.outcome, second.outcome) == ("written", "diff_id")  # hashed again, never compressed
    assert second.blob == first.blob
    assert not (tmp_path / "cache" / "fingerprints").exists()


def test_a_tree_that_settles_while_its_tar_is_written_is_recorded(tree: Path, tmp_path: Path) -> None:
    """A layer exported right after a build wrote it: racy at the first scan, settled by the time its tar (16 MB
    of random bytes, so well over the 5 ms margin to compress) is written. The next creation of the unchanged
    tree is a fingerprint hit (issue 11 item 6: the first no-op after a cold build), not a re-hash."""
    cache, blobs = LayerCache(tmp_path / "cache", racy_margin_ns=5_000_000), tmp_path / "blobs"
    (tree / "lib" / "big.bin").write_bytes(os.urandom(16 << 20))
    (tree / "lib" / "fresh.txt").write_text("just written\n")
    first = cache.create(_spec(tree), blobs)
    second = cache.create(_spec(tree), blobs)
    assert (first.outcome, second.outcome) == ("written", "fingerprint")
    assert second.blob == first.blob
    (tree / "lib" / "fresh.txt").write_text("changed\n")  # a real change still misses
    third = cache.create(_spec(tree), blobs)
    assert third.outcome == "written" and third.blob.diff_id != first.blob.diff_id


def test_a_tree_changed_while_its_tar_is_written_is_not_recorded(tree: Path, tmp_path: Path) -> None:
    cache = LayerCache(tmp_path / "cache", racy_margin_ns=5_000_000)
    (tree / "lib" / "fresh.txt").write_text("just written\n")
    spec = _spec(tree)
    keys = cache._keys(spec, tarlayer.scan_sources(spec))
    assert keys.fingerprint is None and keys.settles
    (tree / "lib" / "fresh.txt").write_text("changed after the first scan\n")
    time.sleep(0.02)  # settled now, but not the tree the first scan saw
    assert cache._settled(spec, keys) == keys


def test_host_file_entries_are_fingerprinted(tree: Path, tmp_path: Path) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    host = tmp_path / "launcher"
    host.write_text("v1")
    os.utime(host, (OLD, OLD))
    spec = _spec(tree, entries=(Entry.host_file("cnb/lifecycle/launcher", host, mode=0o755),))
    assert cache.create(spec, blobs).outcome == "written"
    assert cache.create(spec, blobs).outcome == "fingerprint"
    host.write_text("v2")
    changed = cache.create(spec, blobs)
    assert changed.outcome == "written"
    assert b"v2" in gzip.decompress(changed.blob.path.read_bytes())


def test_select_without_key_is_never_skipped(tree: Path, tmp_path: Path) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    spec = LayerSpec(trees=(TreeSource(tree, select=lambda rel, _: rel.startswith("lib")),))
    assert cache.create(spec, blobs).outcome == "written"
    assert cache.create(spec, blobs).outcome == "written"
    keyed = LayerSpec(trees=(TreeSource(tree, select=lambda rel, _: rel.startswith("lib"), select_key="lib*"),))
    assert cache.create(keyed, blobs).outcome == "written"
    assert cache.create(keyed, blobs).outcome == "fingerprint"


def test_remember_and_compressed_for(tmp_path: Path) -> None:
    diff_id, digest = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert _cache(tmp_path).compressed_for(diff_id) is None
    _cache(tmp_path).remember(diff_id, digest, 1234)
    assert LayerCache(tmp_path / "cache").compressed_for(diff_id) == (digest, 1234)  # another instance
    assert LayerCache(tmp_path / "cache").blob_for(diff_id, tmp_path / "blobs") is None  # blob absent
    (tmp_path / "blobs").mkdir()
    (tmp_path / "blobs" / ("b" * 64)).write_bytes(b"x" * 1234)
    blob = LayerCache(tmp_path / "cache").blob_for(diff_id, tmp_path / "blobs")
    assert blob is not None and (blob.digest, blob.size, blob.diff_id) == (digest, 1234, diff_id)


def test_corrupt_records_are_misses(tree: Path, tmp_path: Path) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    first = cache.create(_spec(tree), blobs)
    for record in (tmp_path / "cache").rglob("*.json"):
        record.write_text("{not json")
    assert cache.compressed_for(first.blob.diff_id) is None
    again = cache.create(_spec(tree), blobs)
    assert again.outcome == "written" and again.blob == first.blob


def test_records_are_small_files_written_atomically(tree: Path, tmp_path: Path) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    cache.create(_spec(tree), blobs)
    files = sorted(p.relative_to(tmp_path / "cache").parts[0] for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert files == ["diffids", "fingerprints", "shapes"]
    assert not list((tmp_path / "cache").rglob(".tmp-*"))


def test_threads_sharing_a_cache_agree(tree: Path, tmp_path: Path) -> None:
    cache, blobs = _cache(tmp_path), tmp_path / "blobs"
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: cache.create(_spec(tree), blobs), range(12)))
    assert len({r.blob for r in results}) == 1
    assert [p.name for p in blobs.iterdir()] == [results[0].blob.path.name]


def _create_in_process(args: tuple[str, str, str]) -> str:
    tree, cache_dir, blobs = args
    cache = LayerCache(Path(cache_dir), racy_margin_ns=0)
    return cache.create(_spec(Path(tree)), Path(blobs)).blob.digest


def test_processes_sharing_a_cache_agree(tree: Path, tmp_path: Path) -> None:
    args = (os.fspath(tree), os.fspath(tmp_path / "cache"), os.fspath(tmp_path / "blobs"))
    with ProcessPoolExecutor(3, mp_context=multiprocessing.get_context("fork")) as pool:
        digests = list(pool.map(_create_in_process, [args] * 6))
    assert len(set(digests)) == 1
    assert _cache(tmp_path).create(_spec(tree), tmp_path / "blobs").outcome == "fingerprint"
