"""CycloneDX 1.6 JSON, built with ``cyclonedx-python-lib`` and validated against the 1.6 schema before it is
returned (docs/design.md §3 decision 9: never hand-assembled JSON that no validator has seen).

The image is ``metadata.component``; the dependency graph is image -> run image and buildpacks -> their packages.
The serial number and timestamp are inputs, so the same inventory gives the same bytes.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from cyclonedx.model import Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component as CdxComponent
from cyclonedx.model.component import ComponentType
from cyclonedx.model.contact import OrganizationalEntity
from cyclonedx.model.license import DisjunctiveLicense, License, LicenseExpression
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.spdx import fixup_id
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

from cnbplatform import __version__
from cnbplatform.errors import CnbError
from cnbplatform.sbom.licenses import is_spdx_expression, normalize_expression
from cnbplatform.sbom.model import Component, Inventory, Kind

_TYPES = {
    Kind.APPLICATION: ComponentType.APPLICATION,
    Kind.CONTAINER: ComponentType.CONTAINER,
    Kind.FILE: ComponentType.FILE,
    Kind.FRAMEWORK: ComponentType.FRAMEWORK,
    Kind.LIBRARY: ComponentType.LIBRARY,
    Kind.OPERATING_SYSTEM: ComponentType.OPERATING_SYSTEM,
}


def cdx_licenses(licenses: Sequence[str]) -> list[License]:
    """SPDX ids as ``license.id``, other names as ``license.name``; a compound SPDX expression makes the whole
    list one ``expression`` (the schema allows ids/names or a single expression, never both)."""
    ids = [fixup_id(item) for item in licenses]
    compound = [item for item, id_ in zip(licenses, ids, strict=True) if id_ is None and is_spdx_expression(item)]
    if compound:
        if all(id_ is not None or is_spdx_expression(item) for item, id_ in zip(licenses, ids, strict=True)):
            parts = [normalize_expression(item) for item in licenses]
            text = parts[0] if len(parts) == 1 else " AND ".join(f"({part})" for part in parts)
            return [LicenseExpression(text)]
        return [DisjunctiveLicense(name=item) for item in licenses]
    return [
        DisjunctiveLicense(id=id_) if id_ else DisjunctiveLicense(name=item)
        for item, id_ in zip(licenses, ids, strict=True)
    ]


def _component(item: Component) -> CdxComponent:
    properties = [Property(name=k, value=v) for k, v in item.properties]
    properties += [Property(name="cnb:found-in", value=path) for path in item.found_in]
    return CdxComponent(
        name=item.name,
        version=item.version or None,
        type=_TYPES[item.kind],
        bom_ref=item.ref,
        group=item.group or None,
        purl=PackageURL.from_string(item.purl) if item.purl else None,
        licenses=cdx_licenses(item.licenses),
        description=item.description or None,
        supplier=OrganizationalEntity(name=item.supplier) if item.supplier else None,
        properties=properties,
    )


def to_cyclonedx(inventory: Inventory, *, serial: UUID, timestamp: datetime) -> str:
    """The inventory as a validated CycloneDX 1.6 JSON document (UTF-8 text, ends with a newline)."""
    root = _component(inventory.root)
    tool = CdxComponent(name="cnb", version=__version__, type=ComponentType.APPLICATION, bom_ref="tool:cnb")
    metadata = BomMetaData(component=root, timestamp=timestamp)
    metadata.tools.components.add(tool)
    bom = Bom(serial_number=serial, metadata=metadata)
    made = {item.ref: _component(item) for item in inventory.nodes()}
    bom.components = made.values()
    heads: list[CdxComponent] = []
    for group in inventory.groups:
        members = [made[ref] for ref in group.members]
        if group.node is None:
            heads += members
        else:
            heads.append(made[group.node.ref])
            bom.register_dependency(made[group.node.ref], members)
    bom.register_dependency(root, heads)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the library warns about components without dependencies
        text = JsonV1Dot6(bom).output_as_string(indent=2)
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise CnbError(f"writing CycloneDX: the document does not validate against the 1.6 schema: {error}")
    return text + "\n"
