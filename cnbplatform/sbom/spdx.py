"""SPDX 2.3 JSON, built with ``spdx-tools`` and checked by its validator before it is returned (docs/design.md §3
decision 9).

``DOCUMENT DESCRIBES`` the image; the image ``CONTAINS`` the run image and each buildpack, which ``CONTAIN`` their
packages. Purls are ``PACKAGE-MANAGER purl`` external references. Licenses become one declared expression per
package: SPDX ids and expressions as they are, any other name as ``LicenseRef-<name>`` with an extracted-licensing
entry that carries the name (the license text itself is not in the image's metadata). SPDX ids of elements are
derived from the component identity, so the same inventory gives the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from datetime import datetime

from spdx_tools.spdx.jsonschema.document_converter import DocumentConverter
from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.document import CreationInfo, Document
from spdx_tools.spdx.model.extracted_licensing_info import ExtractedLicensingInfo
from spdx_tools.spdx.model.package import ExternalPackageRef, ExternalPackageRefCategory, Package, PackagePurpose
from spdx_tools.spdx.model.relationship import Relationship, RelationshipType
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

from cnbplatform import __version__
from cnbplatform.errors import CnbError
from cnbplatform.sbom.licenses import is_spdx_expression, normalize_expression, parse_expression, spdx_id
from cnbplatform.sbom.model import Component, Inventory, Kind

_PURPOSES = {
    Kind.APPLICATION: PackagePurpose.APPLICATION,
    Kind.CONTAINER: PackagePurpose.CONTAINER,
    Kind.FILE: PackagePurpose.FILE,
    Kind.FRAMEWORK: PackagePurpose.FRAMEWORK,
    Kind.LIBRARY: PackagePurpose.LIBRARY,
    Kind.OPERATING_SYSTEM: PackagePurpose.OPERATING_SYSTEM,
}
_EMAIL = re.compile(r"^(.*?)\s*<([^<>]+)>\s*$")


def slug(text: str) -> str:
    """*text* reduced to the characters SPDX ids allow (letters, digits, ``.``, ``-``)."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-") or "x"


def element_id(component: Component) -> str:
    digest = hashlib.sha256(component.ref.encode()).hexdigest()[:12]
    return f"SPDXRef-{component.kind.value}-{slug(component.name)[:60]}-{digest}"


class _Licenses:
    """Collects the ``LicenseRef-`` entries the packages use."""

    def __init__(self) -> None:
        self.refs: dict[str, ExtractedLicensingInfo] = {}

    def expression(self, licenses: Sequence[str]) -> str:
        parts: list[str] = []
        for item in licenses:
            known = spdx_id(item)
            if known is not None:
                parts.append(known)
            elif is_spdx_expression(item):
                parts.append(f"({normalize_expression(item)})")
            else:
                ref = f"LicenseRef-{slug(item)}"
                self.refs.setdefault(
                    ref,
                    ExtractedLicensingInfo(
                        license_id=ref,
                        extracted_text=item,
                        license_name=item,
                        comment="the license as the package names it; its text is not part of the image metadata",
                    ),
                )
                parts.append(ref)
        unique = list(dict.fromkeys(parts))
        if len(unique) == 1:
            return unique[0].removeprefix("(").removesuffix(")") if unique[0].startswith("(") else unique[0]
        return " AND ".join(unique)


def _supplier(text: str) -> Actor | None:
    if not text:
        return None
    match = _EMAIL.match(text)
    if match and match.group(1):
        return Actor(ActorType.ORGANIZATION, match.group(1), match.group(2))
    return Actor(ActorType.ORGANIZATION, text)


def _package(item: Component, licenses: _Licenses) -> Package:
    refs = [ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", item.purl)] if item.purl else []
    declared = parse_expression(licenses.expression(item.licenses)) if item.licenses else SpdxNoAssertion()
    comment = "; ".join(f"{k}={v}" for k, v in item.properties) or None
    return Package(
        spdx_id=element_id(item),
        name=item.name,
        download_location=SpdxNoAssertion(),
        version=item.version or None,
        supplier=_supplier(item.supplier),
        files_analyzed=False,
        license_concluded=SpdxNoAssertion(),
        license_declared=declared,
        copyright_text=SpdxNoAssertion(),
        summary=item.description or None,
        comment=comment,
        source_info=("found in " + ", ".join(item.found_in)) if item.found_in else None,
        external_references=refs,
        primary_package_purpose=_PURPOSES[item.kind],
    )


def to_spdx(inventory: Inventory, *, namespace: str, created: datetime) -> str:
    """The inventory as a validated SPDX 2.3 JSON document (UTF-8 text, ends with a newline)."""
    licenses = _Licenses()
    root_id = element_id(inventory.root)
    packages = [_package(inventory.root, licenses)] + [_package(c, licenses) for c in inventory.nodes()]
    relationships = [Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, root_id)]
    for group in inventory.groups:
        parent = root_id
        if group.node is not None:
            parent = element_id(group.node)
            relationships.append(Relationship(root_id, RelationshipType.CONTAINS, parent))
        for ref in group.members:
            relationships.append(Relationship(parent, RelationshipType.CONTAINS, element_id(inventory.component(ref))))
    creation = CreationInfo(
        spdx_version="SPDX-2.3",
        spdx_id="SPDXRef-DOCUMENT",
        name=inventory.root.name,
        document_namespace=namespace,
        creators=[Actor(ActorType.TOOL, f"cnb-{__version__}")],
        created=created,
    )
    document = Document(
        creation,
        packages=packages,
        relationships=relationships,
        extracted_licensing_info=[licenses.refs[k] for k in sorted(licenses.refs)],
    )
    messages = validate_full_spdx_document(document)
    if messages:
        details = "; ".join(m.validation_message for m in messages[:3])
        raise CnbError(f"writing SPDX: the document does not pass spdx-tools validation: {details}")
    data = DocumentConverter().convert(document)  # type: ignore[no-untyped-call]
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
