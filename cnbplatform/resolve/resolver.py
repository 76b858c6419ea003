"""Tags to digests with one manifest ``HEAD`` per unique image, on a bounded pool of parallel requests.

The ``Accept`` header lists both index and manifest types (OCI and Docker), so a multi-platform image resolves
to its index digest: an index stays an index. ``HEAD`` is what the OCI Distribution Spec offers for this
("Checking if content exists in the registry") and, unlike ``GET``, it is not counted against Docker Hub's pull
rate limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from cnbplatform.errors import InvalidReferenceError, NotFoundError, UsageError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.reference import DOCKER_HUB, Reference, parse_reference
from cnbplatform.oci.store.stores import Stores

DEFAULT_WORKERS = 16
DOCKER_HUB_NAME = "index.docker.io"  # how kbld (go-containerregistry) names Docker Hub in its output


@dataclass(frozen=True)
class Digested:
    """A reference as written and the digest reference it resolved to."""

    url: str
    tag: str | None
    media_type: str


def parse(value: str, where: str) -> Reference:
    try:
        return parse_reference(value)
    except InvalidReferenceError as exc:
        raise UsageError(f"{where}: {exc.message}") from exc


def digest_url(ref: Reference, digest: str) -> str:
    registry = DOCKER_HUB_NAME if ref.registry == DOCKER_HUB else ref.registry
    return f"{registry}/{ref.repository}@{digest}"


class Resolver:
    """Resolves references on a pool of at most *workers* threads as they are submitted; one ``HEAD`` per
    distinct normalised reference, however often and however spelled it is submitted."""

    def __init__(self, stores: Stores, workers: int = DEFAULT_WORKERS) -> None:
        self._stores = stores
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="resolve")
        self._futures: dict[str, Future[Digested]] = {}
        self._values: dict[str, str] = {}  # value as written -> normalised key

    def submit(self, value: str, where: str) -> None:
        if value in self._values:
            return
        ref = parse(value, where)
        key = str(ref)
        self._values[value] = key
        if key not in self._futures:
            self._stores.client(ref.registry)  # made here, in one thread, then shared by the pool's threads
            self._futures[key] = self._pool.submit(_head, self._stores, ref)

    @property
    def distinct(self) -> int:
        return len(self._futures)

    def results(self) -> dict[str, Digested]:
        """``{value: Digested}`` for every value submitted; the first failure is raised, the rest cancelled."""
        done, _ = wait(self._futures.values(), return_when=FIRST_EXCEPTION)
        for future in done:
            error = future.exception()
            if error is not None:
                self.close()
                raise error
        return {value: self._futures[key].result() for value, key in self._values.items()}

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def resolve_all(
    stores: Stores, values: Iterable[tuple[str, str]], workers: int = DEFAULT_WORKERS
) -> dict[str, Digested]:
    """``{value: Digested}`` for each (value, where): one ``HEAD`` per distinct normalised reference."""
    resolver = Resolver(stores, workers)
    try:
        for value, where in values:
            resolver.submit(value, where)
        return resolver.results()
    finally:
        resolver.close()


def _head(stores: Stores, ref: Reference) -> Digested:
    client = stores.client(ref.registry)
    found = client.head_manifest(ref.repository, ref.identifier, mt.ACCEPT_ALL)
    if found is None:
        raise NotFoundError(f"resolve {ref}: no such image in {ref.registry}")
    media_type, digest, _ = found
    if ref.digest is not None and digest != ref.digest:
        raise NotFoundError(f"resolve {ref}: the registry answered with {digest}")
    return Digested(digest_url(ref, digest), ref.tag if ref.digest is None else None, media_type)
