"""Authentication flows of RegistryClient against the in-memory fake (Basic, bearer, identity tokens)."""

from __future__ import annotations

import io
import logging
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from cnbplatform.errors import UnauthorizedError
from cnbplatform.oci.registry import Credential
from cnbplatform.oci.registry.auth import covers, parse_challenges
from tests.oci.registry.conftest import ALICE, FakeRegistry, sha256

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}'
OCI = "application/vnd.oci.image.manifest.v1+json"


def test_parse_challenges_reads_quoted_params_and_several_schemes() -> None:
    parsed = parse_challenges(
        ['Bearer realm="https://a.test/token",service="reg, one",scope="repository:x:pull,push", Basic realm="b"']
    )
    assert [c.scheme for c in parsed] == ["bearer", "basic"]
    assert parsed[0].params == {
        "realm": "https://a.test/token",
        "service": "reg, one",
        "scope": "repository:x:pull,push",
    }
    assert parsed[1].params == {"realm": "b"}


def test_scope_coverage() -> None:
    assert covers(("repository:a:pull,push",), ("repository:a:pull",))
    assert not covers(("repository:a:pull",), ("repository:a:pull,push",))
    assert not covers(("repository:a:pull,push",), ("repository:b:pull",))


def test_basic_challenge_is_answered_with_credentials_and_then_sent_up_front() -> None:
    fake = FakeRegistry(auth="basic")
    fake.manifests[("app", "v1")] = (MANIFEST, OCI)
    with fake.client(credentials=ALICE) as client:
        client.get_manifest("app", "v1", [OCI])
        client.get_manifest("app", "v1", [OCI])
    manifest_gets = fake.requests("GET", "/manifests/")
    assert len(manifest_gets) == 2  # the /v2/ probe learnt the challenge; no 401 round trip per request
    assert all(r.headers["authorization"].startswith("Basic ") for r in manifest_gets)


def test_basic_without_credentials_is_unauthorized() -> None:
    fake = FakeRegistry(auth="basic")
    with fake.client() as client, pytest.raises(UnauthorizedError) as caught:
        client.get_manifest("team/app", "v1", [OCI])
    assert "unauthorized" in str(caught.value)
    assert "registry.example.test/team/app" in str(caught.value)


def test_wrong_basic_password_is_unauthorized_and_not_in_message() -> None:
    fake = FakeRegistry(auth="basic")
    with fake.client(credentials=Credential("alice", "wrong-pw")) as client, pytest.raises(UnauthorizedError) as c:
        client.ping()
    assert "unauthorized" in str(c.value) and "wrong-pw" not in str(c.value)


def test_bearer_token_is_cached_per_scope_and_reused() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.manifests[("one", "v1")] = (MANIFEST, OCI)
    fake.manifests[("two", "v1")] = (MANIFEST, OCI)
    with fake.client(credentials=ALICE) as client:
        for _ in range(3):
            client.get_manifest("one", "v1", [OCI])
        client.head_manifest("one", "v1", [OCI])
        client.get_manifest("two", "v1", [OCI])
        client.get_manifest("two", "v1", [OCI])
        assert client.token_fetches == 2
    scopes = [tuple(p.get_list("scope")) for p in fake.token_requests]
    assert scopes == [("repository:one:pull",), ("repository:two:pull",)]
    assert all(p.get("service") == "fake-registry" for p in fake.token_requests)
    for request in fake.requests("GET", "/manifests/"):
        assert request.headers["authorization"].startswith("Bearer tok-")


def test_push_token_covers_later_pulls_of_the_same_repository() -> None:
    fake = FakeRegistry(auth="bearer")
    data = b"layer bytes"
    with fake.client(credentials=ALICE) as client:
        client.upload_blob("app", sha256(data), len(data), lambda: io.BytesIO(data))
        assert client.blob_size("app", sha256(data)) == len(data)
        assert client.token_fetches == 1
    assert fake.token_requests[0].get_list("scope") == ["repository:app:pull,push"]


def test_token_is_fetched_again_once_when_the_registry_rejects_it() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.manifests[("app", "v1")] = (MANIFEST, OCI)
    with fake.client(credentials=ALICE) as client:
        client.get_manifest("app", "v1", [OCI])
        fake.tokens.clear()  # the registry forgets every token (as if they expired)
        client.get_manifest("app", "v1", [OCI])
        assert client.token_fetches == 2


def test_token_rejected_twice_is_unauthorized() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.manifests[("app", "v1")] = (MANIFEST, OCI)
    rejected = httpx.Response(
        401,
        json={"errors": [{"code": "UNAUTHORIZED", "message": "token revoked"}]},
        headers={"WWW-Authenticate": 'Bearer realm="https://auth.example.test/token",service="fake-registry"'},
    )
    fake.fail(lambda r: "/manifests/" in r.url.path, rejected, times=5)
    with fake.client(credentials=ALICE) as client, pytest.raises(UnauthorizedError) as caught:
        client.get_manifest("app", "v1", [OCI])
    assert "unauthorized: token revoked" in str(caught.value)
    assert len(fake.requests("GET", "/manifests/")) == 2  # one retry with a fresh token, no more


def test_token_server_refusing_credentials_is_unauthorized() -> None:
    fake = FakeRegistry(auth="bearer")
    with fake.client(credentials=Credential("alice", "nope")) as client, pytest.raises(UnauthorizedError) as c:
        client.get_manifest("app", "v1", [OCI])
    assert "unauthorized" in str(c.value) and "registry.example.test/app" in str(c.value)
    assert "nope" not in str(c.value)


def test_forbidden_is_denied() -> None:
    fake = FakeRegistry()
    fake.fail(lambda r: r.method == "PUT", httpx.Response(403, json={"errors": [{"code": "DENIED", "message": "no"}]}))
    with fake.client() as client, pytest.raises(UnauthorizedError) as caught:
        client.put_manifest("app", "v1", MANIFEST, OCI)
    assert "denied" in str(caught.value) and "registry.example.test/app" in str(caught.value)


def test_identity_token_is_exchanged_with_a_post() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.manifests[("app", "v1")] = (MANIFEST, OCI)
    with fake.client(credentials=Credential(identity_token="refresh-me")) as client:
        client.get_manifest("app", "v1", [OCI])
    posts = fake.requests("POST", "/token")
    assert len(posts) == 1
    form = httpx.QueryParams(posts[0].body.decode())
    assert form["grant_type"] == "refresh_token" and form["refresh_token"] == "refresh-me"
    assert form["scope"] == "repository:app:pull" and form["service"] == "fake-registry"
    assert "authorization" not in posts[0].headers


def test_registry_token_is_sent_as_is_without_token_fetch() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.tokens["given-token"] = {"repository:app:pull"}
    fake.manifests[("app", "v1")] = (MANIFEST, OCI)
    with fake.client(credentials=Credential(registry_token="given-token")) as client:
        client.get_manifest("app", "v1", [OCI])
        assert client.token_fetches == 0
    assert fake.requests("GET", "/manifests/")[0].headers["authorization"] == "Bearer given-token"


def test_mount_asks_for_pull_on_the_source_repository() -> None:
    fake = FakeRegistry(auth="bearer")
    fake.blobs[("base", sha256(b"x"))] = b"x"
    with fake.client(credentials=ALICE) as client:
        assert client.mount_blob("app", sha256(b"x"), "base") is True
    assert fake.token_requests[-1].get_list("scope") == ["repository:app:pull,push", "repository:base:pull"]


def test_logs_never_show_credentials_or_tokens(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeRegistry(auth="bearer")
    fake.manifests[("app", "v1")] = (MANIFEST, OCI)
    caplog.set_level(logging.DEBUG, logger="cnbplatform.http")
    with fake.client(credentials=ALICE) as client:
        client.get_manifest("app", "v1", [OCI])
        client.get_manifest("app", "v1", [OCI])
    text = caplog.text
    assert "GET https://registry.example.test/v2/app/manifests/v1" in text
    assert " 200 " in text and " 401 " in text
    secrets = ["s3cret-pw", ALICE.basic_header().split()[1], *fake.tokens]
    assert fake.tokens, "a token was issued, so the check below is meaningful"
    for secret in secrets:
        assert secret not in text
    assert "Bearer ***" in text and "Basic ***" in text


def test_credential_repr_is_redacted() -> None:
    text = repr(Credential("alice", "s3cret-pw", identity_token="idt", registry_token="rt"))
    assert "alice" in text
    assert "s3cret-pw" not in text and "idt" not in text and "'rt'" not in text


def test_parallel_uploads_share_one_token() -> None:
    fake = FakeRegistry(auth="bearer")
    blobs = [f"blob {i}".encode() * 1000 for i in range(12)]
    with fake.client(credentials=ALICE) as client, ThreadPoolExecutor(max_workers=6) as pool:
        list(
            pool.map(
                lambda data: client.upload_blob("app", sha256(data), len(data), lambda: io.BytesIO(data)),
                blobs,
            )
        )
        assert client.token_fetches == 1
    assert all(fake.blobs[("app", sha256(data))] == data for data in blobs)


def test_token_rejected_during_a_streamed_put_restarts_the_upload() -> None:
    fake = FakeRegistry(auth="bearer")
    data = b"z" * 5000
    opened: list[int] = []

    def opener() -> io.BytesIO:
        opened.append(1)
        if len(opened) == 1:
            fake.tokens.clear()  # the token expires after the session was opened, before the PUT
        return io.BytesIO(data)

    with fake.client(credentials=ALICE) as client:
        client.upload_blob("app", sha256(data), len(data), opener)
    assert fake.blobs[("app", sha256(data))] == data
    assert len(opened) == 2
    assert len(fake.requests("PUT", "/blobs/uploads/")) == 2  # the rejected PUT was not resent as is
    assert len(fake.token_requests) == 2
