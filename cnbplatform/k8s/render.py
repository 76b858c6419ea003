"""Render a packaged template into YAML documents. Every value goes through ``tojson`` (a JSON string is a valid
YAML scalar), so no value can change the shape of a document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jinja2
import yaml

TEMPLATES = Path(__file__).resolve().parent / "templates"
_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters["tojson"] = lambda value: json.dumps(value, ensure_ascii=False)


def render(template: str, **values: Any) -> list[dict[str, Any]]:
    """The documents *template* renders to with *values*."""
    text = _ENV.get_template(template).render(**values)
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def to_yaml(docs: list[dict[str, Any]]) -> str:
    """A ``---`` separated stream, keys in template order."""
    return "".join("---\n" + yaml.safe_dump(d, sort_keys=False, default_flow_style=False, width=1 << 16) for d in docs)
