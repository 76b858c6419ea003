"""Read the SBOMs buildpacks write (docs/spec-notes.md §3.7): CycloneDX JSON (any 1.x), SPDX JSON (2.x), Syft JSON, and
the deprecated ``sbom.legacy.json`` (``[[bom]]`` entries of launch.toml).

Inputs are read leniently (a buildpack's SBOM is evidence, not something cnb vouches for): only the fields the
merged document needs are taken, and a component needs nothing but a name. Nested CycloneDX components are
flattened; dependency graphs inside an input are not carried over. A file that is not JSON, or not an object, is
an error naming it. Purls are canonicalised (``packageurl``); one that does not parse is dropped and kept as the
property ``cnb:invalid-purl``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from cnbplatform.errors import CnbError
from cnbplatform.sbom.model import Component, Kind, plain_ref

_KINDS = {kind.value: kind for kind in Kind}
_SPDX_PURPOSES = {
    "APPLICATION": Kind.APPLICATION,
    "FRAMEWORK": Kind.FRAMEWORK,
    "LIBRARY": Kind.LIBRARY,
    "CONTAINER": Kind.CONTAINER,
    "OPERATING_SYSTEM": Kind.OPERATING_SYSTEM,
    "FILE": Kind.FILE,
}
_NO_VALUE = ("", "NOASSERTION", "NONE")


def canonical_purl(text: str) -> str | None:
    """*text* as a canonical purl string (qualifiers sorted, type-specific normalisation), ``None`` if invalid."""
    from packageurl import PackageURL

    try:
        return str(PackageURL.from_string(text.strip()).to_string())
    except ValueError:
        return None


def make_component(
    name: str,
    version: str = "",
    *,
    purl: str = "",
    kind: Kind = Kind.LIBRARY,
    group: str = "",
    licenses: tuple[str, ...] = (),
    description: str = "",
    supplier: str = "",
    properties: tuple[tuple[str, str], ...] = (),
    found_in: str = "",
) -> Component:
    """A component whose ``ref`` is its canonical purl, or ``<kind>:<group/name>@<version>`` without one."""
    canonical = canonical_purl(purl) if purl else None
    if purl and canonical is None:
        properties = (*properties, ("cnb:invalid-purl", purl))
    full_name = f"{group}/{name}" if group else name
    return Component(
        ref=canonical or plain_ref(kind.value, full_name, version),
        name=name,
        version=version,
        kind=kind,
        purl=canonical,
        group=group,
        licenses=tuple(dict.fromkeys(lic for lic in licenses if lic)),
        description=description,
        supplier=supplier,
        properties=properties,
        found_in=(found_in,) if found_in else (),
    )


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _objects(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


# -- CycloneDX --------------------------------------------------------------------------------------------------


def _cdx_licenses(value: Any) -> tuple[str, ...]:
    out: list[str] = []
    for item in _objects(value):
        if _str(item.get("expression")):
            out.append(_str(item["expression"]))
        elif isinstance(item.get("license"), dict):
            license_ = item["license"]
            out.append(_str(license_.get("id")) or _str(license_.get("name")))
    return tuple(out)


def _cdx_walk(value: Any) -> Iterator[dict[str, Any]]:
    for item in _objects(value):
        yield item
        yield from _cdx_walk(item.get("components"))


def read_cyclonedx(doc: dict[str, Any], source: str) -> list[Component]:
    out: list[Component] = []
    for item in _cdx_walk(doc.get("components")):
        name = _str(item.get("name"))
        if not name:
            continue
        supplier = item.get("supplier")
        out.append(
            make_component(
                name,
                _str(item.get("version")),
                purl=_str(item.get("purl")),
                kind=_KINDS.get(_str(item.get("type")), Kind.LIBRARY),
                group=_str(item.get("group")),
                licenses=_cdx_licenses(item.get("licenses")),
                description=_str(item.get("description")),
                supplier=_str(supplier.get("name")) if isinstance(supplier, dict) else _str(item.get("publisher")),
                found_in=source,
            )
        )
    return out


# -- SPDX -------------------------------------------------------------------------------------------------------


def _spdx_described(doc: dict[str, Any]) -> set[str]:
    described = {d for d in doc.get("documentDescribes") or () if isinstance(d, str)}
    for rel in _objects(doc.get("relationships")):
        kind, element = _str(rel.get("relationshipType")), _str(rel.get("spdxElementId"))
        if kind == "DESCRIBES" and element == _str(doc.get("SPDXID")):
            described.add(_str(rel.get("relatedSpdxElement")))
        elif kind == "DESCRIBED_BY":
            described.add(element)
    return described


def _spdx_supplier(value: Any) -> str:
    text = _str(value)
    if text in _NO_VALUE:
        return ""
    return text.split(":", 1)[1].strip() if ":" in text else text


def read_spdx(doc: dict[str, Any], source: str) -> list[Component]:
    described = _spdx_described(doc)
    out: list[Component] = []
    for item in _objects(doc.get("packages")):
        name = _str(item.get("name"))
        purl = next(
            (
                _str(r.get("referenceLocator"))
                for r in _objects(item.get("externalRefs"))
                if r.get("referenceType") == "purl"
            ),
            "",
        )
        if not name or (not purl and _str(item.get("SPDXID")) in described):
            continue  # the document's own subject (a directory, a layer) is not a component
        declared = _str(item.get("licenseDeclared"))
        concluded = _str(item.get("licenseConcluded"))
        license_ = declared if declared not in _NO_VALUE else concluded
        out.append(
            make_component(
                name,
                _str(item.get("versionInfo")),
                purl=purl,
                kind=_SPDX_PURPOSES.get(_str(item.get("primaryPackagePurpose")), Kind.LIBRARY),
                licenses=(license_,) if license_ not in _NO_VALUE else (),
                description=_str(item.get("summary")) or _str(item.get("description")),
                supplier=_spdx_supplier(item.get("supplier")),
                found_in=source,
            )
        )
    return out


# -- Syft -------------------------------------------------------------------------------------------------------


def _syft_licenses(value: Any) -> tuple[str, ...]:
    out: list[str] = []
    for item in value if isinstance(value, list) else ():
        if isinstance(item, str):
            out.append(item.strip())
        elif isinstance(item, dict):
            out.append(_str(item.get("spdxExpression")) or _str(item.get("value")))
    return tuple(out)


def read_syft(doc: dict[str, Any], source: str) -> list[Component]:
    out: list[Component] = []
    for item in _objects(doc.get("artifacts")):
        name = _str(item.get("name"))
        if not name:
            continue
        kind = _str(item.get("type"))
        out.append(
            make_component(
                name,
                _str(item.get("version")),
                purl=_str(item.get("purl")),
                licenses=_syft_licenses(item.get("licenses")),
                properties=(("syft:package:type", kind),) if kind else (),
                found_in=source,
            )
        )
    return out


# -- dispatch ---------------------------------------------------------------------------------------------------


def detect_format(doc: dict[str, Any]) -> str:
    """``cyclonedx``, ``spdx`` or ``syft`` from the document's own fields; ``""`` when none fits."""
    if doc.get("bomFormat") == "CycloneDX":
        return "cyclonedx"
    if isinstance(doc.get("spdxVersion"), str):
        return "spdx"
    if isinstance(doc.get("artifacts"), list):
        return "syft"
    return ""


_BY_EXTENSION = {"cdx.json": "cyclonedx", "spdx.json": "spdx", "syft.json": "syft"}
_READERS = {"cyclonedx": read_cyclonedx, "spdx": read_spdx, "syft": read_syft}


def load_json(data: bytes, source: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CnbError(f"reading SBOM {source}: not valid JSON: {exc}") from exc


def read_sbom(data: bytes, extension: str, source: str) -> list[Component]:
    """The components of one SBOM document; the format comes from the extension, else from the content."""
    doc = load_json(data, source)
    if not isinstance(doc, dict):
        raise CnbError(f"reading SBOM {source}: the document is not a JSON object")
    fmt = _BY_EXTENSION.get(extension) or detect_format(doc)
    if fmt not in _READERS:
        raise CnbError(f"reading SBOM {source}: not a CycloneDX, SPDX or Syft JSON document")
    return _READERS[fmt](doc, source)


def read_legacy_bom(data: bytes, source: str) -> list[tuple[str, Component]]:
    """``sbom.legacy.json``: ``(buildpack id, component)`` for each ``{name, metadata, buildpack}`` entry."""
    doc = load_json(data, source)
    out: list[tuple[str, Component]] = []
    for entry in _objects(doc):
        name = _str(entry.get("name"))
        metadata = entry["metadata"] if isinstance(entry.get("metadata"), dict) else {}
        buildpack = entry["buildpack"] if isinstance(entry.get("buildpack"), dict) else {}
        if name:
            version, purl = _str(metadata.get("version")), _str(metadata.get("purl"))
            out.append((_str(buildpack.get("id")), make_component(name, version, purl=purl, found_in=source)))
    return out
