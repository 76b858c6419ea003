"""cnb/python: a CycloneDX SBOM of the distributions installed in the venv (docs/spec-notes.md §3.7,
``<layer>.sbom.cdx.json``).

Run by the venv's own interpreter (``VENV/bin/python -B sbom.py BUILDPACK_VERSION``), so it sees exactly the
venv's site-packages through ``importlib.metadata``; prints the JSON document. ``build.py`` calls :func:`render`
with the venv's site-packages instead (the same interpreter, so the same result). One ``library`` component per
distribution, sorted by name: name, version, purl ``pkg:pypi/<PEP 503 name>@<version>`` (also the bom-ref) and
licenses when the metadata has them: ``License-Expression`` (PEP 639) as an SPDX expression, else a short
``License`` field, else the ``License ::`` classifiers; a well-known SPDX identifier becomes ``license.id``,
anything else ``license.name``. No timestamp or serial number: the same venv gives the same bytes, so an
unchanged SBOM layer is reused. Standard library only.
"""

from __future__ import annotations

import json
import re
import sys
import sysconfig
from importlib import metadata
from typing import Any
from urllib.parse import quote

SPDX_IDS = {
    "0BSD", "Apache-2.0", "Artistic-2.0", "BlueOak-1.0.0", "BSD-2-Clause", "BSD-3-Clause", "CC0-1.0", "GPL-2.0-only",
    "GPL-2.0-or-later", "GPL-3.0-only", "GPL-3.0-or-later", "ISC", "LGPL-2.1-only", "LGPL-2.1-or-later",
    "LGPL-3.0-only", "LGPL-3.0-or-later", "MIT", "MPL-2.0", "PSF-2.0", "Python-2.0", "Unlicense", "Zlib",
}  # fmt: skip
CLASSIFIER_IDS = {
    "MIT License": "MIT",
    "ISC License (ISCL)": "ISC",
    "Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "Apache Software License 2.0": "Apache-2.0",
    "The Unlicense (Unlicense)": "Unlicense",
    "Zero-Clause BSD (0BSD)": "0BSD",
}


def canonical(name: str) -> str:
    """The PEP 503 normalized name (https://peps.python.org/pep-0503/#normalized-names), as purls for PyPI use."""
    return re.sub(r"[-_.]+", "-", name).lower()


def purl(name: str, version: str) -> str:
    return f"pkg:pypi/{quote(canonical(name), safe='')}@{quote(version, safe='')}"


def one_license(text: str) -> dict[str, Any]:
    key = "id" if text in SPDX_IDS else "name"
    return {"license": {key: text}}


def licenses(meta: Any) -> list[dict[str, Any]]:
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return [one_license(expression)] if expression in SPDX_IDS else [{"expression": expression}]
    field = (meta.get("License") or "").strip()
    if field and "\n" not in field and len(field) <= 100 and field.upper() not in ("UNKNOWN", "NONE"):
        return [one_license(field)]
    found = []
    for classifier in meta.get_all("Classifier") or []:
        parts = [part.strip() for part in classifier.split("::")]
        if parts[0] == "License" and len(parts) > 1 and parts[-1] not in ("OSI Approved", "Other/Proprietary License"):
            name = CLASSIFIER_IDS.get(parts[-1], parts[-1])
            entry = one_license(name)
            if entry not in found:
                found.append(entry)
    return found


def components(paths: list[str]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for dist in metadata.distributions(path=sorted(set(paths))):
        meta = dist.metadata
        name = meta["Name"]
        if not name or canonical(name) in seen:
            continue
        ref = purl(name, dist.version)
        component: dict[str, Any] = {
            "type": "library",
            "bom-ref": ref,
            "name": name,
            "version": dist.version,
            "purl": ref,
        }
        found = licenses(meta)
        if found:
            component["licenses"] = found
        seen[canonical(name)] = component
    return [seen[key] for key in sorted(seen)]


def document(version: str, paths: list[str]) -> dict[str, Any]:
    return {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {"components": [{"type": "application", "name": "cnb/python", "version": version}]},
            "properties": [
                {"name": "cnb:python:version", "value": ".".join(map(str, sys.version_info[:3]))},
            ],
        },
        "components": components(paths),
    }


def render(version: str, paths: list[str]) -> str:
    """The SBOM of the distributions below *paths* (site-packages directories), as the bytes of the file."""
    return json.dumps(document(version, paths), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    own = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    sys.stdout.write(render(sys.argv[1] if len(sys.argv) > 1 else "unknown", own))
