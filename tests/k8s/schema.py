"""Validate Kubernetes documents against the official schema kept in ``schemas/`` (see its README)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource

SCHEMAS = Path(__file__).resolve().parent / "schemas"
FILES = {
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "Secret"): "secret-v1.json",
    ("v1", "ServiceAccount"): "serviceaccount-v1.json",
}


def _registry() -> Registry:
    definitions = json.loads((SCHEMAS / "_definitions.json").read_text())
    return Registry().with_resource("https://kubernetes.io/api/_definitions.json", Resource.from_contents(definitions))


REGISTRY = _registry()


def errors(doc: dict[str, Any]) -> list[str]:
    """Every schema violation of *doc* (empty when valid); a kind without a schema here is an error."""
    name = FILES.get((doc.get("apiVersion"), doc.get("kind")))  # type: ignore[arg-type]
    if name is None:
        return [f"no schema for {doc.get('apiVersion')} {doc.get('kind')}"]
    schema = json.loads((SCHEMAS / name).read_text())
    validator = jsonschema.Draft202012Validator(schema, registry=REGISTRY)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
