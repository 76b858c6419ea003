"""Deterministic tar layers (docs/design.md section 3 decision 4; docs/spec-notes.md section 16 items 35, 36, 42)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cnbplatform.errors import CnbError, UsageError
from cnbplatform.oci.layers.compress import FEED_CHUNK
from cnbplatform.oci.layers.tarformat import EPOCH, REGULAR, encode_header
from cnbplatform.oci.layers.tarlayer import (
    MEDIA_TYPE_TAR_GZIP,
    Entry,
    LayerBlob,
    LayerSpec,
    TreeSource,
    hash_layer,
    scan_sources,
    write_layer,
    write_tar,
)

LONG_DIR = "d" * 90
LONG_NAME = "n" * 120  # needs the ustar prefix field
VERY_LONG = "v" * 200  # a single component over 100 bytes: needs pax


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "src"
    (root / "bin").mkdir(parents=True)
    (root / "lib" / "sub").mkdir(parents=True)
    (root / LONG_DIR / LONG_DIR).mkdir(parents=True)
    (root / "bin" / "tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "bin" / "tool", 0o4755)
    (root / "lib" / "a.txt").write_text("alpha\n")
    (root / "lib" / "sub" / "empty").write_bytes(b"")
    (root / "lib" / "big.bin").write_bytes(os.urandom(2 * FEED_CHUNK + 1234))
    (root / "lib" / "sub" / "héllo wörld.txt").write_text("unicode\n")
    (root / LONG_DIR / LONG_DIR / LONG_NAME).write_text("long\n")
    (root / VERY_LONG).write_text("very long\n")
    os.symlink("a.txt", root / "lib" / "link-rel")
    os.symlink("/etc/passwd", root / "lib" / "link-abs")
    os.link(root / "lib" / "a.txt", root / "lib" / "z-hard")
    os.mkfifo(root / "lib" / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.fspath(root / "lib" / "sock"))
    (root / "shared").mkdir()
    os.chmod(root / "shared", 0o1777)
    (root / "setgid").mkdir()
    os.chmod(root / "setgid", 0o2750)
    try:
        yield root
    finally:
        sock.close()


def _members(blob: LayerBlob) -> list[tarfile.TarInfo]:
    with tarfile.open(blob.path, "r:gz") as tar:
        return tar.getmembers()


def _spec(root: Path, **kwargs: object) -> LayerSpec:
    return LayerSpec(trees=(TreeSource(root, prefix="layers/example_node/deps"),), **kwargs)  # type: ignore[arg-type]


def test_same_tree_gives_same_bytes_everywhere(tree: Path, tmp_path: Path) -> None:
    first = write_layer(_spec(tree, uid=1000, gid=1000), tmp_path / "blobs1")
    second = write_layer(_spec(tree, uid=1000, gid=1000), tmp_path / "blobs2", workers=0)
    third = write_layer(_spec(tree, uid=1000, gid=1000), tmp_path / "blobs3", workers=5)
    assert first.digest == second.digest == third.digest
    assert first.diff_id == second.diff_id == third.diff_id
    assert first.path.read_bytes() == second.path.read_bytes() == third.path.read_bytes()
    assert first.media_type == MEDIA_TYPE_TAR_GZIP


def test_a_copy_elsewhere_gives_the_same_bytes(tree: Path, tmp_path: Path) -> None:
    """Other inodes, times, host path and scandir order: same layer (as on another machine)."""
    copy = tmp_path / "elsewhere" / "copy"
    copy.parent.mkdir()
    (tree / "lib" / "sock").unlink()
    subprocess.run(["cp", "-a", os.fspath(tree), os.fspath(copy)], check=True)
    assert os.stat(copy / "lib" / "a.txt").st_ino != os.stat(tree / "lib" / "a.txt").st_ino
    original = write_layer(_spec(tree), tmp_path / "blobs1")
    copied = write_layer(_spec(copy), tmp_path / "blobs2")
    assert copied.digest == original.digest


def test_same_digests_with_different_thread_pool_sizes(tree: Path, tmp_path: Path) -> None:
    specs = [LayerSpec(trees=(TreeSource(tree, prefix=f"layers/bp/l{i}"),)) for i in range(4)]

    def run(pool_size: int) -> list[str]:
        with ThreadPoolExecutor(pool_size) as pool:
            blobs = list(pool.map(lambda s: write_layer(s, tmp_path / f"pool{pool_size}"), specs))
        return [b.digest for b in blobs]

    assert run(1) == run(4)


def test_digest_and_diff_id_match_independent_hashes(tree: Path, tmp_path: Path) -> None:
    blob = write_layer(_spec(tree), tmp_path / "blobs")
    raw = blob.path.read_bytes()
    assert blob.digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert blob.size == len(raw)
    assert blob.path == tmp_path / "blobs" / hashlib.sha256(raw).hexdigest()
    tar = gzip.decompress(raw)
    assert blob.diff_id == "sha256:" + hashlib.sha256(tar).hexdigest()
    assert blob.uncompressed_size == len(tar)
    assert hash_layer(_spec(tree)) == (blob.diff_id, blob.uncompressed_size)
    out = io.BytesIO()
    assert write_tar(_spec(tree), out) == (blob.diff_id, blob.uncompressed_size)
    assert out.getvalue() == tar
    assert [p.name for p in (tmp_path / "blobs").iterdir()] == [blob.path.name]  # no temp file left


def test_isal_and_zlib_blobs_hold_the_same_tar(tree: Path, tmp_path: Path) -> None:
    with_isal = write_layer(_spec(tree), tmp_path / "isal", use_isal=True)
    with_zlib = write_layer(_spec(tree), tmp_path / "zlib", use_isal=False)
    assert gzip.decompress(with_isal.path.read_bytes()) == gzip.decompress(with_zlib.path.read_bytes())
    assert with_isal.diff_id == with_zlib.diff_id


def test_every_entry_is_normalised(tree: Path, tmp_path: Path) -> None:
    blob = write_layer(_spec(tree, uid=1000, gid=1001), tmp_path / "blobs")
    members = _members(blob)
    assert members
    for m in members:
        assert m.mtime == EPOCH == 315532801
        assert (m.uname, m.gname) == ("", "")
        assert (m.uid, m.gid) == (1000, 1001)
        assert not m.name.startswith("/")
        assert ".." not in m.name.split("/")


def test_order_prefix_dirs_links_and_skipped_entries(tree: Path, tmp_path: Path) -> None:
    spec = _spec(tree, uid=1000, gid=1000, parent_uid=0, parent_gid=0, parent_mode=0o750)
    members = {m.name: m for m in _members(write_layer(spec, tmp_path / "blobs"))}
    names = list(members)
    assert names == sorted(names, key=lambda n: n.encode().split(b"/"))
    assert names[:3] == ["layers", "layers/example_node", "layers/example_node/deps"]
    for parent in names[:2]:
        assert members[parent].isdir()
        assert (members[parent].uid, members[parent].gid, members[parent].mode) == (0, 0, 0o750)
    root = members["layers/example_node/deps"]
    assert (root.uid, root.mode) == (1000, os.stat(tree).st_mode & 0o7777)
    p = "layers/example_node/deps/"
    assert members[p + "bin/tool"].mode == 0o4755
    assert members[p + "shared"].mode == 0o1777
    assert members[p + "setgid"].mode == 0o2750
    assert members[p + "lib/link-rel"].issym() and members[p + "lib/link-rel"].linkname == "a.txt"
    assert members[p + "lib/link-abs"].linkname == "/etc/passwd"
    assert members[p + "lib/a.txt"].isfile()
    hard = members[p + "lib/z-hard"]
    assert hard.islnk() and hard.linkname == p + "lib/a.txt"
    assert p + "lib/fifo" not in members and p + "lib/sock" not in members
    assert members[p + f"{LONG_DIR}/{LONG_DIR}/{LONG_NAME}"].isfile()
    assert members[p + VERY_LONG].size == len("very long\n")
    assert members[p + "lib/sub/héllo wörld.txt"].isfile()
    assert members[p + "lib/big.bin"].size == 2 * FEED_CHUNK + 1234


def test_contents_round_trip(tree: Path, tmp_path: Path) -> None:
    blob = write_layer(LayerSpec(trees=(TreeSource(tree),)), tmp_path / "blobs")
    with tarfile.open(blob.path, "r:gz") as tar:
        for name in ("lib/big.bin", "bin/tool", "lib/sub/empty", VERY_LONG, f"{LONG_DIR}/{LONG_DIR}/{LONG_NAME}"):
            extracted = tar.extractfile(name)
            assert extracted is not None
            assert extracted.read() == (tree / name).read_bytes()
        assert "" not in tar.getnames() and "." not in tar.getnames()


def test_gnu_tar_lists_numeric_owners_and_1980_times(tree: Path, tmp_path: Path) -> None:
    blob = write_layer(_spec(tree, uid=1000, gid=1001), tmp_path / "blobs")
    listing = subprocess.run(
        ["tar", "-tvzf", os.fspath(blob.path)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "TZ": "UTC", "LC_ALL": "C.UTF-8"},
    ).stdout.splitlines()
    assert len(listing) == len(_members(blob))
    for line in listing:
        fields = line.split()
        assert fields[1] == "1000/1001", line
        assert fields[3] == "1980-01-01", line
        assert fields[4] == "00:00", line
    assert any(line.startswith("h") and "z-hard link to" in line for line in listing)
    full = subprocess.run(
        ["tar", "--full-time", "-tvzf", os.fspath(blob.path)], capture_output=True, text=True, check=True,
        env={**os.environ, "TZ": "UTC"},
    ).stdout  # fmt: skip
    assert "1980-01-01 00:00:01" in full


def test_explicit_entries_and_implied_parents(tmp_path: Path) -> None:
    host = tmp_path / "launcher"
    host.write_bytes(b'#!/bin/sh\nexec "$@"\n')
    os.chmod(host, 0o700)
    spec = LayerSpec(
        entries=(
            Entry.host_file("/cnb/lifecycle/launcher", host, mode=0o755, uid=0, gid=0),
            Entry.symlink("cnb/process/web", "/cnb/lifecycle/launcher", uid=0, gid=0),
            Entry.file("workspace/config.json", json.dumps({"a": 1}).encode(), mode=0o600),
            Entry.directory("workspace/empty", mode=0o700),
            Entry.hardlink("workspace/zz-copy", "workspace/config.json"),
            Entry.host_file("bin/raw-mode", host),
        ),
        uid=1000,
        gid=1000,
        parent_uid=0,
        parent_gid=0,
    )
    members = {m.name: m for m in _members(write_layer(spec, tmp_path / "blobs"))}
    assert list(members) == [
        "bin", "bin/raw-mode", "cnb", "cnb/lifecycle", "cnb/lifecycle/launcher", "cnb/process",
        "cnb/process/web", "workspace", "workspace/config.json", "workspace/empty", "workspace/zz-copy",
    ]  # fmt: skip
    assert members["cnb"].isdir() and (members["cnb"].uid, members["cnb"].mode) == (0, 0o755)
    assert (members["cnb/lifecycle/launcher"].mode, members["cnb/lifecycle/launcher"].uid) == (0o755, 0)
    assert members["bin/raw-mode"].mode == 0o700
    assert members["cnb/process/web"].linkname == "/cnb/lifecycle/launcher"
    assert (members["workspace/config.json"].uid, members["workspace/config.json"].mode) == (1000, 0o600)
    assert members["workspace/empty"].mode == 0o700
    assert members["workspace/zz-copy"].islnk() and members["workspace/zz-copy"].mode == 0o600


def test_explicit_entry_overrides_tree_entry(tree: Path, tmp_path: Path) -> None:
    spec = LayerSpec(trees=(TreeSource(tree),), entries=(Entry.file("lib/a.txt", b"replaced"),))
    with tarfile.open(write_layer(spec, tmp_path / "blobs").path, "r:gz") as tar:
        member = tar.extractfile("lib/a.txt")
        assert member is not None and member.read() == b"replaced"
        assert tar.getnames().count("lib/a.txt") == 1


@pytest.mark.parametrize(
    "entries",
    [
        (Entry.file("a/../../etc/passwd", b"x"),),
        (Entry.file("", b"x"),),
        (Entry.file("x", b"1"), Entry.file("/x", b"2")),
        (Entry.hardlink("a", "missing"),),
        (Entry.file("b", b"1"), Entry.hardlink("a", "b")),  # target sorts after the link
        (Entry("f", "file"),),
    ],
)
def test_invalid_entries_are_refused(entries: tuple[Entry, ...], tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        write_layer(LayerSpec(entries=entries), tmp_path / "blobs")


def test_prefix_with_dotdot_is_refused(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"\.\."):
        write_layer(LayerSpec(trees=(TreeSource(tree, prefix="layers/../etc"),)), tmp_path / "blobs")


def test_select_keeps_subtrees_and_parents(tree: Path, tmp_path: Path) -> None:
    spec = LayerSpec(trees=(TreeSource(tree, prefix="app", select=lambda rel, _: rel in ("lib/sub", "bin/tool")),))
    names = [m.name for m in _members(write_layer(spec, tmp_path / "blobs"))]
    assert names == [
        "app", "app/bin", "app/bin/tool", "app/lib", "app/lib/sub", "app/lib/sub/empty",
        "app/lib/sub/héllo wörld.txt",
    ]  # fmt: skip


def test_file_that_shrinks_while_archived_fails_cleanly(tree: Path, tmp_path: Path) -> None:
    spec = _spec(tree)
    scans = scan_sources(spec)
    (tree / "lib" / "big.bin").write_bytes(b"short")
    with pytest.raises(CnbError, match="shrank"):
        write_layer(spec, tmp_path / "blobs", scans=scans)
    assert list((tmp_path / "blobs").iterdir()) == []


def test_file_that_vanishes_fails_cleanly(tree: Path, tmp_path: Path) -> None:
    spec = _spec(tree)
    scans = scan_sources(spec)
    (tree / "lib" / "a.txt").unlink()
    with pytest.raises(CnbError, match=r"a\.txt"):
        write_layer(spec, tmp_path / "blobs", scans=scans)
    assert list((tmp_path / "blobs").iterdir()) == []


def test_headers_for_huge_values_use_pax() -> None:
    header = encode_header(b"file", mode=0o644, uid=3_000_000, gid=5, size=2**33, typeflag=REGULAR)
    assert len(header) == 3 * 512
    pax = tarfile.TarInfo.frombuf(header[:512], "utf-8", "surrogateescape")
    assert pax.type == tarfile.XHDTYPE
    records = header[512 : 512 + pax.size]
    assert b" size=8589934592\n" in records and b" uid=3000000\n" in records
    main = tarfile.TarInfo.frombuf(header[1024:], "utf-8", "surrogateescape")
    assert (main.name, main.gid, main.mtime) == ("file", 5, EPOCH)


def test_long_names_fit_ustar_without_pax() -> None:
    name = ("d" * 90 + "/" + "e" * 90 + "/f").encode()
    header = encode_header(name, mode=0o644, uid=0, gid=0, size=0, typeflag=REGULAR)
    assert len(header) == 512
    info = tarfile.TarInfo.frombuf(header, "utf-8", "surrogateescape")
    assert info.name == name.decode()


@pytest.mark.integration
def test_umoci_unpacks_the_layer(tree: Path, tmp_path: Path) -> None:
    """An independent reader (umoci, Go's archive/tar) accepts the layer and sees what we wrote."""
    blobs = tmp_path / "layout" / "blobs" / "sha256"
    blob = write_layer(LayerSpec(trees=(TreeSource(tree, prefix="layers/bp/deps"),), uid=1000, gid=1000), blobs)

    def put(document: dict[str, object]) -> tuple[str, int]:
        data = json.dumps(document).encode()
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return "sha256:" + digest, len(data)

    config_digest, config_size = put({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [blob.diff_id]},
    })  # fmt: skip
    manifest_digest, manifest_size = put({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest,
                   "size": config_size},
        "layers": [{"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size}],
    })  # fmt: skip
    (tmp_path / "layout" / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (tmp_path / "layout" / "index.json").write_text(json.dumps({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
                       "size": manifest_size, "annotations": {"org.opencontainers.image.ref.name": "t"}}],
    }))  # fmt: skip
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'layout'}:t", os.fspath(bundle)], check=True,
                   capture_output=True)  # fmt: skip
    deps = bundle / "rootfs" / "layers" / "bp" / "deps"
    assert (deps / "lib" / "big.bin").read_bytes() == (tree / "lib" / "big.bin").read_bytes()
    assert os.readlink(deps / "lib" / "link-rel") == "a.txt"
    assert os.stat(deps / "lib" / "a.txt").st_ino == os.stat(deps / "lib" / "z-hard").st_ino
    assert os.stat(deps / "bin" / "tool").st_mode & 0o7777 == 0o4755
    assert os.stat(deps / "lib" / "a.txt").st_uid == 1000
    assert (deps / VERY_LONG).read_text() == "very long\n"
    assert (deps / LONG_DIR / LONG_DIR / LONG_NAME).read_text() == "long\n"
    assert not (deps / "lib" / "fifo").exists()
    shutil.rmtree(bundle)
