"""OCI distribution client: one :class:`RegistryClient` per registry host, plus credential lookup."""

from cnbplatform.oci.registry.auth import repository_scope
from cnbplatform.oci.registry.client import MANIFEST_LIMIT, RegistryClient
from cnbplatform.oci.registry.credentials import Credential, normalize_registry, resolve_credential
from cnbplatform.oci.registry.transport import is_loopback

__all__ = [
    "MANIFEST_LIMIT",
    "Credential",
    "RegistryClient",
    "is_loopback",
    "normalize_registry",
    "repository_scope",
    "resolve_credential",
]
