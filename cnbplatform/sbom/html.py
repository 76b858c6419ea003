"""The audit report: one HTML page listing an image's components by source, with licenses and purls.

Rendered with jinja2 from ``templates/report.html.j2`` (packaged with cnbplatform; autoescaped, since every value
comes from the image). Nothing time- or machine-dependent is written, so the same image gives the same page.
"""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from cnbplatform import __version__
from cnbplatform.sbom.model import Component, Inventory

TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    components: tuple[Component, ...]


def sections(inventory: Inventory) -> list[Section]:
    """One section per source (run image, each buildpack), components sorted by purl then name."""
    out: list[Section] = []
    for group in inventory.groups:
        members = sorted((inventory.component(ref) for ref in group.members), key=lambda c: c.sort_key)
        out.append(Section(group.key, group.title, tuple(members)))
    return out


def to_html(inventory: Inventory) -> str:
    env = Environment(
        loader=PackageLoader("cnbplatform.sbom", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template(TEMPLATE)
    return template.render(
        subject=inventory.subject,
        sections=sections(inventory),
        total=len(inventory.components),
        warnings=inventory.warnings,
        version=__version__,
    )
