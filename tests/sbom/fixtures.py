"""A merged inventory made from the golden documents (no image needed)."""

from __future__ import annotations

import json
from dataclasses import replace

from cnbplatform.sbom.collect import SbomFile
from cnbplatform.sbom.inventory import assemble
from cnbplatform.sbom.licenses import copyright_licenses
from cnbplatform.sbom.model import BuildpackInfo, Inventory, RunImageInfo, Subject
from cnbplatform.sbom.ospkgs import OsInventory
from cnbplatform.sbom.pkgdb import parse_dpkg_status, parse_os_release
from tests.conftest import REPO

GOLDEN = REPO / "sbom" / "golden"
DIGEST = "sha256:" + "ab" * 32
RUN_DIGEST = "sha256:" + "cd" * 32

SUBJECT = Subject(
    name="127.0.0.1:5000/demo/app:1",
    digest=DIGEST,
    created="2024-02-03T04:05:06.123456789Z",
    os="linux",
    architecture="amd64",
    run_image=RunImageInfo("127.0.0.1:5000/demo/run:bookworm", f"127.0.0.1:5000/demo/run@{RUN_DIGEST}", RUN_DIGEST),
    buildpacks=(
        BuildpackInfo("test/node", "1.0.0", "https://example.invalid/node"),
        BuildpackInfo("test/python", "2.0.0"),
        BuildpackInfo("test/empty", "0.1.0"),
    ),
    launcher_version="0.1.0",
)

FILES = {
    "launch/test_node/node_modules/sbom.cdx.json": "npm-1.4.cdx.json",
    "launch/test_python/site-packages/sbom.spdx.json": "python-2.3.spdx.json",
    "launch/test_python/sbom.spdx.json": "python-2.2.spdx.json",
    "launch/test_python/go/sbom.syft.json": "go-modern.syft.json",
    "launch/buildpacksio_lifecycle/launcher/sbom.syft.json": "ruby-legacy.syft.json",
}
LEGACY = [{"name": "node", "metadata": {"version": "18.1.0"}, "buildpack": {"id": "test/node", "version": "1.0.0"}}]


def sbom_files() -> list[SbomFile]:
    files = [SbomFile(path, (GOLDEN / "inputs" / name).read_bytes()) for path, name in FILES.items()]
    files.append(SbomFile("launch/sbom.legacy.json", json.dumps(LEGACY).encode()))
    files.append(SbomFile("launch/test_node/notes.txt", b"not an sbom"))
    return sorted(files, key=lambda f: f.path)


def os_inventory(status: str | None = None) -> OsInventory:
    os_dir = GOLDEN / "os"
    packages = parse_dpkg_status(status or (os_dir / "dpkg-status").read_text(), "/var/lib/dpkg/status")
    packages += parse_dpkg_status((os_dir / "status.d-libssl3").read_text(), "/var/lib/dpkg/status.d/libssl3")
    copyrights = {name: os_dir / f"copyright-{name}" for name in ("libc6", "zlib1g")}
    packages = [
        replace(p, licenses=copyright_licenses(copyrights[p.name].read_text())) if p.name in copyrights else p
        for p in packages
    ]
    distro = parse_os_release((os_dir / "os-release-debian").read_text())
    return OsInventory(distro, tuple(packages), ("/var/lib/dpkg/status", "/var/lib/dpkg/status.d/libssl3"))


def golden_inventory(**subject_changes: object) -> Inventory:
    return assemble(replace(SUBJECT, **subject_changes), sbom_files(), os_inventory())  # type: ignore[arg-type]
