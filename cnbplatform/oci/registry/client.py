"""A client for one OCI registry (OCI Distribution Spec v1.1, "API" section).

It speaks bytes, digests and strings only: what a manifest means is the caller's business. Every call is
one retried operation whose failure is raised as a one-line :class:`~cnbplatform.errors.CnbError` naming
what was being done. The client is safe to share between threads.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

import httpx

from cnbplatform.errors import CnbError, DigestMismatchError, RegistryError, UsageError
from cnbplatform.oci.digest import is_digest, sha256_bytes, validate_digest, verify_bytes
from cnbplatform.oci.registry.auth import Authenticator, Scopes, repository_scope
from cnbplatform.oci.registry.credentials import Credential
from cnbplatform.oci.registry.transport import (
    Endpoint,
    Failure,
    ResumingReader,
    failure_from_response,
    read_limited,
    with_retries,
)
from cnbplatform.oci.registry.upload import Opener, Progress, push_attempt

T = TypeVar("T")
MANIFEST_LIMIT = 4 * 1024 * 1024
TAGS_PAGE_LIMIT = 16 * 1024 * 1024
MAX_TAG_PAGES = 10_000
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_LINK_NEXT = re.compile(r'<([^>]*)>\s*;[^,]*rel="?next"?')


def _media_type(header: str | None, data: bytes) -> str:
    value = (header or "").split(";", 1)[0].strip()
    if value and value not in ("application/json", "text/plain", "application/octet-stream"):
        return value
    try:
        declared = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return declared if isinstance(declared, str) and declared else value


class RegistryClient:
    """Talks to one registry host. See the module docstring; each method cites its API endpoint."""

    def __init__(
        self,
        registry: str,
        *,
        credentials: Credential | None = None,
        insecure: bool = False,
        ca_file: Path | None = None,
        transport: httpx.BaseTransport | None = None,
        retries: int = 4,
        backoff: float = 0.25,
        timeout: float = 60.0,
        user_agent: str = "cnb/0.1",
    ) -> None:
        self.registry = registry
        self.retries = retries
        self.backoff = backoff
        self._endpoint = Endpoint(
            registry, insecure=insecure, ca_file=ca_file, transport=transport, timeout=timeout, user_agent=user_agent
        )
        self._auth = Authenticator(
            registry, credentials, lambda request: self._endpoint.send(request), self._endpoint.build
        )

    # -- plumbing ---------------------------------------------------------------------------------

    def close(self) -> None:
        self._endpoint.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def token_fetches(self) -> int:
        """How many bearer tokens were fetched so far (for tests and ``-v`` diagnostics)."""
        return self._auth.token_fetches

    def _call(self, action: str, attempt: Callable[[], T]) -> T:
        return with_retries(action, attempt, retries=self.retries, backoff=self.backoff)

    def _where(self, repo: str) -> str:
        if not _REPO_RE.match(repo) or len(repo) > 255:
            raise UsageError(f"invalid repository name {repo!r} for {self.registry}")
        return f"{self.registry}/{repo}"

    def _url(self, path_or_url: str | httpx.URL) -> httpx.URL:
        base = self._endpoint.base(self._auth.learn)
        return httpx.URL(base).join(path_or_url)

    def request(
        self,
        method: str,
        path_or_url: str | httpx.URL,
        *,
        scopes: Scopes,
        ok: Sequence[int],
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: Callable[[], bytes | Iterator[bytes]] | None = None,
        stream: bool = False,
        replayable: bool = True,
        follow: bool = False,
    ) -> httpx.Response:
        """One authenticated request; statuses outside *ok* raise :class:`Failure`.

        A 401 is answered once with a fresh token; when the body is a one-shot stream (``replayable``
        false) the attempt is failed as retryable instead, so the whole operation starts over.
        """
        url = self._url(path_or_url)
        sent = self._auth.header(scopes)
        response = self._send(method, url, sent, headers, params, content, stream, follow)
        if response.status_code == 401:
            with closing(response):
                renewed = self._auth.after_unauthorized(response, scopes, sent)
                if renewed is not None and not replayable:
                    raise Failure("the registry asked to authenticate again", retryable=True)
                if renewed is None:
                    raise failure_from_response(response)
            response = self._send(method, url, renewed, headers, params, content, stream, follow)
        if response.status_code not in ok:
            with closing(response):
                raise failure_from_response(response)
        return response

    def _send(
        self,
        method: str,
        url: httpx.URL,
        authorization: str | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        content: Callable[[], bytes | Iterator[bytes]] | None,
        stream: bool,
        follow: bool,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if authorization is not None:
            all_headers["Authorization"] = authorization
        body = content() if content is not None else None
        request = self._endpoint.build(method, url, headers=all_headers, params=params, content=body)
        return self._endpoint.send(request, stream=stream, follow=follow)

    # -- API ----------------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/`` with credentials: checks the registry answers and accepts us (like ``docker login``)."""
        self._call(
            f"contact registry {self.registry}", lambda: self.request("GET", "/v2/", scopes=(), ok=(200,)).close()
        )

    def get_manifest(self, repo: str, reference: str, accept: Sequence[str]) -> tuple[bytes, str, str]:
        """``GET /v2/<name>/manifests/<reference>``: (bytes, media type, digest), digest-checked."""
        where = self._where(repo)
        action = f"pull manifest {where}{'@' if is_digest(reference) else ':'}{reference}"
        self._check_reference(reference)
        scopes = (repository_scope(repo, "pull"),)

        def attempt() -> tuple[bytes, str, str]:
            headers = {"Accept": ", ".join(accept)} if accept else {}
            with closing(
                self.request(
                    "GET",
                    f"/v2/{repo}/manifests/{reference}",
                    scopes=scopes,
                    ok=(200,),
                    headers=headers,
                    stream=True,
                    follow=True,
                )
            ) as response:
                data = read_limited(response, MANIFEST_LIMIT)
                return (
                    data,
                    _media_type(response.headers.get("content-type"), data),
                    self._digest_of(data, reference, response.headers.get("docker-content-digest"), action),
                )

        return self._call(action, attempt)

    @staticmethod
    def _digest_of(data: bytes, reference: str, header: str | None, action: str) -> str:
        if is_digest(reference):
            verify_bytes(data, reference, action.split(" ", 1)[1])
            return reference
        if header and is_digest(header):
            verify_bytes(data, header, action.split(" ", 1)[1])
            return header if header.startswith("sha256:") else sha256_bytes(data)
        return sha256_bytes(data)

    def _check_reference(self, reference: str) -> None:
        if not (_TAG_RE.match(reference) or is_digest(reference)):
            raise UsageError(f"invalid tag or digest {reference!r} for {self.registry}")

    def head_manifest(self, repo: str, reference: str, accept: Sequence[str]) -> tuple[str, str, int] | None:
        """``HEAD /v2/<name>/manifests/<reference>``: (media type, digest, size), None when absent."""
        where = self._where(repo)
        self._check_reference(reference)
        action = f"check manifest {where}{'@' if is_digest(reference) else ':'}{reference}"
        scopes = (repository_scope(repo, "pull"),)
        headers = {"Accept": ", ".join(accept)} if accept else {}

        def attempt() -> tuple[str, str, int] | bool | None:
            response = self.request(
                "HEAD", f"/v2/{repo}/manifests/{reference}", scopes=scopes, ok=(200, 404), headers=headers, follow=True
            )
            with closing(response):
                response.read()  # a HEAD answer has no body: reading it lets the connection be reused
                if response.status_code == 404:
                    return None
                digest = response.headers.get("docker-content-digest", "")
                size = response.headers.get("content-length", "")
                media_type = response.headers.get("content-type", "").split(";", 1)[0].strip()
            if is_digest(digest) and size.isdigit() and media_type:
                return media_type, digest, int(size)
            return False  # the registry did not say enough: ask with GET instead

        found = self._call(action, attempt)
        if isinstance(found, tuple) or found is None:
            return found
        data, media_type, digest = self.get_manifest(repo, reference, accept)
        return media_type, digest, len(data)

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        """``PUT /v2/<name>/manifests/<reference>``; returns the manifest's digest."""
        where = self._where(repo)
        self._check_reference(reference)
        action = f"push manifest {where}{'@' if is_digest(reference) else ':'}{reference}"
        if len(data) > MANIFEST_LIMIT:
            raise UsageError(f"{action}: the manifest is larger than {MANIFEST_LIMIT} bytes")
        digest = sha256_bytes(data) if not is_digest(reference) else reference
        if is_digest(reference):
            verify_bytes(data, reference, f"manifest {where}@{reference}")
        scopes = (repository_scope(repo, "pull", "push"),)

        def attempt() -> str:
            with closing(
                self.request(
                    "PUT",
                    f"/v2/{repo}/manifests/{reference}",
                    scopes=scopes,
                    ok=(200, 201, 202),
                    headers={"Content-Type": media_type},
                    content=lambda: data,
                )
            ) as response:
                echoed = response.headers.get("docker-content-digest")
            if echoed and echoed.startswith("sha256:") and echoed != digest:
                raise Failure(f"the registry stored digest {echoed}, expected {digest}", error=DigestMismatchError)
            return digest

        return self._call(action, attempt)

    def delete_manifest(self, repo: str, digest: str) -> None:
        """``DELETE /v2/<name>/manifests/<digest>``."""
        where = self._where(repo)
        validate_digest(digest)
        scopes = (repository_scope(repo, "delete"),)
        self._call(
            f"delete manifest {where}@{digest}",
            lambda: self.request("DELETE", f"/v2/{repo}/manifests/{digest}", scopes=scopes, ok=(200, 202, 204)).close(),
        )

    def blob_size(self, repo: str, digest: str) -> int | None:
        """``HEAD /v2/<name>/blobs/<digest>``: the blob's size, None when the repository lacks it."""
        where = self._where(repo)
        validate_digest(digest)
        scopes = (repository_scope(repo, "pull"),)

        def attempt() -> int | None:
            response = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=scopes, ok=(200, 404), follow=True)
            with closing(response):
                response.read()  # no body: reading it lets the connection be reused
                if response.status_code == 404:
                    return None
                size = response.headers.get("content-length", "")
            if not size.isdigit():
                raise Failure("the registry did not say the blob's size")
            return int(size)

        return self._call(f"check blob {digest} in {where}", attempt)

    @contextmanager
    def open_blob(self, repo: str, digest: str, size: int | None = None) -> Iterator[BinaryIO]:
        """``GET /v2/<name>/blobs/<digest>``, redirects followed; the bytes are NOT verified here.

        A connection that drops in the middle of the body, or a body that ends before *size* bytes (or its
        ``Content-Length``), is asked for again from where it stopped (:class:`ResumingReader`), within the
        client's retry budget."""
        where = self._where(repo)
        validate_digest(digest)
        action = f"pull blob {digest} from {where}"
        scopes = (repository_scope(repo, "pull"),)

        def get(offset: int) -> httpx.Response:
            headers = {"Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
            path = f"/v2/{repo}/blobs/{digest}"
            return self.request(
                "GET",
                path,
                scopes=scopes,
                ok=(200, 206) if offset else (200,),
                headers=headers,
                stream=True,
                follow=True,
            )

        response = self._call(action, lambda: get(0))
        reader = ResumingReader(response, get, action, size=size, retries=self.retries, backoff=self.backoff)
        try:
            yield cast(BinaryIO, io.BufferedReader(reader, buffer_size=1024 * 1024))
        finally:
            reader.close()

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """``POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>``: True when mounted (201)."""
        where, source = self._where(repo), self._where(from_repo)
        validate_digest(digest)
        scopes = (repository_scope(repo, "pull", "push"), repository_scope(from_repo, "pull"))

        def attempt() -> bool:
            with closing(
                self.request(
                    "POST",
                    f"/v2/{repo}/blobs/uploads/",
                    scopes=scopes,
                    ok=(201, 202),
                    params={"mount": digest, "from": from_repo},
                )
            ) as response:
                mounted: bool = response.status_code == 201
                location = response.headers.get("location")
            if not mounted and location:
                self.cancel_upload(repo, response.url.join(location))
            return mounted

        return self._call(f"mount blob {digest} from {source} into {where}", attempt)

    def cancel_upload(self, repo: str, location: httpx.URL) -> None:
        """``DELETE`` an upload session, best effort (the registry purges stale ones anyway)."""
        with suppress(Failure, CnbError):
            self.request(
                "DELETE", location, scopes=(repository_scope(repo, "pull", "push"),), ok=(204, 200, 202, 404)
            ).close()

    def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        opener: Opener,
        *,
        chunk_size: int | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Push a blob: ``POST .../blobs/uploads/`` then one streamed ``PUT`` or ``PATCH`` chunks.

        *progress* receives byte counts as they are sent; when a failed attempt starts over it first
        receives the negative of what it was told so far, so a running sum stays true.
        """
        where = self._where(repo)
        validate_digest(digest)
        if chunk_size is not None and chunk_size <= 0:
            raise UsageError(f"push blob {digest} to {where}: chunk size must be positive")
        if size < 0:
            raise UsageError(f"push blob {digest} to {where}: negative size {size}")
        tracker = Progress(progress)
        self._call(
            f"push blob {digest} to {where}",
            lambda: push_attempt(self, repo, digest, size, opener, chunk_size=chunk_size, progress=tracker),
        )

    def list_tags(self, repo: str) -> list[str]:
        """``GET /v2/<name>/tags/list``, following ``Link: <...>; rel="next"`` pages."""
        where = self._where(repo)
        scopes = (repository_scope(repo, "pull"),)
        tags: list[str] = []
        url: str | httpx.URL = f"/v2/{repo}/tags/list"
        for _ in range(MAX_TAG_PAGES):
            page_url = url

            def attempt(page_url: str | httpx.URL = page_url) -> tuple[list[str], httpx.URL | None]:
                with closing(self.request("GET", page_url, scopes=scopes, ok=(200,), stream=True)) as response:
                    body = read_limited(response, TAGS_PAGE_LIMIT)
                    link = _LINK_NEXT.search(response.headers.get("link", ""))
                    following = response.url.join(link.group(1)) if link else None
                try:
                    page: Any = json.loads(body).get("tags") or []
                except (ValueError, AttributeError) as exc:
                    raise Failure("the registry answered with malformed JSON") from exc
                if not isinstance(page, list) or not all(isinstance(t, str) for t in page):
                    raise Failure("the registry answered with a malformed tag list")
                return page, following

            page, following = self._call(f"list tags of {where}", attempt)
            tags.extend(page)
            if following is None:
                return tags
            url = following
        raise RegistryError(f"list tags of {where}: more than {MAX_TAG_PAGES} pages")
