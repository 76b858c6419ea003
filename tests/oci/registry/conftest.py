"""Fixtures for the registry client tests: an in-memory registry behind ``httpx.MockTransport``.

:class:`FakeRegistry` implements just enough of the OCI distribution API (blobs, uploads, manifests,
tags, mounts) plus Basic or bearer authentication to exercise the client without a network. Tests can
inject failures with :meth:`FakeRegistry.fail` and read every request the client made.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from cnbplatform.oci.registry import Credential, RegistryClient
from tests.support.registry import RunningRegistry, start_registry
from tests.support.token_server import TokenServer

REALM = "https://auth.example.test/token"
SERVICE = "fake-registry"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"code": code, "message": message}]}, headers=headers)


@dataclass
class Seen:
    method: str
    url: httpx.URL
    headers: httpx.Headers
    body: bytes


@dataclass
class FakeRegistry:
    """An in-memory registry. ``auth`` is None, "basic" or "bearer"."""

    auth: str | None = None
    users: dict[str, str] = field(default_factory=lambda: {"alice": "s3cret-pw"})
    blobs: dict[tuple[str, str], bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)
    uploads: dict[str, bytearray] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    token_requests: list[httpx.QueryParams] = field(default_factory=list)
    tokens: dict[str, set[str]] = field(default_factory=dict)
    failures: list[tuple[Callable[[httpx.Request], bool], httpx.Response | Exception]] = field(default_factory=list)
    mount_allowed: bool = True

    def fail(self, when: Callable[[httpx.Request], bool], answer: httpx.Response | Exception, times: int = 1) -> None:
        """Answer the next *times* requests matching *when* with *answer* (a response or a raised error)."""
        self.failures.extend([(when, answer)] * times)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, **kwargs: object) -> RegistryClient:
        options: dict[str, object] = {"transport": self.transport(), "retries": 3, "backoff": 0.001}
        options.update(kwargs)
        return RegistryClient("registry.example.test", **options)  # type: ignore[arg-type]

    def requests(self, method: str, path_part: str = "") -> list[Seen]:
        return [s for s in self.seen if s.method == method and path_part in s.url.path]

    # -- the handler ------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(Seen(request.method, request.url, request.headers, request.content))
        for index, (when, answer) in enumerate(self.failures):
            if when(request):
                del self.failures[index]
                if isinstance(answer, Exception):
                    raise answer
                return answer
        if request.url.host == "auth.example.test":
            return self._token(request)
        if request.url.host == "storage.example.test":
            return httpx.Response(200, content=self.blobs[("storage", request.url.path.strip("/"))])
        denied = self._check_auth(request)
        if denied is not None:
            return denied
        return self._route(request)

    def _scope_for(self, request: httpx.Request) -> str | None:
        match = re.match(r"^/v2/(.+?)/(blobs|manifests|tags)/", request.url.path)
        if not match:
            return None
        write = request.method in ("POST", "PUT", "PATCH", "DELETE")
        return f"repository:{match.group(1)}:{'pull,push' if write else 'pull'}"

    def _check_auth(self, request: httpx.Request) -> httpx.Response | None:
        header = request.headers.get("authorization", "")
        if self.auth == "basic":
            expected = {"Basic " + base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in self.users.items()}
            if header not in expected:
                return _error(
                    401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": 'Basic realm="fake"'}
                )
        if self.auth == "bearer":
            scope = self._scope_for(request)
            granted = self.tokens.get(header.removeprefix("Bearer "), None) if header.startswith("Bearer ") else None
            needed = [scope] if scope else []
            if "mount" in request.url.params and self.mount_allowed:
                needed.append(f"repository:{request.url.params['from']}:pull")
            if granted is None or not all(n in granted or n.replace(":pull", ":pull,push") in granted for n in needed):
                challenge = f'Bearer realm="{REALM}",service="{SERVICE}"' + (f',scope="{scope}"' if scope else "")
                return _error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge})
        return None

    def _token(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            params = httpx.QueryParams(request.content.decode())
            scopes = params.get("scope", "").split()
        else:
            params = request.url.params
            scopes = params.get_list("scope")
        self.token_requests.append(params)
        header = request.headers.get("authorization", "")
        users_ok = {"Basic " + base64.b64encode(f"{u}:{p}".encode()).decode() for u, p in self.users.items()}
        if request.method == "GET" and header and header not in users_ok:
            return httpx.Response(401, json={"details": "bad creds"})
        if request.method == "POST" and params.get("refresh_token") != "refresh-me":
            return httpx.Response(401, json={"error": "invalid_grant"})
        token = "tok-" + secrets.token_hex(8)
        self.tokens[token] = set(scopes)
        return httpx.Response(200, json={"access_token": token, "expires_in": 300})

    def _route(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/v2/":
            return httpx.Response(200, json={})
        if m := re.match(r"^/v2/(.+)/blobs/uploads/(\w+)$", path):
            return self._upload_step(request, m.group(1), m.group(2))
        if m := re.match(r"^/v2/(.+)/blobs/uploads/$", path):
            repo = m.group(1)
            if "mount" in request.url.params:
                key = (request.url.params["from"], request.url.params["mount"])
                if key in self.blobs and self.mount_allowed:
                    self.blobs[(repo, key[1])] = self.blobs[key]
                    return httpx.Response(201, headers={"Location": f"/v2/{repo}/blobs/{key[1]}"})
            session = secrets.token_hex(6)
            self.uploads[session] = bytearray()
            return httpx.Response(202, headers={"Location": f"/v2/{repo}/blobs/uploads/{session}?_state=abc"})
        if m := re.match(r"^/v2/(.+)/blobs/(sha256:\w+)$", path):
            data = self.blobs.get((m.group(1), m.group(2)))
            if data is None:
                return _error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            headers = {"Content-Length": str(len(data)), "Docker-Content-Digest": m.group(2)}
            return httpx.Response(200, headers=headers, content=b"" if method == "HEAD" else data)
        if m := re.match(r"^/v2/(.+)/manifests/(.+)$", path):
            return self._manifest(request, m.group(1), m.group(2))
        if m := re.match(r"^/v2/(.+)/tags/list$", path):
            tags = sorted(ref for (repo, ref) in self.manifests if repo == m.group(1) and ":" not in ref)
            return httpx.Response(200, json={"name": m.group(1), "tags": tags})
        return _error(404, "NOT_FOUND", "no route")

    def _upload_step(self, request: httpx.Request, repo: str, session: str) -> httpx.Response:
        if session not in self.uploads:
            return _error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown")
        buffer = self.uploads[session]
        if request.method == "DELETE":
            del self.uploads[session]
            return httpx.Response(204)
        if request.method == "PATCH":
            start, _, end = request.headers["content-range"].partition("-")
            if int(start) != len(buffer) or int(end) != len(buffer) + len(request.content) - 1:
                return _error(416, "BLOB_UPLOAD_INVALID", "bad range")
            buffer.extend(request.content)
            location = f"/v2/{repo}/blobs/uploads/{session}?_state=n{len(buffer)}"
            return httpx.Response(202, headers={"Location": location, "Range": f"0-{len(buffer) - 1}"})
        buffer.extend(request.content)
        digest = request.url.params["digest"]
        if sha256(bytes(buffer)) != digest:
            return _error(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        self.blobs[(repo, digest)] = bytes(buffer)
        del self.uploads[session]
        return httpx.Response(201, headers={"Docker-Content-Digest": digest, "Location": f"/v2/{repo}/blobs/{digest}"})

    def _manifest(self, request: httpx.Request, repo: str, reference: str) -> httpx.Response:
        if request.method == "PUT":
            digest = sha256(request.content)
            media_type = request.headers["content-type"]
            self.manifests[(repo, reference)] = (request.content, media_type)
            self.manifests[(repo, digest)] = (request.content, media_type)
            return httpx.Response(201, headers={"Docker-Content-Digest": digest})
        if request.method == "DELETE":
            return (
                httpx.Response(202)
                if self.manifests.pop((repo, reference), None)
                else _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            )
        found = self.manifests.get((repo, reference))
        if found is None:
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown")
        data, media_type = found
        headers = {"Content-Type": media_type, "Docker-Content-Digest": sha256(data), "Content-Length": str(len(data))}
        return httpx.Response(200, headers=headers, content=b"" if request.method == "HEAD" else data)


@pytest.fixture
def fake() -> FakeRegistry:
    return FakeRegistry()


ALICE = Credential(username="alice", password="s3cret-pw")


def manifest_bytes(config: bytes, layers: list[bytes]) -> bytes:
    """A minimal OCI image manifest for the given config and layer blobs."""

    def descriptor(media_type: str, data: bytes) -> dict[str, object]:
        return {"mediaType": media_type, "digest": sha256(data), "size": len(data)}

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": [descriptor("application/vnd.oci.image.layer.v1.tar", layer) for layer in layers],
        },
        separators=(",", ":"),
    ).encode()


@pytest.fixture
def plain_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    registry = start_registry(tmp_path / "registry")
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path / "token", users={"builder": "token-pass"}).start()
    try:
        yield server
    finally:
        server.stop()
