"""Image pull secrets: the ``kubernetes.io/dockerconfigjson`` Secret ``kubectl create secret docker-registry``
makes (https://kubernetes.io/docs/concepts/configuration/secret/#docker-config-secrets), from the credentials cnb
itself would use for a registry, plus the ServiceAccount document that lists it in ``imagePullSecrets``.

The secret's text is only ever returned; it never reaches a log line (see
:class:`~cnbplatform.oci.registry.Credential`'s ``repr``).
"""

from __future__ import annotations

import base64
import json
import re

from cnbplatform.errors import UsageError
from cnbplatform.k8s.render import render, to_yaml
from cnbplatform.oci.registry import Credential, normalize_registry

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_name(value: str, what: str) -> str:
    """A Kubernetes object name (RFC 1123 subdomain, at most 253 characters)."""
    if len(value) > 253 or not _DNS_SUBDOMAIN.match(value):
        raise UsageError(f"{what} {value!r}: expected a lowercase RFC 1123 name (a-z, 0-9, '-', '.')")
    return value


def registry_key(registry: str) -> str:
    """The ``auths`` key: the registry host (Docker Hub under its historical URL, as ``docker login`` writes)."""
    host = normalize_registry(registry)
    if not host:
        raise UsageError(f"registry {registry!r}: expected a host name")
    return DOCKER_HUB_KEY if host == "docker.io" else host


def docker_config_json(registry: str, credential: Credential) -> str:
    """``{"auths": {REGISTRY: {username, password, auth}}}`` (or the token a helper gave)."""
    entry: dict[str, str] = {}
    if credential.has_basic:
        username, password = credential.username or "", credential.password or ""
        entry = {
            "username": username,
            "password": password,
            "auth": base64.b64encode(f"{username}:{password}".encode()).decode("ascii"),
        }
    elif credential.identity_token:
        entry = {"identitytoken": credential.identity_token}
    elif credential.registry_token:
        entry = {"registrytoken": credential.registry_token}
    else:
        raise UsageError(f"the credentials found for {registry} hold neither a password nor a token")
    return json.dumps({"auths": {registry_key(registry): entry}}, separators=(",", ":"))


def pull_secret_yaml(
    registry: str,
    credential: Credential | None,
    *,
    name: str,
    namespace: str | None = None,
    service_account: str | None = None,
) -> str:
    """The Secret (and, with *service_account*, the ServiceAccount that uses it) as YAML."""
    check_name(name, "--name")
    if namespace is not None:
        check_name(namespace, "--namespace")
    if service_account is not None:
        check_name(service_account, "--service-account")
    if credential is None:
        raise UsageError(
            f"no credentials for {registry}: log in (docker login), configure a credential helper in "
            "config.json, or set CNB_REGISTRY_AUTH"
        )
    encoded = base64.b64encode(docker_config_json(registry, credential).encode()).decode("ascii")
    docs = render(
        "pull-secret.yaml.j2",
        name=name,
        namespace=namespace,
        service_account=service_account,
        dockerconfigjson=encoded,
    )
    return to_yaml(docs)
