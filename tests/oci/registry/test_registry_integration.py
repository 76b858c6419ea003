"""RegistryClient against real ``docker-registry`` (distribution 2.8) servers on 127.0.0.1.

Plain HTTP, TLS with a throw-away CA and htpasswd Basic auth, bearer tokens from a real token server,
and a registry that goes away in the middle of a push.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnbplatform.errors import DigestMismatchError, RegistryError, UnauthorizedError
from cnbplatform.oci.digest import verified_reader
from cnbplatform.oci.registry import Credential, RegistryClient, resolve_credential
from tests.oci.registry.conftest import manifest_bytes, sha256
from tests.support.registry import RunningRegistry, start_registry
from tests.support.token_server import TokenServer

pytestmark = pytest.mark.integration

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()


def _client(registry: RunningRegistry, **kwargs: object) -> RegistryClient:
    options: dict[str, object] = {"retries": 2, "backoff": 0.01, "timeout": 10.0}
    options.update(kwargs)
    return RegistryClient(registry.host, **options)  # type: ignore[arg-type]


def _push_image(client: RegistryClient, repo: str, tag: str, layer: bytes, chunk_size: int | None = None) -> str:
    client.upload_blob(repo, sha256(CONFIG), len(CONFIG), lambda: io.BytesIO(CONFIG))
    client.upload_blob(repo, sha256(layer), len(layer), lambda: io.BytesIO(layer), chunk_size=chunk_size)
    return client.put_manifest(repo, tag, manifest_bytes(CONFIG, [layer]), OCI_MANIFEST)


def _docker_config_env(tmp_path: Path, host: str, user: str, password: str) -> dict[str, str]:
    directory = tmp_path / "docker"
    directory.mkdir(exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return {"DOCKER_CONFIG": str(directory)}


def test_plain_http_push_pull_tags_and_mount(plain_registry: RunningRegistry) -> None:
    layer = os.urandom(300_000)
    small = os.urandom(1000)
    with _client(plain_registry) as client:
        client.ping()
        digest = _push_image(client, "app", "v1", layer, chunk_size=64 * 1024)  # chunked PATCHes
        client.upload_blob("app", sha256(small), len(small), lambda: io.BytesIO(small))  # monolithic PUT
        assert client.blob_size("app", sha256(layer)) == len(layer)
        assert client.blob_size("app", sha256(small)) == len(small)
        assert client.blob_size("app", sha256(b"never pushed")) is None

        data, media_type, got = client.get_manifest("app", "v1", [OCI_MANIFEST])
        assert data == manifest_bytes(CONFIG, [layer]) and media_type == OCI_MANIFEST and got == digest
        assert client.get_manifest("app", digest, [OCI_MANIFEST])[0] == data
        assert client.head_manifest("app", "v1", [OCI_MANIFEST]) == (OCI_MANIFEST, digest, len(data))
        assert client.head_manifest("app", "v9", [OCI_MANIFEST]) is None
        client.put_manifest("app", "v2", data, OCI_MANIFEST)
        assert sorted(client.list_tags("app")) == ["v1", "v2"]

        with client.open_blob("app", sha256(layer)) as raw, verified_reader(raw, sha256(layer), len(layer)) as f:
            assert f.read() == layer

        assert client.mount_blob("other", sha256(layer), "app") is True
        assert client.blob_size("other", sha256(layer)) == len(layer)
        assert client.mount_blob("other", sha256(b"absent"), "app") is False

        client.delete_manifest("app", digest)
        assert client.head_manifest("app", digest, [OCI_MANIFEST]) is None
    assert "http://" in plain_registry.url  # the client found plain HTTP on its own (loopback fallback)


def test_corrupted_blob_in_storage_is_caught_by_the_verifying_reader(plain_registry: RunningRegistry) -> None:
    layer = os.urandom(10_000)
    with _client(plain_registry) as client:
        client.upload_blob("app", sha256(layer), len(layer), lambda: io.BytesIO(layer))
        path = plain_registry.blob_path(sha256(layer))
        path.write_bytes(b"X" + path.read_bytes()[1:])
        with client.open_blob("app", sha256(layer)) as raw, pytest.raises(DigestMismatchError):
            verified_reader(raw, sha256(layer), len(layer)).read()


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    registry = start_registry(tmp_path / "tls", tls=True, htpasswd=("pusher", "correct horse"))
    yield registry
    registry.stop()


def test_tls_basic_auth_with_docker_config(
    tls_registry: RunningRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cnbplatform.http")
    env = _docker_config_env(tmp_path, tls_registry.host, "pusher", "correct horse")
    credential = resolve_credential(tls_registry.host, env)
    assert credential is not None
    layer = os.urandom(50_000)
    with _client(tls_registry, credentials=credential, ca_file=tls_registry.ca_file) as client:
        digest = _push_image(client, "secure/app", "v1", layer)
        assert client.get_manifest("secure/app", "v1", [OCI_MANIFEST])[2] == digest
    assert f"GET https://{tls_registry.host}/v2/secure/app/manifests/v1" in caplog.text
    assert "http://" not in caplog.text
    assert "correct horse" not in caplog.text


def test_tls_wrong_password_is_unauthorized(tls_registry: RunningRegistry, tmp_path: Path) -> None:
    env = _docker_config_env(tmp_path, tls_registry.host, "pusher", "wrong")
    with (
        _client(
            tls_registry, credentials=resolve_credential(tls_registry.host, env), ca_file=tls_registry.ca_file
        ) as client,
        pytest.raises(UnauthorizedError) as caught,
    ):
        client.get_manifest("secure/app", "v1", [OCI_MANIFEST])
    assert "unauthorized" in str(caught.value) and f"{tls_registry.host}/secure/app" in str(caught.value)
    assert "wrong" not in str(caught.value)


def test_tls_with_the_wrong_ca_is_refused(tls_registry: RunningRegistry, tmp_path: Path) -> None:
    from tests.support.pki import make_ca

    other_ca = make_ca(tmp_path / "other-ca")
    credential = Credential("pusher", "correct horse")
    client = _client(tls_registry, credentials=credential, ca_file=other_ca.cert_file)
    with client, pytest.raises(RegistryError, match="TLS certificate does not verify"):
        client.ping()


@pytest.fixture
def token_registry(tmp_path: Path, token_server: TokenServer) -> Iterator[RunningRegistry]:
    registry = start_registry(tmp_path / "bearer", token_auth=token_server)
    yield registry
    registry.stop()


def test_bearer_flow_with_a_real_token_server(
    token_registry: RunningRegistry, token_server: TokenServer, tmp_path: Path
) -> None:
    env = _docker_config_env(tmp_path, token_registry.host, "builder", "token-pass")
    layer = os.urandom(20_000)
    with _client(token_registry, credentials=resolve_credential(token_registry.host, env)) as client:
        digest = _push_image(client, "team/app", "v1", layer)
        for _ in range(3):
            assert client.get_manifest("team/app", "v1", [OCI_MANIFEST])[2] == digest
        assert client.list_tags("team/app") == ["v1"]
        client.upload_blob("team/other", sha256(CONFIG), len(CONFIG), lambda: io.BytesIO(CONFIG))
        assert client.mount_blob("team/other", sha256(layer), "team/app") is True
        fetched = client.token_fetches
    scopes = [request.scopes for request in token_server.requests]
    assert scopes == [
        ("repository:team/app:pull,push",),
        ("repository:team/other:pull,push",),
        ("repository:team/other:pull,push", "repository:team/app:pull"),
    ]
    assert fetched == len(token_server.requests) == 3  # one token per repository+actions, reused after
    assert all(r.user == "builder" and r.service == token_server.service for r in token_server.requests)
    assert '"GET /v2/ HTTP/1.1" 401' in token_registry.log_text()  # the challenge came first


def test_bearer_wrong_password_is_unauthorized(token_registry: RunningRegistry, token_server: TokenServer) -> None:
    client = _client(token_registry, credentials=Credential("builder", "bad"))
    with client, pytest.raises(UnauthorizedError, match="unauthorized") as caught:
        client.get_manifest("team/app", "v1", [OCI_MANIFEST])
    assert f"{token_registry.host}/team/app" in str(caught.value)


def test_bearer_token_without_push_is_unauthorized(token_registry: RunningRegistry, token_server: TokenServer) -> None:
    token_server.policy = lambda user, kind, name, actions: [a for a in actions if a == "pull"]
    client = _client(token_registry, credentials=Credential("builder", "token-pass"))
    with client, pytest.raises(UnauthorizedError, match="unauthorized"):
        client.upload_blob("team/app", sha256(CONFIG), len(CONFIG), lambda: io.BytesIO(CONFIG))
    assert len(token_server.requests) == 2  # the first token, then one fresh try after the 401


def test_identity_token_flow(token_registry: RunningRegistry, token_server: TokenServer) -> None:
    token_server.refresh_tokens["refresh-123"] = "builder"
    with _client(token_registry, credentials=Credential(identity_token="refresh-123")) as client:
        client.upload_blob("team/app", sha256(CONFIG), len(CONFIG), lambda: io.BytesIO(CONFIG))
        assert client.blob_size("team/app", sha256(CONFIG)) == len(CONFIG)
    assert [(r.method, r.user) for r in token_server.requests] == [("POST", "builder")]


def test_registry_down_then_back(plain_registry: RunningRegistry) -> None:
    data = os.urandom(100_000)
    with _client(plain_registry, retries=2) as client:
        client.ping()
        plain_registry.stop()
        with pytest.raises(RegistryError) as caught:
            client.upload_blob("app", sha256(data), len(data), lambda: io.BytesIO(data))
        assert str(caught.value) == (
            f"push blob {sha256(data)} to {plain_registry.host}/app: connection refused after 2 attempts"
        )
        plain_registry.start()
        client.upload_blob("app", sha256(data), len(data), lambda: io.BytesIO(data))
        assert client.blob_size("app", sha256(data)) == len(data)


def test_registry_stopped_mid_push_upload_starts_over(plain_registry: RunningRegistry) -> None:
    data = os.urandom(200_000)
    opened: list[int] = []
    restarted = threading.Event()

    def opener() -> io.BytesIO:
        opened.append(1)
        if len(opened) == 1:  # the upload session exists; now the registry goes away for a moment
            plain_registry.stop()

            def back() -> None:
                plain_registry.start()
                restarted.set()

            threading.Timer(0.3, back).start()
        return io.BytesIO(data)

    with _client(plain_registry, retries=6, backoff=0.1) as client:
        client.upload_blob("app", sha256(data), len(data), opener)
        assert restarted.wait(10)
        assert client.blob_size("app", sha256(data)) == len(data)
    assert len(opened) >= 2  # the source was opened again for the new attempt
