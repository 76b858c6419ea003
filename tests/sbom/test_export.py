"""Merged SBOM documents from the golden inputs: CycloneDX 1.6 and SPDX 2.3 that their validators accept, the HTML
report, de-duplication by purl, and byte-identical output for the same image (docs/design.md §3 decision 9)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from packageurl import PackageURL

from cnbplatform.sbom.export import render
from tests.sbom.fixtures import DIGEST, RUN_DIGEST, SUBJECT, golden_inventory
from tests.support.sbom import cdx_purls, check_cyclonedx, check_spdx, deb_purl_ok, spdx_purls

DEB = [
    ("base-files", "12.4+deb12u5", "amd64"),
    ("libc6", "2.36-9+deb12u4", "amd64"),
    ("libssl3", "3.0.13-1~deb12u1", "amd64"),
    ("tzdata", "2024a-0+deb12u1", "all"),
    ("zlib1g", "1:1.2.13.dfsg-1", "amd64"),
]
APP = {
    "express": ("npm", "4.18.2"),
    "left-pad": ("npm", "1.3.0"),
    "requests": ("pypi", "2.32.3"),
    "six": ("pypi", "1.16.0"),
}


def test_inventory_groups_and_merges_by_purl() -> None:
    inventory = golden_inventory()
    assert [g.key for g in inventory.groups] == [
        "run-image",
        "buildpack:test/node",
        "buildpack:test/python",
        "buildpack:test/empty",
        "buildpack:buildpacksio/lifecycle",
    ]
    flask = [c for c in inventory.components if c.purl == "pkg:pypi/flask@3.0.3"]
    assert len(flask) == 1  # the SPDX and the Syft document both list it
    assert flask[0].found_in == (
        "launch/test_python/go/sbom.syft.json",
        "launch/test_python/site-packages/sbom.spdx.json",
    )
    groups = {g.key: g for g in inventory.groups}
    assert "pkg:pypi/flask@3.0.3" in groups["buildpack:test/python"].members
    assert groups["buildpack:test/empty"].members == ()
    assert "library:node@18.1.0" in groups["buildpack:test/node"].members  # from sbom.legacy.json
    run_members = groups["run-image"].members
    assert "operating-system:debian@12" in run_members
    assert len([m for m in run_members if m.startswith("pkg:deb/")]) == len(DEB)
    assert any("notes.txt" in w for w in inventory.warnings)


def test_cyclonedx_validates_and_lists_os_and_app_packages() -> None:
    text = render(golden_inventory(), "cyclonedx")
    doc = check_cyclonedx(text)
    purls = cdx_purls(doc)
    for name, version, arch in DEB:
        assert deb_purl_ok(purls[name], name, version, arch), purls[name]
    for name, (kind, version) in APP.items():
        assert (purls[name].type, purls[name].name, purls[name].version) == (kind, name, version)
    root = doc["metadata"]["component"]
    assert (root["name"], root["version"], root["type"]) == (SUBJECT.name, DIGEST, "container")
    assert PackageURL.from_string(root["purl"]).qualifiers["repository_url"] == "127.0.0.1:5000/demo/app"
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    run_ref = next(c["bom-ref"] for c in doc["components"] if c["version"] == RUN_DIGEST)
    assert run_ref in deps[root["bom-ref"]]
    assert "buildpack:test/python@2.0.0" in deps[root["bom-ref"]]
    assert str(purls["libc6"]) in deps[run_ref]
    assert "pkg:pypi/flask@3.0.3" in deps["buildpack:test/python@2.0.0"]
    by_name = {c["name"]: c for c in doc["components"]}
    assert [lic["license"]["id"] for lic in by_name["libc6"]["licenses"]] == [
        "GPL-2.0-or-later",
        "LGPL-2.1-or-later",
        "MIT",
    ]
    assert by_name["core"]["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert by_name["left-pad"]["licenses"] == [{"license": {"name": "WTFPL-ish custom"}}]
    assert doc["metadata"]["timestamp"].startswith("2024-02-03T04:05:06")


def test_cyclonedx_is_byte_identical_unless_asked_otherwise() -> None:
    first, second = render(golden_inventory(), "cyclonedx"), render(golden_inventory(), "cyclonedx")
    assert first == second
    serial = uuid.UUID(json.loads(first)["serialNumber"].removeprefix("urn:uuid:"))
    assert serial.version == 5
    other = json.loads(render(golden_inventory(digest="sha256:" + "ef" * 32), "cyclonedx"))["serialNumber"]
    assert other != json.loads(first)["serialNumber"]
    assert render(golden_inventory(), "cyclonedx", random_serial=True) != first
    fresh = json.loads(render(golden_inventory(), "cyclonedx", now=True))["metadata"]["timestamp"]
    assert not fresh.startswith("2024-02-03")


def test_spdx_passes_spdx_tools_and_is_byte_identical(tmp_path: Path) -> None:
    text = render(golden_inventory(), "spdx")
    assert text == render(golden_inventory(), "spdx")
    path = tmp_path / "app.spdx.json"
    path.write_text(text)
    doc = check_spdx(path)
    purls = spdx_purls(doc)
    for name, version, arch in DEB:
        assert deb_purl_ok(purls[name], name, version, arch), purls[name]
    for name, (kind, version) in APP.items():
        assert (purls[name].type, purls[name].name, purls[name].version) == (kind, name, version)
    assert doc["creationInfo"]["created"] == "2024-02-03T04:05:06Z"
    refs = {e["licenseId"]: e for e in doc.get("hasExtractedLicensingInfos", [])}
    assert refs["LicenseRef-WTFPL-ish-custom"]["name"] == "WTFPL-ish custom"
    ids = {p["SPDXID"]: p for p in doc["packages"]}
    described = [r["relatedSpdxElement"] for r in doc["relationships"] if r["relationshipType"] == "DESCRIBES"]
    assert [ids[d]["name"] for d in described] == [SUBJECT.name]
    libc = next(p for p in doc["packages"] if p["name"] == "libc6")
    assert libc["licenseDeclared"] == "GPL-2.0-or-later AND LGPL-2.1-or-later AND MIT"
    contains = {
        (r["spdxElementId"], r["relatedSpdxElement"])
        for r in doc["relationships"]
        if r["relationshipType"] == "CONTAINS"
    }
    run = next(p["SPDXID"] for p in doc["packages"] if p.get("versionInfo") == RUN_DIGEST)
    assert (described[0], run) in contains
    assert (run, libc["SPDXID"]) in contains


def test_html_report_lists_components_by_source_and_escapes() -> None:
    inventory = golden_inventory(name='<script>alert("x")</script>')
    html = render(inventory, "html")
    assert html == render(inventory, "html")
    assert "<script>alert" not in html
    assert "&lt;script&gt;" in html
    for title in (
        "Run image 127.0.0.1:5000/demo/run:bookworm",
        "Buildpack test/python 2.0.0",
        "Buildpack test/node 1.0.0",
    ):
        assert title in html
    assert "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&amp;distro=debian-12" in html
    assert "GPL-2.0-or-later, LGPL-2.1-or-later, MIT" in html
    node_section = html.split("Buildpack test/node 1.0.0")[1].split("<h2")[0]
    assert "pkg:npm/express@4.18.2" in node_section and "pkg:pypi/flask" not in node_section
