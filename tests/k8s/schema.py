"""Validate Kubernetes documents against the published schemas kept in ``schemas/`` (see its README): the
Kubernetes 1.34 schemas, Tekton's CRD schemas and kpack's OpenAPI document (plus the fields kpack's admission
webhook requires)."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMAS = Path(__file__).resolve().parent / "schemas"
FILES = {
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "Secret"): "secret-v1.json",
    ("v1", "ServiceAccount"): "serviceaccount-v1.json",
    ("batch/v1", "Job"): "job-batch-v1.json",
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaim-v1.json",
}
TEKTON = {
    ("tekton.dev/v1", "TaskRun"): "tekton-taskrun-v1.json",
    ("tekton.dev/v1", "PipelineRun"): "tekton-pipelinerun-v1.json",
    ("tekton.dev/v1", "Pipeline"): "tekton-pipeline-v1.json",
}
KPACK = ("ClusterLifecycle", "ClusterStore", "ClusterStack", "ClusterBuilder", "Image")
OBJECT_META = "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
KPACK_ID = "https://kpack.io/api/v1alpha2.json"


def _registry() -> Registry:
    definitions = json.loads((SCHEMAS / "_definitions.json").read_text())
    kpack = json.loads((SCHEMAS / "kpack-v1alpha2.json").read_text())
    _strict(kpack)
    for kind in KPACK:  # status is the controller's to write: not required of what one applies
        root = kpack["definitions"][f"kpack.build.v1alpha2.{kind}"]
        root["required"] = [name for name in root.get("required", []) if name != "status"]
    return Registry().with_resources(
        [
            ("https://kubernetes.io/api/_definitions.json", Resource.from_contents(definitions)),
            (KPACK_ID, Resource.from_contents(kpack, default_specification=DRAFT202012)),
        ]
    )


def _strict(node: Any) -> None:
    """Unknown fields are errors, as the API server's strict field validation (``kubectl --validate=strict``, the
    default) makes them: an object schema with ``properties`` gets ``additionalProperties: false``, except where
    the schema keeps unknown fields (``x-kubernetes-preserve-unknown-fields``)."""
    if isinstance(node, dict):
        keeps_unknown = node.get("x-kubernetes-preserve-unknown-fields")
        if "properties" in node and "additionalProperties" not in node and not keeps_unknown:
            node["additionalProperties"] = False
        for child in node.values():
            _strict(child)
    elif isinstance(node, list):
        for child in node:
            _strict(child)


REGISTRY = _registry()


@cache
def _tekton(name: str) -> dict[str, Any]:
    """A Tekton CRD's ``openAPIV3Schema`` made strict; the API server checks ``metadata`` as ObjectMeta."""
    schema: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    _strict(schema)
    schema["properties"]["metadata"] = {"$ref": OBJECT_META}
    return schema


@cache
def _webhook() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / "kpack-webhook.json").read_text())
    return loaded


def _kpack(kind: str) -> dict[str, Any]:
    """kpack's OpenAPI definition of *kind* and the fields kpack's admission webhook requires."""
    return {
        "allOf": [
            {"$ref": f"{KPACK_ID}#/definitions/kpack.build.v1alpha2.{kind}"},
            copy.deepcopy(_webhook()[kind]),
        ]
    }


def schema_for(doc: dict[str, Any]) -> dict[str, Any] | None:
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in FILES:
        loaded: dict[str, Any] = json.loads((SCHEMAS / FILES[key]).read_text())  # type: ignore[index]
        return loaded
    if key in TEKTON:
        return _tekton(TEKTON[key])  # type: ignore[index]
    if key[0] == "kpack.io/v1alpha2" and key[1] in KPACK:
        return _kpack(key[1])  # type: ignore[arg-type]
    return None


def errors(doc: dict[str, Any]) -> list[str]:
    """Every schema violation of *doc* (empty when valid); a kind without a schema here is an error."""
    schema = schema_for(doc)
    if schema is None:
        return [f"no schema for {doc.get('apiVersion')} {doc.get('kind')}"]
    validator = jsonschema.Draft202012Validator(schema, registry=REGISTRY)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
