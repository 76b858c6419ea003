"""Tags to digests with one manifest ``HEAD`` per unique image, on a bounded pool of parallel requests.

The ``Accept`` header lists both index and manifest types (OCI and Docker), so a multi-platform image resolves
to its index digest: an index stays an index. ``HEAD`` is what the OCI Distribution Spec offers for this
("Checking if content exists in the registry") and, unlike ``GET``, it is not counted against Docker Hub's pull
rate limit.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

from cnbplatform.errors import InvalidReferenceError, NotFoundError, UsageError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.reference import DOCKER_HUB, Reference, parse_reference
from cnbplatform.oci.stores import Stores

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


def resolve_all(
    stores: Stores, values: Iterable[tuple[str, str]], workers: int = DEFAULT_WORKERS
) -> dict[str, Digested]:
    """``{value: Digested}`` for each (value, where): one ``HEAD`` per distinct normalised reference."""
    wanted: dict[str, list[str]] = {}
    refs: dict[str, Reference] = {}
    for value, where in values:
        ref = parse(value, where)
        key = str(ref)
        refs[key] = ref
        wanted.setdefault(key, []).append(value)
    for ref in refs.values():  # one client per registry, made before the threads share them
        stores.client(ref.registry)
    out: dict[str, Digested] = {}
    if not refs:
        return out
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(refs))), thread_name_prefix="resolve") as pool:
        futures = {pool.submit(_head, stores, ref): key for key, ref in refs.items()}
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in done:
            if future.exception() is not None:
                for other in futures:
                    other.cancel()
                raise future.exception()  # type: ignore[misc]
    for future, key in futures.items():
        result = future.result()
        for value in wanted[key]:
            out[value] = result
    return out


def _head(stores: Stores, ref: Reference) -> Digested:
    client = stores.client(ref.registry)
    found = client.head_manifest(ref.repository, ref.identifier, mt.ACCEPT_ALL)
    if found is None:
        raise NotFoundError(f"resolve {ref}: no such image in {ref.registry}")
    media_type, digest, _ = found
    if ref.digest is not None and digest != ref.digest:
        raise NotFoundError(f"resolve {ref}: the registry answered with {digest}")
    return Digested(digest_url(ref, digest), ref.tag if ref.digest is None else None, media_type)
