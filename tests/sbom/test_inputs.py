"""Buildpack SBOM inputs (docs/spec-notes.md §3.7): CycloneDX, SPDX and Syft JSON, read from the golden documents in
``sbom/golden/inputs`` and compared with the hand-written ``sbom/golden/expected.json``."""

from __future__ import annotations

import json

import pytest

from cnbplatform.errors import CnbError
from cnbplatform.sbom.inputs import canonical_purl, read_legacy_bom, read_sbom
from tests.conftest import REPO

INPUTS = REPO / "sbom" / "golden" / "inputs"
EXPECTED = json.loads((REPO / "sbom" / "golden" / "expected.json").read_text())["inputs"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_inputs(name: str) -> None:
    extension = name.split(".", 1)[1]
    components = read_sbom((INPUTS / name).read_bytes(), extension, f"launch/bp/{name}")
    got = [
        {
            "name": c.name,
            **({"group": c.group} if c.group else {}),
            "version": c.version,
            "purl": c.purl,
            "licenses": list(c.licenses),
            **({"supplier": c.supplier} if c.supplier else {}),
        }
        for c in components
    ]
    assert got == EXPECTED[name]
    assert all(c.found_in == (f"launch/bp/{name}",) for c in components)
    assert all(c.ref == (c.purl or c.ref) for c in components)


def test_invalid_purl_is_kept_as_a_property() -> None:
    components = read_sbom((INPUTS / "npm-1.4.cdx.json").read_bytes(), "cdx.json", "x")
    bad = next(c for c in components if c.name == "not-a-purl")
    assert bad.purl is None
    assert ("cnb:invalid-purl", "this is not a purl") in bad.properties
    assert bad.ref == "library:not-a-purl@0.1"


def test_format_is_detected_from_content_when_the_extension_says_nothing() -> None:
    data = (INPUTS / "python-2.3.spdx.json").read_bytes()
    assert [c.name for c in read_sbom(data, "", "x")] == ["Flask", "requests"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"hello": "world"}', "not a CycloneDX, SPDX or Syft"),
    ],
)
def test_broken_inputs_name_the_file(data: bytes, message: str) -> None:
    with pytest.raises(CnbError) as info:
        read_sbom(data, "", "launch/test_bp/sbom.x.json")
    assert message in info.value.message
    assert "launch/test_bp/sbom.x.json" in info.value.message


def test_legacy_bom_entries() -> None:
    data = json.dumps(
        [
            {"name": "node", "metadata": {"version": "18.1.0"}, "buildpack": {"id": "test/node", "version": "1"}},
            {"name": "", "metadata": {}},
            "garbage",
        ]
    ).encode()
    [(bp, component)] = read_legacy_bom(data, "launch/sbom.legacy.json")
    assert (bp, component.name, component.version, component.purl) == ("test/node", "node", "18.1.0", None)


def test_canonical_purl() -> None:
    assert canonical_purl("pkg:pypi/Flask_Login@0.6") == "pkg:pypi/flask-login@0.6"
    assert (
        canonical_purl("pkg:deb/debian/x@1?distro=debian-12&arch=amd64")
        == "pkg:deb/debian/x@1?arch=amd64&distro=debian-12"
    )
    assert canonical_purl("nope") is None
