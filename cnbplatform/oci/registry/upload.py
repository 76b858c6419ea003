"""Blob upload (OCI Distribution Spec v1.1, "Pushing blobs": monolithic POST-then-PUT and chunked PATCH).

One call of :func:`upload_blob` is one attempt: it opens a fresh upload session and a fresh source
stream, so the retry loop around it starts over cleanly. Bodies are streamed from the source in
:data:`~cnbplatform.oci.digest.CHUNK`-sized pieces; a blob is never held in memory whole.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, BinaryIO, cast

import httpx

from cnbplatform.errors import DigestMismatchError
from cnbplatform.oci.digest import CHUNK
from cnbplatform.oci.registry.auth import repository_scope
from cnbplatform.oci.registry.transport import Failure

if TYPE_CHECKING:
    from cnbplatform.oci.registry.client import RegistryClient

Opener = Callable[[], AbstractContextManager[BinaryIO]] | Callable[[], BinaryIO]
_OCTET = "application/octet-stream"


class Progress:
    """Forwards byte counts to the caller's callback and can take back what one attempt reported."""

    def __init__(self, callback: Callable[[int], None] | None) -> None:
        self._callback = callback
        self.reported = 0

    def add(self, count: int) -> None:
        if self._callback is not None and count:
            self._callback(count)
        self.reported += count

    def rewind(self) -> None:
        if self.reported:
            self.add(-self.reported)


@contextlib.contextmanager
def _open(opener: Opener) -> Iterator[BinaryIO]:
    """Accept an opener returning either a stream or a context manager that yields one."""
    opened: object = opener()
    if hasattr(opened, "read"):
        stream = cast(BinaryIO, opened)
        try:
            yield stream
        finally:
            stream.close()
    else:
        with cast(AbstractContextManager[BinaryIO], opened) as managed:
            yield managed


def _body(stream: BinaryIO, count: int, progress: Progress, *, last: bool) -> Iterator[bytes]:
    """Exactly *count* bytes of *stream*, in pieces of at most CHUNK, reporting progress as they go.

    With *last*, the source must end right there: a longer source is not the blob that was declared.
    """
    left = count
    while left > 0:
        piece = stream.read(min(CHUNK, left))
        if not piece:
            raise Failure(f"the blob source ended {left} bytes short of its declared size", error=DigestMismatchError)
        left -= len(piece)
        progress.add(len(piece))
        yield piece
    if last and stream.read(1):
        raise Failure("the blob source is longer than its declared size", error=DigestMismatchError)


def _location(response: httpx.Response) -> httpx.URL:
    value = response.headers.get("location")
    if not value:
        raise Failure(f"the registry answered {response.status_code} without a Location for the upload")
    return response.url.join(value)


def push_attempt(
    client: RegistryClient,
    repo: str,
    digest: str,
    size: int,
    opener: Opener,
    *,
    chunk_size: int | None,
    progress: Progress,
) -> None:
    """One attempt at pushing a blob (see :meth:`RegistryClient.upload_blob`), from a new session."""
    progress.rewind()
    scopes = (repository_scope(repo, "pull", "push"),)
    with contextlib.closing(client.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=scopes, ok=(202,))) as started:
        location = _location(started)
    with _open(opener) as stream:
        headers = {"Content-Type": _OCTET, "Content-Length": str(size)}
        body: Callable[[], Iterator[bytes]] = lambda: _body(stream, size, progress, last=True)  # noqa: E731
        if chunk_size is not None:
            location = _patch_chunks(client, location, scopes, stream, size, chunk_size, progress)
            headers["Content-Length"] = "0"
            body = lambda: iter(())  # noqa: E731
        with contextlib.closing(
            client.request(
                "PUT",
                location.copy_add_param("digest", digest),
                scopes=scopes,
                ok=(201, 204),
                headers=headers,
                content=body,
                replayable=False,
            )
        ) as done:
            stored = done.headers.get("docker-content-digest")
    if stored and stored != digest:
        raise Failure(f"the registry stored {stored}", error=DigestMismatchError)


def _patch_chunks(
    client: RegistryClient,
    location: httpx.URL,
    scopes: tuple[str, ...],
    stream: BinaryIO,
    size: int,
    chunk_size: int,
    progress: Progress,
) -> httpx.URL:
    """``PATCH`` the blob in *chunk_size* pieces with ``Content-Range: <start>-<end>`` (inclusive)."""
    offset = 0
    if size == 0 and stream.read(1):
        raise Failure("the blob source is longer than its declared size", error=DigestMismatchError)
    while offset < size:
        count = min(chunk_size, size - offset)
        last = offset + count == size
        headers = {
            "Content-Type": _OCTET,
            "Content-Length": str(count),
            "Content-Range": f"{offset}-{offset + count - 1}",
        }
        with contextlib.closing(
            client.request(
                "PATCH",
                location,
                scopes=scopes,
                ok=(202,),
                headers=headers,
                content=lambda n=count, end=last: _body(stream, n, progress, last=end),  # type: ignore[misc]
                replayable=False,
            )
        ) as response:
            location = _location(response)
            accepted = response.headers.get("range")
        offset += count
        if accepted and accepted.rpartition("-")[2] != str(offset - 1):
            raise Failure(f"the registry holds range {accepted} of the upload, expected 0-{offset - 1}", retryable=True)
    return location
