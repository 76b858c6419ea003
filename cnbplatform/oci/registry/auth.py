"""Registry authentication: ``WWW-Authenticate`` challenges, Basic, and bearer tokens.

Implements the Docker/distribution "Token Authentication Specification" (GET the realm with ``service``
and ``scope``; read ``token`` or ``access_token``), the "OAuth2 Token Authentication" variant for
identity (refresh) tokens (POST ``grant_type=refresh_token``), and the "Token Scope Documentation"
grammar ``repository:<name>:<action>[,<action>]``. Tokens are cached per scope set and reused by any
later request whose scopes they cover, until they expire.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field

import httpx

from cnbplatform.errors import UnauthorizedError
from cnbplatform.oci.registry.credentials import Credential
from cnbplatform.oci.registry.transport import RETRY_STATUS, Failure, error_details, one_line, read_limited

Scopes = tuple[str, ...]
_PARAM = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_MIN_TOKEN_LIFETIME = 60.0
_EXPIRY_MARGIN = 10.0
_TOKEN_BODY_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class Challenge:
    """One ``WWW-Authenticate`` challenge (RFC 7235): scheme (lowercased) and its parameters."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict)


def parse_challenges(values: Sequence[str]) -> list[Challenge]:
    """Parse ``WWW-Authenticate`` header values; several challenges may share one header."""
    found: list[Challenge] = []
    for value in values:
        for part in re.split(r",\s*(?=[A-Za-z][A-Za-z0-9_-]*\s+[A-Za-z][A-Za-z0-9_-]*\s*=)", value.strip()):
            scheme, _, rest = part.strip().partition(" ")
            if not scheme:
                continue
            params = {
                m.group(1).lower(): (m.group(2) or m.group(3) or "").replace('\\"', '"') for m in _PARAM.finditer(rest)
            }
            found.append(Challenge(scheme.lower(), params))
    return found


def choose(challenges: Sequence[Challenge]) -> Challenge | None:
    """Bearer (with a realm) over Basic; other schemes are not supported."""
    for challenge in challenges:
        if challenge.scheme == "bearer" and challenge.params.get("realm"):
            return challenge
    for challenge in challenges:
        if challenge.scheme == "basic":
            return challenge
    return None


def repository_scope(repo: str, *actions: str) -> str:
    return f"repository:{repo}:{','.join(actions)}"


def _parse_scope(scope: str) -> tuple[str, str, frozenset[str]] | None:
    kind, sep, rest = scope.partition(":")
    name, sep2, actions = rest.rpartition(":")
    if not sep or not sep2:
        return None
    return kind, name, frozenset(a for a in actions.split(",") if a)


def covers(granted: Scopes, wanted: Scopes) -> bool:
    """Whether a token asked for *granted* scopes was asked for everything in *wanted*."""
    have: dict[tuple[str, str], set[str]] = {}
    for scope in granted:
        parsed = _parse_scope(scope)
        if parsed is not None:
            have.setdefault(parsed[:2], set()).update(parsed[2])
    for scope in wanted:
        parsed = _parse_scope(scope)
        if parsed is None:
            if scope not in granted:
                return False
        elif not parsed[2] <= have.get(parsed[:2], set()):
            return False
    return True


@dataclass
class _Token:
    value: str
    expires: float


class Authenticator:
    """Chooses the ``Authorization`` header for a request and keeps bearer tokens (thread-safe)."""

    def __init__(
        self,
        registry: str,
        credential: Credential | None,
        send: Callable[[httpx.Request], httpx.Response],
        build: Callable[..., httpx.Request],
    ) -> None:
        self._registry = registry
        self._credential = credential
        self._send = send
        self._build = build
        self._challenge: Challenge | None = None
        self._tokens: dict[Scopes, _Token] = {}
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self.token_fetches = 0

    def learn(self, response: httpx.Response) -> Challenge | None:
        """Remember the challenge of a 401 answer (the probe of ``/v2/`` or any later request)."""
        if response.status_code != 401:
            return None
        challenge = choose(parse_challenges(response.headers.get_list("www-authenticate")))
        if challenge is not None:
            with self._lock:
                if challenge != self._challenge:
                    self._challenge = challenge
        return challenge

    def header(self, scopes: Scopes) -> str | None:
        """The header to send up front, or None to go anonymous (no challenge seen yet)."""
        credential = self._credential
        if credential is not None and credential.registry_token:
            return f"Bearer {credential.registry_token}"
        challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            return credential.basic_header() if credential is not None and credential.has_basic else None
        return "Bearer " + self._token(challenge, scopes, ())

    def after_unauthorized(self, response: httpx.Response, scopes: Scopes, sent: str | None) -> str | None:
        """The header for one more try after a 401, or None when another try cannot do better."""
        challenge = self.learn(response) or self._challenge
        credential = self._credential
        if challenge is None or (credential is not None and credential.registry_token):
            return None
        if challenge.scheme == "basic":
            header = credential.basic_header() if credential is not None and credential.has_basic else None
            return None if header == sent else header
        with self._lock:
            self._tokens.pop(scopes, None)
        extra = tuple(s for s in challenge.params.get("scope", "").split(" ") if s and not covers(scopes, (s,)))
        return "Bearer " + self._token(challenge, scopes, extra, fresh=True)

    def _cached(self, scopes: Scopes) -> str | None:
        now = time.monotonic()
        with self._lock:
            token = self._tokens.get(scopes)
            if token is not None and token.expires > now:
                return token.value
            for granted, token in self._tokens.items():
                if token.expires > now and covers(granted, scopes):
                    return token.value
        return None

    def _token(self, challenge: Challenge, scopes: Scopes, extra: Scopes, *, fresh: bool = False) -> str:
        if not fresh and (cached := self._cached(scopes)) is not None:
            return cached
        with self._fetch_lock:
            if not fresh and (cached := self._cached(scopes)) is not None:
                return cached
            token = self._fetch(challenge, scopes + extra)
            with self._lock:
                self._tokens[scopes] = token
            return token.value

    def _fetch(self, challenge: Challenge, scopes: Scopes) -> _Token:
        """GET (or, with an identity token, POST) the realm for a token covering *scopes*."""
        realm = challenge.params["realm"]
        service = challenge.params.get("service")
        credential = self._credential
        if credential is not None and credential.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": credential.identity_token, "client_id": "cnb"}
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            request = self._build("POST", realm, data=form)
        else:
            params: list[tuple[str, str]] = [("service", service)] if service else []
            params += [("scope", s) for s in scopes]
            headers = {}
            if credential is not None and credential.has_basic:
                headers["Authorization"] = credential.basic_header()
            request = self._build("GET", realm, params=params, headers=headers)
        self.token_fetches += 1
        with closing(self._send(request)) as response:
            if response.status_code == 200:
                return self._read_token(response, realm)
            if response.status_code in RETRY_STATUS or response.status_code >= 500:
                raise Failure(f"token server {realm}: HTTP {response.status_code}", retryable=True)
            _, message = error_details(response)
            if response.status_code in (401, 403):
                who = "the credentials" if credential is not None else "anonymous access"
                raise Failure(
                    f"unauthorized: the token server refused {who} for {self._registry} ({message})",
                    error=UnauthorizedError,
                )
            raise Failure(f"token server {realm}: HTTP {response.status_code} ({message})")

    def _read_token(self, response: httpx.Response, realm: str) -> _Token:
        try:
            answer = json.loads(read_limited(response, _TOKEN_BODY_LIMIT))
            value = answer.get("token") or answer.get("access_token")
            lifetime = float(answer.get("expires_in") or _MIN_TOKEN_LIFETIME)
        except (ValueError, AttributeError, TypeError) as exc:
            raise Failure(f"token server {realm} answered with malformed JSON ({one_line(str(exc))})") from exc
        if not isinstance(value, str) or not value:
            raise Failure(f"token server {realm} answered without a token")
        lifetime = max(lifetime, _MIN_TOKEN_LIFETIME)
        return _Token(value, time.monotonic() + lifetime - _EXPIRY_MARGIN)
