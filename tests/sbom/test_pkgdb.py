"""OS package databases, os-release and Debian copyright files, parsed from the golden files in ``sbom/golden/os``."""

from __future__ import annotations

import json

import pytest

from cnbplatform.sbom.licenses import copyright_licenses, debian_license, is_spdx_expression, spdx_id
from cnbplatform.sbom.pkgdb import deb822_stanzas, parse_apk_installed, parse_dpkg_status, parse_os_release
from tests.conftest import REPO

GOLDEN = REPO / "sbom" / "golden"
OS = GOLDEN / "os"
EXPECTED = json.loads((GOLDEN / "expected.json").read_text())


def test_dpkg_status_lists_installed_packages_only() -> None:
    packages = parse_dpkg_status((OS / "dpkg-status").read_text(), "/var/lib/dpkg/status")
    names = [p.name for p in packages]
    assert names == ["base-files", "libc6", "tzdata", "zlib1g"]  # old-removed is "deinstall ok config-files"
    libc = packages[1]
    assert (libc.version, libc.arch, libc.source, libc.source_version) == ("2.36-9+deb12u4", "amd64", "glibc", "")
    assert libc.description == "GNU C Library: Shared libraries"
    assert libc.homepage == "https://www.gnu.org/software/libc/libc.html"
    assert libc.database == "/var/lib/dpkg/status"
    zlib = packages[3]
    assert (zlib.version, zlib.source, zlib.source_version) == ("1:1.2.13.dfsg-1", "zlib", "1:1.2.13.dfsg-1")
    assert packages[2].arch == "all"


def test_status_d_entries_have_no_status_field_and_count_as_installed() -> None:
    [ssl] = parse_dpkg_status((OS / "status.d-libssl3").read_text(), "/var/lib/dpkg/status.d/libssl3")
    assert (ssl.name, ssl.version, ssl.source) == ("libssl3", "3.0.13-1~deb12u1", "openssl")


def test_deb822_continuation_lines_and_missing_trailing_blank_line() -> None:
    stanzas = deb822_stanzas("A: 1\nB: first\n second\n\n\nA: 2")
    assert stanzas == [{"A": "1", "B": "first\nsecond"}, {"A": "2"}]


def test_apk_installed_database() -> None:
    packages = parse_apk_installed((OS / "apk-installed").read_text(), "/lib/apk/db/installed")
    got = [{"name": p.name, "version": p.version, "arch": p.arch, "licenses": list(p.licenses)} for p in packages]
    assert sorted(got, key=lambda p: str(p["name"])) == EXPECTED["apk"]["packages"]
    by_name = {p.name: p for p in packages}
    assert by_name["ca-certificates-bundle"].source == "ca-certificates"
    assert by_name["musl"].source == ""  # origin equals the name
    assert by_name["musl"].maintainer.startswith("Timo")


@pytest.mark.parametrize(
    ("name", "distro_id", "version", "qualifier"),
    [("os-release-debian", "debian", "12", "debian-12"), ("os-release-alpine", "alpine", "3.19.1", "alpine-3.19.1")],
)
def test_os_release(name: str, distro_id: str, version: str, qualifier: str) -> None:
    distro = parse_os_release((OS / name).read_text())
    assert distro is not None
    assert (distro.id, distro.version_id, distro.qualifier) == (distro_id, version, qualifier)
    assert parse_os_release('NAME="no id"\n') is None


def test_os_release_codename_when_there_is_no_version_id() -> None:
    distro = parse_os_release("ID=debian\nVERSION_CODENAME=trixie\n")
    assert distro is not None and distro.qualifier == "debian-trixie"


def test_copyright_licenses_dep5_and_free_form() -> None:
    by_name = {p["name"]: p for p in EXPECTED["dpkg"]["packages"]}
    assert list(copyright_licenses((OS / "copyright-libc6").read_text())) == by_name["libc6"]["licenses"]
    assert list(copyright_licenses((OS / "copyright-zlib1g").read_text())) == by_name["zlib1g"]["licenses"]
    assert copyright_licenses("no license information at all") == ()


@pytest.mark.parametrize(
    ("debian", "spdx"),
    [
        ("GPL-2+", "GPL-2.0-or-later"),
        ("GPL-2", "GPL-2.0-only"),
        ("LGPL-2.1+", "LGPL-2.1-or-later"),
        ("GFDL-1.3", "GFDL-1.3-only"),
        ("Expat", "MIT"),
        ("BSD-3-clause", "BSD-3-Clause"),
        ("public-domain", "public-domain"),
    ],
)
def test_debian_short_names_become_spdx_ids(debian: str, spdx: str) -> None:
    assert debian_license(debian) == spdx


def test_spdx_helpers() -> None:
    assert spdx_id("mit") == "MIT"
    assert spdx_id("public-domain") is None
    assert is_spdx_expression("MIT OR Apache-2.0")
    assert not is_spdx_expression("GPL-2+")
