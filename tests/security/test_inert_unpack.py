"""Issue 9 item 3: image layers are untrusted, so the trees cnb unpacks from them are inert on the host.

No setuid or setgid bit survives, no device node or fifo is made (as root too), and a layer that expands past
the per-layer byte or entry limit (``[unpack]`` in ``$CNB_HOME/config.toml``; defaults 32 GiB and 2 million
entries) is refused with one line, leaving no partial tree behind: a small gzip bomb cannot fill the disk.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import tarfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

import pytest

from cnbplatform.errors import UnsafeArchiveError
from cnbplatform.files.common import SpecFileError
from cnbplatform.oci.rootfs.cache import RootfsCache
from cnbplatform.oci.rootfs.unpack import UnpackLimits, unpack_tar
from cnbplatform.platform.config import CnbConfig, load_config, save_config
from cnbplatform.platform.context import context_from_env
from tests.conftest import Cnb
from tests.support.images import OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, PATH_ENV, busybox_entries, write_layer

MiB = 1024 * 1024
GiB = 1024 * MiB
FIND_UNSAFE = ["-perm", "/6000", "-o", "-type", "b", "-o", "-type", "c", "-o", "-type", "p"]


# -- building images with hostile layers ------------------------------------------------------------------


def _info(name: str, kind: bytes, mode: int, **kw: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 315532801
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _gzip_layer(layout: Path, plain: Iterator[bytes]) -> tuple[dict[str, object], str]:
    """A gzip layer blob streamed from *plain* (tar bytes), never holding the expanded tar in memory."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)
    diff = hashlib.sha256()
    parts: list[bytes] = []
    for chunk in plain:
        diff.update(chunk)
        parts.append(packer.compress(chunk))
    parts.append(packer.flush())
    return {"mediaType": OCI_LAYER_GZIP, **_blob(layout, b"".join(parts))}, f"sha256:{diff.hexdigest()}"


def _tar_bytes(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _zero_file_tar(name: str, size: int) -> Iterator[bytes]:
    """A tar holding one file of *size* zero bytes, as a stream of chunks."""
    info = _info(name, tarfile.REGTYPE, 0o644, size=size)
    yield info.tobuf(format=tarfile.PAX_FORMAT)
    zeros = bytes(MiB)
    left = size
    while left:
        n = min(left, MiB)
        yield zeros[:n]
        left -= n
    yield bytes(-size % 512) + bytes(1024)


def _busybox_with(layout: Path, tag: str, top: tuple[dict[str, object], str]) -> None:
    """An OCI layout image: the busybox layer, then *top* (descriptor, diffID), tagged *tag*."""
    base = write_layer(layout, busybox_entries())
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [PATH_ENV], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [base[1], top[1]]},
    }
    config_desc = {"mediaType": OCI_CONFIG, **_blob(layout, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_desc, "layers": [base[0], top[0]]}
    manifest_desc = {"mediaType": OCI_MANIFEST, **_blob(layout, json.dumps(manifest).encode())}
    index = {
        "schemaVersion": 2,
        "manifests": [{**manifest_desc, "annotations": {"org.opencontainers.image.ref.name": tag}}],
    }
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    (layout / "index.json").write_text(json.dumps(index))


def _find_unsafe(root: Path) -> str:
    done = subprocess.run(["find", str(root), *FIND_UNSAFE], capture_output=True, text=True, check=True, timeout=60)
    return done.stdout


def _trees(rootfs: Path) -> list[str]:
    """What the rootfs cache holds besides its lock files: unpacked trees and temporary (partial) ones."""
    return sorted(p.name for p in rootfs.iterdir() if not p.name.startswith(".lock")) if rootfs.exists() else []


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- cnb run ---------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_cnb_run_unpacks_no_setid_bits_devices_or_fifos(tmp_path: Path, cnb: Cnb) -> None:
    assert os.geteuid() == 0, "the point is what root would create"
    layout = tmp_path / "layout"
    hostile = _tar_bytes(
        (_info("usr", tarfile.DIRTYPE, 0o755), b""),
        (_info("usr/bin", tarfile.DIRTYPE, 0o755), b""),
        (_info("usr/bin/su-evil", tarfile.REGTYPE, 0o4755, size=4, uid=0, gid=0), b"#!x\n"),
        (_info("usr/bin/sg-evil", tarfile.REGTYPE, 0o2711, size=4, uid=0, gid=42), b"#!y\n"),
        (_info("var", tarfile.DIRTYPE, 0o755), b""),
        (_info("var/mail", tarfile.DIRTYPE, 0o2775, gid=8), b""),
        (_info("dev", tarfile.DIRTYPE, 0o755), b""),
        (_info("dev/sda-evil", tarfile.BLKTYPE, 0o660, devmajor=8, devminor=0), b""),
        (_info("dev/mem-evil", tarfile.CHRTYPE, 0o666, devmajor=1, devminor=1), b""),
        (_info("tmp/fifo-evil", tarfile.FIFOTYPE, 0o666), b""),
    )
    _busybox_with(layout, "hostile", _gzip_layer(layout, iter([hostile])))

    done = cnb("run", f"oci:{layout}:hostile", "--", "sh", "-c", "echo ran; ls /dev/sda-evil 2>&1 || true")
    assert done.stdout.splitlines()[0] == "ran"
    rootfs = cnb.home / "rootfs"
    (tree,) = _trees(rootfs)
    assert _find_unsafe(rootfs) == ""
    root = rootfs / tree
    # the files are there, without their set-id bits; the sticky /tmp of the base layer keeps its bit
    assert stat.S_IMODE((root / "usr/bin/su-evil").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "usr/bin/sg-evil").stat().st_mode) == 0o711
    assert stat.S_IMODE((root / "var/mail").stat().st_mode) == 0o775
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    for name in ("dev/sda-evil", "dev/mem-evil", "tmp/fifo-evil"):
        assert not os.path.lexists(root / name), name


@pytest.mark.integration
def test_cnb_run_refuses_a_gzip_bomb_and_removes_the_partial_tree(tmp_path: Path, cnb: Cnb) -> None:
    layout = tmp_path / "layout"
    bomb = _gzip_layer(layout, _zero_file_tar("zeros", 64 * MiB))
    _busybox_with(layout, "bomb", bomb)
    assert os.path.getsize(layout / "blobs" / "sha256" / str(bomb[0]["digest"]).split(":")[1]) < MiB // 2
    cnb.home.mkdir(parents=True)
    (cnb.home / "config.toml").write_text("[unpack]\nmax-layer-bytes = 8388608\n")

    done = cnb("run", f"oci:{layout}:bomb", "--", "true", check=False)
    assert done.returncode == 1, done.stderr
    line = _one_error_line(done.stderr)
    assert f"layer {bomb[0]['digest']}" in line
    assert "'zeros'" in line and "expands past 8388608 bytes" in line and "max-layer-bytes" in line
    assert _trees(cnb.home / "rootfs") == []  # neither a final tree nor a partial one

    # the same image under a limit it fits in unpacks (so the refusal was the limit, not the image)
    (cnb.home / "config.toml").write_text("[unpack]\nmax-layer-bytes = 134217728\n")
    done = cnb("run", f"oci:{layout}:bomb", "--", "sh", "-c", "wc -c < /zeros")
    assert done.stdout.strip() == str(64 * MiB)


@pytest.mark.integration
def test_cnb_run_refuses_a_layer_with_too_many_entries(tmp_path: Path, cnb: Cnb) -> None:
    layout = tmp_path / "layout"
    many = _tar_bytes(*[(_info(f"f{i:04}", tarfile.REGTYPE, 0o644), b"") for i in range(300)])
    layer = _gzip_layer(layout, iter([many]))
    _busybox_with(layout, "many", layer)
    cnb.home.mkdir(parents=True)
    (cnb.home / "config.toml").write_text("[unpack]\nmax-layer-entries = 200\n")

    done = cnb("run", f"oci:{layout}:many", "--", "true", check=False)
    assert done.returncode == 1, done.stderr
    line = _one_error_line(done.stderr)
    assert f"layer {layer[0]['digest']}" in line and "'f0200'" in line
    assert "more than 200 entries" in line and "max-layer-entries" in line
    assert _trees(cnb.home / "rootfs") == []


# -- the limits and where they come from -----------------------------------------------------------------------


def test_default_limits_are_32_gib_and_2_million_entries(tmp_path: Path) -> None:
    assert UnpackLimits() == UnpackLimits(max_layer_bytes=34_359_738_368, max_layer_entries=2_000_000)
    assert 32 * GiB == 34_359_738_368
    assert load_config(tmp_path).unpack_limits == UnpackLimits()  # no config.toml
    assert context_from_env({"CNB_HOME": str(tmp_path)}).unpack_limits is None  # None: the defaults


def test_default_byte_limit_applies_when_none_is_given(tmp_path: Path) -> None:
    """A header that declares one byte more than 32 GiB is refused before any data is read or written."""
    for size, refused in ((32 * GiB + 1, True), (32 * GiB - 4096, False)):
        header = _info("huge", tarfile.REGTYPE, 0o644, size=size).tobuf(format=tarfile.PAX_FORMAT)
        root = tmp_path / f"root-{size}"
        with pytest.raises(UnsafeArchiveError) as err:
            unpack_tar(io.BytesIO(header + bytes(4096)), root, what="layer sha256:big")
        if refused:
            assert "expands past 34359738368 bytes" in str(err.value)
            assert not (root / "huge").exists()
        else:
            assert "unreadable tar stream" in str(err.value)  # it began to copy, and the data ran out


def test_config_toml_sets_the_limits_and_keeps_them_when_saved(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text("[unpack]\nmax-layer-bytes = 1000\nmax-layer-entries = 7\n")
    assert load_config(tmp_path).unpack_limits == UnpackLimits(1000, 7)
    assert context_from_env({"CNB_HOME": str(tmp_path)}).unpack_limits == UnpackLimits(1000, 7)
    config = load_config(tmp_path)
    config.default_builder = "b"
    save_config(tmp_path, config)  # as `cnb config default-builder b` does
    assert load_config(tmp_path).unpack_limits == UnpackLimits(1000, 7)
    save_config(tmp_path, CnbConfig())
    assert "unpack" not in (tmp_path / "config.toml").read_text()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("max-layer-bytes = 0", "expected a positive integer, got 0"),
        ("max-layer-entries = -5", "expected a positive integer, got -5"),
        ('max-layer-bytes = "32GiB"', "expected an integer, got string"),
        ("max-layer-size = 5", "unknown key"),
    ],
)
def test_bad_limits_in_config_toml_are_one_line_errors(tmp_path: Path, text: str, problem: str) -> None:
    (tmp_path / "config.toml").write_text(f"[unpack]\n{text}\n")
    with pytest.raises(SpecFileError) as err:
        load_config(tmp_path)
    message = str(err.value)
    assert "config.toml" in message and "unpack." in message and problem in message and "\n" not in message


def test_the_byte_limit_also_counts_headers_and_trailing_data(tmp_path: Path) -> None:
    """Not only file contents: a long pax header, or junk after the end of the archive, counts too."""
    pax = tarfile.TarInfo("x")
    pax.pax_headers = {"comment": "z" * (2 * MiB)}
    with pytest.raises(UnsafeArchiveError, match="expands past 1048576 bytes"):
        unpack_tar(io.BytesIO(pax.tobuf(format=tarfile.PAX_FORMAT)), tmp_path / "a", what="l", limits=UnpackLimits(MiB))
    trailing = _tar_bytes((_info("small", tarfile.REGTYPE, 0o644, size=3), b"abc")) + bytes(4 * MiB)
    with pytest.raises(UnsafeArchiveError, match="expands past 1048576 bytes"):
        unpack_tar(io.BytesIO(trailing), tmp_path / "b", what="l", limits=UnpackLimits(MiB))


class _Endless(io.RawIOBase):
    """*head*, then zero bytes for ever (never held in memory), counting what was read."""

    def __init__(self, head: bytes) -> None:
        super().__init__()
        self.head, self.read_bytes = head, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = len(view)
        part = self.head[:n]
        self.head = self.head[len(part) :]
        view[: len(part)] = part
        view[len(part) : n] = bytes(n - len(part))
        self.read_bytes += n
        return n


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME])
def test_a_huge_pax_or_long_name_record_is_refused_before_it_fills_memory(tmp_path: Path, kind: bytes) -> None:
    """tarfile holds such a record in memory while parsing it: one claiming 7 GiB stops at 16 MiB, default limits."""
    info = tarfile.TarInfo("././@PaxHeader" if kind == tarfile.XHDTYPE else "././@LongLink")
    info.type, info.size = kind, 7 * GiB
    stream = _Endless(info.tobuf(format=tarfile.USTAR_FORMAT))
    with pytest.raises(UnsafeArchiveError, match=r"refusing a tar header .* larger than 16777216 bytes"):
        unpack_tar(io.BufferedReader(stream), tmp_path / "root", what="layer sha256:hdr")
    assert stream.read_bytes < 32 * MiB


def test_a_layer_that_does_not_decompress_is_one_error(tmp_path: Path) -> None:
    from cnbplatform.oci.layers.compress import open_uncompressed

    blob = bytearray(gzip.compress(_tar_bytes((_info("a", tarfile.REGTYPE, 0o644, size=65536), os.urandom(65536)))))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(UnsafeArchiveError, match=r"^unpacking layer sha256:bad: cannot read the layer data: "):
        unpack_tar(open_uncompressed(io.BytesIO(bytes(blob)), None), tmp_path / "root", what="layer sha256:bad")


def test_rootfs_cache_removes_the_partial_tree_of_a_refused_layer(tmp_path: Path) -> None:
    ok = _tar_bytes((_info("kept-until-refused", tarfile.REGTYPE, 0o644, size=2), b"ok"))
    bomb = gzip.decompress(gzip.compress(b"".join(_zero_file_tar("zeros", 8 * MiB))))
    layers = [("layer sha256:ok", _opener(ok)), ("layer sha256:bomb", _opener(bomb))]
    cache = RootfsCache(tmp_path / "rootfs", UnpackLimits(max_layer_bytes=4 * MiB))
    with pytest.raises(UnsafeArchiveError, match=r"layer sha256:bomb: refusing entry 'zeros': the layer expands past"):
        cache.get("a" * 64, layers)
    assert _trees(tmp_path / "rootfs") == []


def _opener(data: bytes) -> Callable[[], AbstractContextManager[BinaryIO]]:
    @contextlib.contextmanager
    def open_() -> Iterator[BinaryIO]:
        yield io.BytesIO(data)

    return open_
