"""Independent checks of exported SBOMs, for any test that exports one.

``check_cyclonedx`` validates against the CycloneDX 1.6 JSON schema (strict: no unknown properties) shipped with
cyclonedx-python-lib; ``check_spdx`` parses the file back with spdx-tools' own parser, runs its validator, and runs
the ``pyspdxtools`` command on it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from packageurl import PackageURL


def check_cyclonedx(text: str) -> dict[str, Any]:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    errors = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text, all_errors=True)
    assert errors is None, [str(e) for e in errors]
    doc: dict[str, Any] = json.loads(text)
    assert doc["specVersion"] == "1.6"
    return doc


def check_spdx(path: Path) -> dict[str, Any]:
    from spdx_tools.spdx.parser.parse_anything import parse_file
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    document = parse_file(str(path))
    messages = validate_full_spdx_document(document)
    assert messages == [], [m.validation_message for m in messages]
    tool = Path(sys.executable).parent / "pyspdxtools"
    done = subprocess.run([str(tool), "-i", str(path)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    doc: dict[str, Any] = json.loads(path.read_text())
    assert doc["spdxVersion"] == "SPDX-2.3"
    return doc


def cdx_purls(doc: dict[str, Any]) -> dict[str, PackageURL]:
    """Purls of a CycloneDX document's components, parsed (by ``name``; last wins)."""
    return {c["name"]: PackageURL.from_string(c["purl"]) for c in doc.get("components", []) if "purl" in c}


def spdx_purls(doc: dict[str, Any]) -> dict[str, PackageURL]:
    out: dict[str, PackageURL] = {}
    for package in doc.get("packages", []):
        for ref in package.get("externalRefs", []):
            if ref["referenceType"] == "purl":
                out[package["name"]] = PackageURL.from_string(ref["referenceLocator"])
    return out


def deb_purl_ok(purl: PackageURL, name: str, version: str, arch: str, distro: str = "debian-12") -> bool:
    """``pkg:deb/debian/<name>@<version>?arch=<arch>&distro=<distro>``, compared after parsing."""
    return (purl.type, purl.namespace, purl.name, purl.version, dict(purl.qualifiers or {})) == (
        "deb",
        "debian",
        name,
        version,
        {"arch": arch, "distro": distro},
    )
