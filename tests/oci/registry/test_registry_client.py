"""RegistryClient operations, retries, uploads and scheme choice against in-memory transports."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import BinaryIO

import httpx
import pytest

from cnbplatform.errors import DigestMismatchError, NotFoundError, RegistryError, UsageError
from cnbplatform.oci.digest import CHUNK
from cnbplatform.oci.registry import RegistryClient
from tests.oci.registry.conftest import ALICE, FakeRegistry, sha256

OCI = "application/vnd.oci.image.manifest.v1+json"
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": OCI}).encode()


def _is(method: str, part: str) -> Callable[[httpx.Request], bool]:
    return lambda r: r.method == method and part in r.url.path


def test_manifest_round_trip_and_digest(fake: FakeRegistry) -> None:
    with fake.client() as client:
        digest = client.put_manifest("app", "v1", MANIFEST, OCI)
        data, media_type, got = client.get_manifest("app", "v1", [OCI])
        assert (data, media_type, got) == (MANIFEST, OCI, digest)
        assert client.head_manifest("app", "v1", [OCI]) == (OCI, digest, len(MANIFEST))
        assert client.get_manifest("app", digest, [OCI])[0] == MANIFEST
        assert client.head_manifest("app", "missing", [OCI]) is None
        client.delete_manifest("app", digest)
        with pytest.raises(NotFoundError, match="MANIFEST_UNKNOWN"):
            client.get_manifest("app", digest, [OCI])
    assert digest == sha256(MANIFEST)
    assert fake.requests("PUT", "/manifests/v1")[0].headers["content-type"] == OCI


def test_manifest_by_digest_is_verified(fake: FakeRegistry) -> None:
    digest = sha256(MANIFEST)
    fake.manifests[("app", digest)] = (MANIFEST + b" ", OCI)
    with fake.client() as client, pytest.raises(DigestMismatchError, match="digest mismatch"):
        client.get_manifest("app", digest, [OCI])


def test_manifest_contradicting_its_docker_content_digest_is_refused(fake: FakeRegistry) -> None:
    wrong = httpx.Response(200, content=MANIFEST, headers={"Docker-Content-Digest": sha256(b"other")})
    fake.fail(_is("GET", "/manifests/"), wrong)
    with fake.client() as client, pytest.raises(DigestMismatchError):
        client.get_manifest("app", "v1", [OCI])


def test_oversized_manifest_is_refused(fake: FakeRegistry) -> None:
    fake.fail(_is("GET", "/manifests/"), httpx.Response(200, content=b"x" * (4 * 1024 * 1024 + 1)))
    with fake.client() as client, pytest.raises(RegistryError, match="larger than"):
        client.get_manifest("app", "v1", [OCI])


def test_retry_on_503_then_success(fake: FakeRegistry) -> None:
    fake.manifests[("app", "v1")] = (MANIFEST, OCI)
    fake.fail(_is("GET", "/manifests/"), httpx.Response(503), times=2)
    with fake.client(retries=3) as client:
        assert client.get_manifest("app", "v1", [OCI])[0] == MANIFEST
    assert len(fake.requests("GET", "/manifests/")) == 3


def test_429_retry_after_is_honoured(fake: FakeRegistry) -> None:
    fake.manifests[("app", "v1")] = (MANIFEST, OCI)
    fake.fail(_is("GET", "/manifests/"), httpx.Response(429, headers={"Retry-After": "0"}))
    with fake.client(retries=2, backoff=30.0) as client:  # the backoff would be 30 s; Retry-After says 0
        assert client.get_manifest("app", "v1", [OCI])[0] == MANIFEST


def test_retry_exhaustion_says_what_was_done(fake: FakeRegistry) -> None:
    body = {"errors": [{"code": "UNAVAILABLE", "message": "try later"}]}
    fake.fail(_is("GET", "/manifests/"), httpx.Response(503, json=body), times=10)
    with fake.client(retries=3) as client, pytest.raises(RegistryError) as caught:
        client.get_manifest("app", "v1", [OCI])
    assert str(caught.value) == "pull manifest registry.example.test/app:v1: UNAVAILABLE: try later after 3 attempts"


def test_connection_refused_exhaustion(fake: FakeRegistry) -> None:
    data = b"blob"
    fake.fail(_is("POST", "/blobs/uploads/"), httpx.ConnectError("[Errno 111] Connection refused"), times=10)
    with fake.client(retries=4) as client, pytest.raises(RegistryError) as caught:
        client.upload_blob("app", sha256(data), len(data), lambda: io.BytesIO(data))
    assert str(caught.value) == (
        f"push blob {sha256(data)} to registry.example.test/app: connection refused after 4 attempts"
    )


def test_read_timeout_is_retried(fake: FakeRegistry) -> None:
    fake.blobs[("app", sha256(b"abc"))] = b"abc"
    fake.fail(_is("HEAD", "/blobs/"), httpx.ReadTimeout("timed out"))
    with fake.client() as client:
        assert client.blob_size("app", sha256(b"abc")) == 3
        assert client.blob_size("app", sha256(b"zzz")) is None


def test_non_retryable_error_is_not_retried(fake: FakeRegistry) -> None:
    bad = httpx.Response(400, json={"errors": [{"code": "MANIFEST_INVALID", "message": "manifest invalid"}]})
    fake.fail(_is("PUT", "/manifests/"), bad, times=5)
    with fake.client() as client, pytest.raises(RegistryError, match=r"MANIFEST_INVALID: manifest invalid$"):
        client.put_manifest("app", "v1", MANIFEST, OCI)
    assert len(fake.requests("PUT", "/manifests/")) == 1


class RecordingTransport(httpx.BaseTransport):
    """Like MockTransport, but records how the request body arrived (piece by piece) before answering."""

    def __init__(self, handler: Callable[[httpx.Request], httpx.Response]) -> None:
        self.handler = handler
        self.pieces: dict[str, list[int]] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        pieces = [bytes(piece) for piece in request.stream]  # type: ignore[union-attr]
        self.pieces[f"{request.method} {request.url.path}"] = [len(p) for p in pieces]
        request._content = b"".join(pieces)
        return self.handler(request)


def test_monolithic_upload_streams_the_body_in_chunks(fake: FakeRegistry) -> None:
    data = os.urandom(3 * CHUNK + 123)
    transport = RecordingTransport(fake.handle)
    progress: list[int] = []
    with RegistryClient("registry.example.test", transport=transport, retries=2, backoff=0.001) as client:
        client.upload_blob("app", sha256(data), len(data), lambda: io.BytesIO(data), progress=progress.append)
    put = fake.requests("PUT", "/blobs/uploads/")[0]
    assert put.url.params["digest"] == sha256(data) and put.url.params["_state"] == "abc"
    assert put.headers["content-length"] == str(len(data))
    assert "transfer-encoding" not in put.headers
    sizes = next(v for k, v in transport.pieces.items() if k.startswith("PUT"))
    assert len(sizes) == 4 and max(sizes) <= CHUNK  # sent as pieces, never as one bytes object
    assert sum(progress) == len(data)
    assert fake.blobs[("app", sha256(data))] == data


def test_chunked_upload_patches_with_content_range(fake: FakeRegistry) -> None:
    data = os.urandom(2500)
    with fake.client() as client:
        client.upload_blob("app", sha256(data), len(data), lambda: io.BytesIO(data), chunk_size=1000)
    patches = fake.requests("PATCH")
    assert [p.headers["content-range"] for p in patches] == ["0-999", "1000-1999", "2000-2499"]
    assert [len(p.body) for p in patches] == [1000, 1000, 500]
    assert [p.url.params["_state"] for p in patches] == ["abc", "n1000", "n2000"]  # each next Location is used
    put = fake.requests("PUT")[0]
    assert put.url.params["digest"] == sha256(data) and put.body == b""
    assert put.url.params["_state"] == "n2500"
    assert fake.blobs[("app", sha256(data))] == data


def test_failed_upload_starts_over_with_a_new_stream(fake: FakeRegistry) -> None:
    data = os.urandom(5000)
    opened: list[int] = []

    @contextlib.contextmanager
    def opener() -> Iterator[BinaryIO]:
        opened.append(1)
        yield io.BytesIO(data)

    fake.fail(_is("PATCH", "/blobs/uploads/"), httpx.Response(500), times=1)
    progress: list[int] = []
    with fake.client() as client:
        client.upload_blob("app", sha256(data), len(data), opener, chunk_size=4096, progress=progress.append)
    assert len(opened) == 2
    assert len(fake.requests("POST", "/blobs/uploads/")) == 2
    assert sum(progress) == len(data)
    assert fake.blobs[("app", sha256(data))] == data


def test_short_source_is_a_digest_error_not_a_retry(fake: FakeRegistry) -> None:
    data = b"0123456789"
    with fake.client() as client, pytest.raises(DigestMismatchError, match="short"):
        client.upload_blob("app", sha256(data), len(data) + 5, lambda: io.BytesIO(data))
    assert len(fake.requests("POST", "/blobs/uploads/")) == 1


def test_wrong_digest_is_reported(fake: FakeRegistry) -> None:
    with fake.client() as client, pytest.raises(DigestMismatchError, match="DIGEST_INVALID"):
        client.upload_blob("app", sha256(b"other"), 4, lambda: io.BytesIO(b"data"))


def test_mount_created_or_fallen_back(fake: FakeRegistry) -> None:
    digest = sha256(b"shared")
    fake.blobs[("base", digest)] = b"shared"
    with fake.client() as client:
        assert client.mount_blob("app", digest, "base") is True
        assert fake.blobs[("app", digest)] == b"shared"
        assert client.mount_blob("app", sha256(b"absent"), "base") is False
    deletes = fake.requests("DELETE", "/blobs/uploads/")
    assert len(deletes) == 1 and not fake.uploads  # the session the 202 opened was cancelled


def test_open_blob_follows_redirect_without_leaking_authorization(
    fake: FakeRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cnbplatform.http")
    digest = sha256(b"payload" * 1000)
    fake.blobs[("storage", "obj1")] = b"payload" * 1000
    redirect = httpx.Response(307, headers={"Location": "https://storage.example.test/obj1?X-Amz-Signature=abc"})
    fake.fail(_is("GET", f"/blobs/{digest}"), redirect)
    fake.auth = "basic"
    with fake.client(credentials=ALICE) as client, client.open_blob("app", digest) as stream:
        assert stream.read() == b"payload" * 1000
    storage = [s for s in fake.seen if s.url.host == "storage.example.test"]
    assert len(storage) == 1 and "authorization" not in storage[0].headers
    assert fake.requests("GET", "/blobs/")[0].headers["accept-encoding"] == "identity"
    assert "> GET https://storage.example.test/obj1?X-Amz-Signature=redacted" in caplog.text
    assert "Signature=abc" not in caplog.text


def test_list_tags_follows_link_pages() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        if "last" not in request.url.params:
            link = '</v2/app/tags/list?n=2&last=b>; rel="next"'
            return httpx.Response(200, json={"name": "app", "tags": ["a", "b"]}, headers={"Link": link})
        assert request.url.params["last"] == "b"
        return httpx.Response(200, json={"name": "app", "tags": ["c"]})

    with RegistryClient("registry.example.test", transport=httpx.MockTransport(handler)) as client:
        assert client.list_tags("app") == ["a", "b", "c"]


def _scheme_recorder(https_error: Exception | None) -> tuple[list[str], httpx.MockTransport]:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.scheme} {request.url.path}")
        if request.url.scheme == "https" and https_error is not None:
            raise https_error
        return httpx.Response(200, json={"name": "app", "tags": []})

    return seen, httpx.MockTransport(handler)


def test_loopback_falls_back_to_http_once() -> None:
    seen, transport = _scheme_recorder(httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number"))
    with RegistryClient("127.0.0.1:5000", transport=transport, retries=1) as client:
        client.list_tags("app")
        client.list_tags("app")
    assert seen == ["https /v2/", "http /v2/", "http /v2/app/tags/list", "http /v2/app/tags/list"]


def test_remote_host_never_falls_back_to_http() -> None:
    seen, transport = _scheme_recorder(httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number"))
    client = RegistryClient("registry.example.test", transport=transport, retries=2, backoff=0.001)
    with client, pytest.raises(RegistryError, match="TLS handshake failed"):
        client.list_tags("app")
    assert all(s.startswith("https") for s in seen)


def test_insecure_host_falls_back_to_http() -> None:
    seen, transport = _scheme_recorder(httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number"))
    with RegistryClient("registry.example.test", transport=transport, insecure=True, retries=1) as client:
        client.list_tags("app")
    assert seen[-1] == "http /v2/app/tags/list"


def test_https_loopback_stays_https() -> None:
    seen, transport = _scheme_recorder(None)
    with RegistryClient("localhost:5000", transport=transport) as client:
        client.list_tags("app")
    assert seen == ["https /v2/", "https /v2/app/tags/list"]


def test_head_manifest_without_digest_header_falls_back_to_get(fake: FakeRegistry) -> None:
    fake.manifests[("app", "v1")] = (MANIFEST, OCI)
    fake.fail(_is("HEAD", "/manifests/"), httpx.Response(200, headers={"Content-Type": OCI}))
    with fake.client() as client:
        assert client.head_manifest("app", "v1", [OCI]) == (OCI, sha256(MANIFEST), len(MANIFEST))
    assert len(fake.requests("GET", "/manifests/")) == 1


def test_invalid_names_are_refused_before_any_request(fake: FakeRegistry) -> None:
    with fake.client() as client:
        with pytest.raises(UsageError, match="invalid repository name"):
            client.list_tags("../etc")
        with pytest.raises(UsageError, match="invalid tag or digest"):
            client.get_manifest("app", "v1/../x", [OCI])
    assert fake.seen == []


class _BrokenStream(httpx.SyncByteStream):
    def __iter__(self) -> Iterator[bytes]:
        yield b'{"schemaVersion":'
        raise httpx.ReadError("connection reset by peer")


def test_connection_lost_while_reading_a_manifest_is_retried(fake: FakeRegistry) -> None:
    fake.manifests[("app", "v1")] = (MANIFEST, OCI)
    fake.fail(_is("GET", "/manifests/"), httpx.Response(200, headers={"Content-Type": OCI}, stream=_BrokenStream()))
    with fake.client() as client:
        assert client.get_manifest("app", "v1", [OCI])[0] == MANIFEST
    assert len(fake.requests("GET", "/manifests/")) == 2
