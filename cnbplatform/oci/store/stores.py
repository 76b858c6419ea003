"""Open the store an :class:`~cnbplatform.oci.address.ImageAddress` names.

One ``Stores`` per command: it keeps one registry client per registry host (so tokens and connections are
reused across reads and writes) and closes them at the end.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from cnbplatform.oci.address import ImageAddress, StoreKind
from cnbplatform.oci.reference import Reference
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.oci.store.local import LocalStore
from cnbplatform.oci.store.options import StoreOptions
from cnbplatform.oci.store.protocol import ImageStore

if TYPE_CHECKING:  # httpx and the registry client load only when a registry is used (start-up time)
    from cnbplatform.oci.registry import RegistryClient


class Stores:
    def __init__(self, options: StoreOptions) -> None:
        self.options = options
        self._clients: dict[str, RegistryClient] = {}

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def local(self) -> LocalStore:
        return LocalStore(self.options.home)

    def open(self, address: ImageAddress) -> tuple[ImageStore, str | None]:
        if address.kind is StoreKind.LAYOUT:
            assert address.path is not None
            return LayoutStore(address.path), address.tag
        if address.kind is StoreKind.LOCAL:
            return self.local(), address.tag
        assert address.reference is not None
        ref = address.reference
        if address.kind is StoreKind.DAEMON:
            from cnbplatform.oci.store.daemon import DaemonStore

            return DaemonStore(environment=self.options.env, spool_dir=self.options.home / "tmp"), ref.familiar()
        return self.remote(ref), ref.identifier

    def remote(self, ref: Reference) -> ImageStore:
        from cnbplatform.oci.store.remote import RemoteStore

        return RemoteStore(self.client(ref.registry), ref.registry, ref.repository, parallel=self.options.parallel)

    def client(self, registry: str) -> RegistryClient:
        from cnbplatform.oci.registry import RegistryClient, resolve_credential

        if registry not in self._clients:
            self._clients[registry] = RegistryClient(
                registry if registry != "docker.io" else "registry-1.docker.io",
                credentials=resolve_credential(registry, self.options.env),
                insecure=registry in self.options.insecure_registries,
                ca_file=self.ca_file(registry),
                retries=self.options.retries,
                backoff=self.options.backoff,
            )
        return self._clients[registry]

    def ca_file(self, registry: str) -> Path | None:
        """A CA for *registry*: the explicit option, else ``certs.d/<host>/ca.crt`` (Docker's convention)."""
        if self.options.ca_file is not None:
            return self.options.ca_file
        for base in (self.options.home / "certs.d", Path("/etc/docker/certs.d")):
            candidate = base / registry / "ca.crt"
            if candidate.is_file():
                return candidate
        return None

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
