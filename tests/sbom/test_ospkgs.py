"""OS packages read straight from image layers, with the OCI whiteout rules (images built with the standard library
by tests/support/images.py, independently of cnb's own layer writer)."""

from __future__ import annotations

import json
from pathlib import Path

from cnbplatform.oci.image import Image, as_image
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.sbom.ospkgs import scan_os_packages
from tests.conftest import REPO
from tests.support.images import Entry, tag_in_layout, write_image

OS = REPO / "sbom" / "golden" / "os"
EXPECTED = json.loads((REPO / "sbom" / "golden" / "expected.json").read_text())


def f(path: str, data: bytes | str) -> Entry:
    return Entry(path, "file", 0o644, data.encode() if isinstance(data, str) else data)


def d(path: str) -> Entry:
    return Entry(path, "dir")


def link(path: str, target: str) -> Entry:
    return Entry(path, "symlink", 0o777, target=target)


DIRS = [d("etc"), d("usr"), d("usr/lib"), d("usr/share"), d("usr/share/doc"), d("var"), d("var/lib"), d("var/lib/dpkg")]
OLD_STATUS = "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n"


def image(layout: Path, layers: list[list[Entry]], tag: str = "t") -> Image:
    desc = write_image(layout, layers, arch="amd64")
    tag_in_layout(layout, desc, tag)
    return as_image(LayoutStore(layout).read(tag))


def debian_layers() -> list[list[Entry]]:
    base = [
        *DIRS,
        f("etc/os-release", "ID=busybox\nVERSION_ID=1.36\n"),
        f("var/lib/dpkg/status", OLD_STATUS),
        d("var/lib/dpkg/status.d"),
        f("var/lib/dpkg/status.d/libssl3", (OS / "status.d-libssl3").read_bytes()),
        f("var/lib/dpkg/status.d/libssl3.md5sums", "0123  /usr/lib/libssl.so.3\n"),
        f("var/lib/dpkg/status.d/extra", "Package: extra\nVersion: 1\nArchitecture: amd64\n"),
        d("usr/share/doc/libc6"),
        f("usr/share/doc/libc6/copyright", (OS / "copyright-libc6").read_bytes()),
    ]
    update = [
        *DIRS,
        link("etc/os-release", "../usr/lib/os-release"),
        f("usr/lib/os-release", (OS / "os-release-debian").read_bytes()),
        f("var/lib/dpkg/status", (OS / "dpkg-status").read_bytes()),
        d("var/lib/dpkg/status.d"),
        f("var/lib/dpkg/status.d/.wh.extra", ""),
        d("usr/share/doc/zlib1g"),
        f("usr/share/doc/zlib1g/copyright", (OS / "copyright-zlib1g").read_bytes()),
        link("usr/share/doc/libssl3", "zlib1g"),
    ]
    return [base, update]


def test_later_layers_win_and_whiteouts_hide_entries(tmp_path: Path) -> None:
    inventory = scan_os_packages(image(tmp_path, debian_layers()))
    assert inventory.distro is not None and inventory.distro.qualifier == "debian-12"  # through the symlink
    got = {p.name: p for p in inventory.packages}
    expected = {p["name"]: p for p in EXPECTED["dpkg"]["packages"]}
    assert set(got) == set(expected)  # "extra" is whited out, the status file is the newer one
    for name, want in expected.items():
        assert (got[name].version, got[name].arch, got[name].source) == (want["version"], want["arch"], want["source"])
        assert list(got[name].licenses) == want.get(
            "licenses", [] if name != "libssl3" else expected["zlib1g"]["licenses"]
        )
    assert got["libssl3"].database == "/var/lib/dpkg/status.d/libssl3"
    assert inventory.databases == ("/var/lib/dpkg/status", "/var/lib/dpkg/status.d/libssl3")


def test_opaque_directory_and_replacing_file_hide_lower_entries(tmp_path: Path) -> None:
    layers = debian_layers()
    opaque = [*DIRS, d("var/lib/dpkg/status.d"), f("var/lib/dpkg/status.d/.wh..wh..opq", "")]
    inventory = scan_os_packages(image(tmp_path / "opaque", [*layers, opaque]))
    assert "libssl3" not in {p.name for p in inventory.packages}
    assert "libc6" in {p.name for p in inventory.packages}  # the opaque marker hides only status.d's children

    replaced = [*DIRS, f("var/lib/dpkg", "not a directory any more")]
    inventory = scan_os_packages(image(tmp_path / "replaced", [*layers, replaced]))
    assert inventory.packages == ()
    assert inventory.databases == ()

    deleted = [d("etc"), f("etc/.wh.os-release", ""), d("usr"), d("usr/lib"), f("usr/lib/.wh.os-release", "")]
    inventory = scan_os_packages(image(tmp_path / "no-os", [*layers, deleted]))
    assert inventory.distro is None
    assert {p.name for p in inventory.packages} >= {"libc6", "zlib1g"}


def test_apk_database(tmp_path: Path) -> None:
    layers = [
        [d("etc"), f("etc/os-release", (OS / "os-release-alpine").read_bytes())],
        [d("lib"), d("lib/apk"), d("lib/apk/db"), f("lib/apk/db/installed", (OS / "apk-installed").read_bytes())],
    ]
    inventory = scan_os_packages(image(tmp_path, layers))
    assert inventory.distro is not None and inventory.distro.qualifier == "alpine-3.19.1"
    assert [p.name for p in inventory.packages] == [p["name"] for p in EXPECTED["apk"]["packages"]]
    assert {p.manager for p in inventory.packages} == {"apk"}


def test_skipped_layers_are_never_opened(tmp_path: Path) -> None:
    img = image(tmp_path, [*debian_layers(), [d("layers"), f("layers/app.txt", "app")]])
    top = img.layers()[-1]
    (tmp_path / "blobs" / "sha256" / top.descriptor.digest.split(":")[1]).unlink()
    inventory = scan_os_packages(img, {top.diff_id})
    assert "libc6" in {p.name for p in inventory.packages}
