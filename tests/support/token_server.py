"""A small bearer-token server for tests (Docker "Token Authentication Specification").

It listens on 127.0.0.1, checks HTTP Basic credentials (or an OAuth2 refresh token on POST), and issues
ES256 JWTs that distribution's ``auth: token`` accepts: the signing certificate goes in the ``x5c``
header and must be in the registry's ``rootcertbundle``; claims are iss, sub, aud, exp, nbf, iat, jti
and ``access``. Every request is recorded so tests can count token fetches and inspect scopes.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from tests.support.pki import KeyPair, make_ca

Policy = Callable[[str | None, str, str, list[str]], list[str]]


def grant_all_to_users(user: str | None, kind: str, name: str, actions: list[str]) -> list[str]:
    """Default policy: an authenticated user gets what it asks for; anonymous gets nothing."""
    return list(actions) if user is not None else []


@dataclass(frozen=True)
class TokenRequest:
    method: str
    user: str | None
    service: str | None
    scopes: tuple[str, ...]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


@dataclass
class TokenServer:
    """Start with :meth:`start` (or ``with``); ``realm``, ``service``, ``issuer``, ``cert_file`` feed the
    registry's ``auth.token`` configuration."""

    workdir: Path
    users: dict[str, str] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)
    policy: Policy = grant_all_to_users
    allow_anonymous: bool = False
    service: str = "cnb-test-registry"
    issuer: str = "cnb-test-token-issuer"
    lifetime: int = 300
    requests: list[TokenRequest] = field(default_factory=list)
    _signer: KeyPair | None = None
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cert_file(self) -> Path:
        assert self._signer is not None, "start the token server first"
        return self._signer.cert_file

    @property
    def realm(self) -> str:
        assert self._server is not None, "start the token server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def start(self) -> TokenServer:
        self._signer = make_ca(self.workdir / "token-signer", "cnb test token signer")
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="token-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def record(self, request: TokenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def issue(self, user: str | None, scopes: tuple[str, ...]) -> str:
        """A signed JWT granting what the policy allows of *scopes* to *user*."""
        assert self._signer is not None
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            granted = self.policy(user, kind, name, [a for a in actions.split(",") if a])
            if granted:
                access.append({"type": kind, "name": name, "actions": granted})
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.lifetime,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        der = self._signer.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode("ascii")]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self._signer.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def authenticate(self, header: str | None) -> tuple[bool, str | None]:
        """(accepted, user) for a Basic Authorization header (absent: anonymous)."""
        if not header:
            return self.allow_anonymous, None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False, None
        return self.users.get(user) == password, user


def _handler_for(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _answer(self, status: int, body: dict[str, object]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _grant(self, method: str, user: str | None, service: str | None, scopes: tuple[str, ...]) -> None:
            server.record(TokenRequest(method, user, service, scopes))
            token = server.issue(user, scopes)
            self._answer(200, {"token": token, "access_token": token, "expires_in": server.lifetime})

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            scopes = tuple(s for value in query.get("scope", []) for s in value.split(" ") if s)
            service = next(iter(query.get("service", [])), None)
            accepted, user = server.authenticate(self.headers.get("Authorization"))
            if url.path != "/token" or not accepted:
                server.record(TokenRequest("GET", user, service, scopes))
                self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]})
                return
            self._grant("GET", user, service, scopes)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            scopes = tuple(s for value in form.get("scope", []) for s in value.split(" ") if s)
            service = next(iter(form.get("service", [])), None)
            refresh = (form.get("refresh_token") or [""])[0]
            user = server.refresh_tokens.get(refresh)
            if form.get("grant_type") != ["refresh_token"] or user is None:
                server.record(TokenRequest("POST", None, service, scopes))
                self._answer(401, {"error": "invalid_grant"})
                return
            self._grant("POST", user, service, scopes)

    return Handler
