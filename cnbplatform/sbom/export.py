"""Render an inventory in one of the export formats, deterministically unless asked otherwise.

The CycloneDX serial number is ``urn:uuid:`` of a UUID5 of the image digest and the document time is the image's
``created`` (docs/spec-notes.md §6.2: normalised to 1980-01-01T00:00:01Z by the exporter), so exporting one image twice
gives identical bytes; ``serial="random"`` and ``timestamp="now"`` opt out. The SPDX namespace is derived the same
way (``https://spdx.org/spdxdocs/<name>-<uuid>``, the form the SPDX spec suggests).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Literal

from cnbplatform.errors import UsageError
from cnbplatform.sbom.model import Inventory

Format = Literal["cyclonedx", "spdx", "html"]
FORMATS: tuple[Format, ...] = ("cyclonedx", "spdx", "html")
SERIAL_NAMESPACE = uuid.UUID("6f1b6c2e-3c8e-5d3a-9f55-0c6e6b2f7a10")  # cnb's own UUID5 namespace for SBOM serials
_FRACTION = re.compile(r"(\.\d{6})\d+")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def serial_number(digest: str, *, random: bool = False) -> uuid.UUID:
    return uuid.uuid4() if random else uuid.uuid5(SERIAL_NAMESPACE, digest)


def document_time(created: str, *, now: bool = False) -> datetime:
    """The image's ``created`` (RFC 3339, any precision) as an aware UTC datetime; the epoch when missing."""
    if now:
        return datetime.now(UTC).replace(microsecond=0)
    if not created:
        return EPOCH
    text = _FRACTION.sub(r"\1", created.strip()).replace("z", "Z")
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"image created time {created!r} is not an RFC 3339 timestamp") from exc
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


def render(inventory: Inventory, fmt: Format, *, random_serial: bool = False, now: bool = False) -> str:
    """The document for *inventory* in *fmt*, as text."""
    serial = serial_number(inventory.subject.digest, random=random_serial)
    created = document_time(inventory.subject.created, now=now)
    if fmt == "cyclonedx":
        from cnbplatform.sbom.cyclonedx import to_cyclonedx

        return to_cyclonedx(inventory, serial=serial, timestamp=created)
    if fmt == "spdx":
        from cnbplatform.sbom.spdx import slug, to_spdx

        namespace = f"https://spdx.org/spdxdocs/{slug(inventory.root.name)}-{serial}"
        return to_spdx(inventory, namespace=namespace, created=created)
    if fmt == "html":
        from cnbplatform.sbom.html import to_html

        return to_html(inventory)
    raise UsageError(f"unknown SBOM format {fmt!r} (use {', '.join(FORMATS)})")
