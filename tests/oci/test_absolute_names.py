"""Absolute tar member names and hard-link targets are rooted (``/cnb/x`` is ``cnb/x``) by every reader, as pack
writes them and Docker, containerd and umoci read them; ``..`` escapes stay refused (issue 10 item 1).

The unpacker itself is covered in ``test_unpack.py``; here: buildpack archives and ``.cnb`` files (the builder
and buildpackage readers) and the layer-entry reader under the SBOM and OS-package readers.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from cnbplatform.builder.package_read import extract_tar
from cnbplatform.errors import UnsafeArchiveError
from cnbplatform.oci.image import FileLayer
from cnbplatform.oci.model import Descriptor
from cnbplatform.sbom.layers import layer_entries
from tests.conftest import REPO, Cnb


def _member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, 0o755, len(data) if kind == tarfile.REGTYPE else 0
    for key, value in kw.items():
        setattr(info, key, value)
    return info, data


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


PACK_STYLE = _tar(
    _member("/cnb", tarfile.DIRTYPE),
    _member("/cnb/buildpacks/example_bp/1.0.0/buildpack.toml", data=b'api = "0.10"\n'),
    _member("/cnb/buildpacks/example_bp/1.0.0/bin/build", data=b"#!/bin/sh\n"),
    _member(
        "/cnb/buildpacks/example_bp/1.0.0/bin/detect",
        tarfile.LNKTYPE,
        linkname="/cnb/buildpacks/example_bp/1.0.0/bin/build",
    ),
    _member("/dev/console", tarfile.CHRTYPE, devmajor=5, devminor=1),
    _member("/workspace", tarfile.DIRTYPE),
)


def test_a_gzipped_buildpack_archive_with_absolute_names_is_rooted(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    extract_tar(io.BytesIO(gzip.compress(PACK_STYLE)), dest, what="buildpack archive bp.tgz")
    bp = dest / "cnb" / "buildpacks" / "example_bp" / "1.0.0"
    assert (bp / "buildpack.toml").read_bytes() == b'api = "0.10"\n'
    assert os.path.samefile(bp / "bin" / "detect", bp / "bin" / "build")
    assert (dest / "workspace").is_dir()
    assert not os.path.lexists(dest / "dev" / "console")
    assert sorted(os.listdir(tmp_path)) == ["dest"]  # nothing written beside it (no temporary copy either)


@pytest.mark.parametrize(
    "members",
    [
        [_member("/../escape", data=b"x")],
        [_member("/cnb/../../escape", data=b"x")],
        [_member("/cnb/x", data=b"x"), _member("/cnb/y", tarfile.LNKTYPE, linkname="/../../etc/passwd")],
    ],
    ids=["dotdot-at-root", "dotdot-below", "hard-link-out"],
)
def test_escapes_stay_refused(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(UnsafeArchiveError, match="escapes the root"):
        extract_tar(io.BytesIO(_tar(*members)), dest, what="buildpack archive bp.tar")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "deep" / "escape").exists()


def _file_layer(tmp_path: Path, plain: bytes) -> FileLayer:
    blob = gzip.compress(plain)
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
    path = tmp_path / "layer.tar.gz"
    path.write_bytes(blob)
    descriptor = Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest, len(blob))
    return FileLayer(descriptor, f"sha256:{hashlib.sha256(plain).hexdigest()}", path)


def test_layer_entries_under_the_sbom_and_package_readers_are_rooted(tmp_path: Path) -> None:
    layer = _file_layer(
        tmp_path,
        _tar(
            _member("/var/lib/dpkg/status", data=b"Package: x\n"),
            _member("/layers/sbom/launch/bp/sbom.cdx.json", data=b"{}"),
            _member("/usr/lib/os-release", data=b"ID=debian\n"),
            _member("/etc/os-release", tarfile.LNKTYPE, linkname="/usr/lib/os-release"),
            _member("/../outside", data=b"no"),
        ),
    )
    entries = list(layer_entries(layer, lambda path: path.startswith(("var/", "layers/")), what="layer 1"))
    by_path = {e.path: e for e in entries}
    assert by_path["var/lib/dpkg/status"].data == b"Package: x\n"
    assert by_path["layers/sbom/launch/bp/sbom.cdx.json"].data == b"{}"
    assert by_path["etc/os-release"].kind == "hardlink" and by_path["etc/os-release"].link == "usr/lib/os-release"
    assert not any("outside" in path for path in by_path)  # an escaping name is never handed on


# -- cnb build with a builder whose layers have pack's absolute names ---------------------------------------------


def _rooted_copy(plain: bytes) -> bytes:
    """The same layer tar with every member name and hard-link target made absolute, as pack writes them."""
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(plain), mode="r:") as src,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as dst,
    ):
        for member in src.getmembers():
            data = src.extractfile(member) if member.isreg() else None
            member.name = "/" + member.name.lstrip("./").lstrip("/") if member.name not in (".", "./") else "/"
            if member.islnk():
                member.linkname = "/" + member.linkname.lstrip("./").lstrip("/")
            dst.addfile(member, data)
    return out.getvalue()


def _absolutise(layout: Path, tag: str) -> int:
    """Rewrite the image *tag* of *layout* in place with absolute member names; returns how many names changed."""
    blobs = layout / "blobs" / "sha256"

    def put(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return f"sha256:{digest}"

    index = json.loads((layout / "index.json").read_text())
    (entry,) = [m for m in index["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == tag]
    manifest = json.loads((blobs / entry["digest"].split(":")[1]).read_bytes())
    config_text = (blobs / manifest["config"]["digest"].split(":")[1]).read_text()
    changed = 0
    for layer in manifest["layers"]:
        packed = (blobs / layer["digest"].split(":")[1]).read_bytes()
        plain = gzip.decompress(packed) if packed[:2] == b"\x1f\x8b" else packed
        rooted = _rooted_copy(plain)
        with tarfile.open(fileobj=io.BytesIO(rooted)) as check:
            changed += sum(1 for m in check.getmembers() if m.name.startswith("/"))
        old_diff, new_diff = (
            f"sha256:{hashlib.sha256(plain).hexdigest()}",
            f"sha256:{hashlib.sha256(rooted).hexdigest()}",
        )
        config_text = config_text.replace(old_diff, new_diff)  # rootfs.diff_ids and the buildpack layer labels
        compressed = gzip.compress(rooted, mtime=0)
        layer.update(
            mediaType="application/vnd.oci.image.layer.v1.tar+gzip", digest=put(compressed), size=len(compressed)
        )
    config = config_text.encode()
    manifest["config"].update(digest=put(config), size=len(config))
    raw = json.dumps(manifest).encode()
    entry.update(digest=put(raw), size=len(raw))
    (layout / "index.json").write_text(json.dumps(index))
    return changed


@pytest.mark.integration
def test_cnb_build_and_run_with_a_builder_whose_layers_have_absolute_names(tmp_path: Path, cnb: Cnb) -> None:
    tiny = REPO / "builders" / "tiny"
    cnb(
        "-q",
        "base",
        "create",
        "--config",
        str(tiny / "base.toml"),
        "--build-image",
        "cnb/tiny-build",
        "--run-image",
        "cnb/tiny-run",
    )
    layout = tmp_path / "builders"
    cnb("-q", "builder", "create", f"oci:{layout}:tiny", "--config", str(tiny / "builder.toml"))
    assert _absolutise(layout, "tiny") > 50  # busybox, /cnb/buildpacks/..., /cnb/order.toml, /workspace

    built = cnb("build", "abs-app", "--builder", f"oci:{layout}:tiny", "--path", str(REPO / "examples" / "shell"))
    assert "Successfully built abs-app" in built.stdout
    ran = cnb("run", "abs-app")
    assert "Hello from a cnb-built image!" in ran.stdout
