"""HTTP plumbing for the registry client: scheme choice, TLS, redirects, retries, error mapping, logging.

The scheme rules follow Docker's "insecure registries" (dockerd docs, "Insecure registries"): HTTPS
always comes first; a host marked insecure, or a loopback host, falls back to plain HTTP when the TLS
connection cannot be made, and an insecure host's certificate is not verified. Error bodies are read as
the OCI Distribution Spec "Error Codes" section describes (``{"errors": [{"code", "message"}]}``).
"""

from __future__ import annotations

import email.utils
import io
import ipaddress
import json
import logging
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import TypeVar

import httpx

from cnbplatform.errors import CnbError, DigestMismatchError, NotFoundError, RegistryError, UnauthorizedError

log = logging.getLogger("cnbplatform.http")

T = TypeVar("T")
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 10.0
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
ERROR_BODY_LIMIT = 64 * 1024
_DOCKER_HUB_API = "registry-1.docker.io"
_SENSITIVE_PARAM = re.compile(r"sig|token|key|secret|password|credential|auth|code", re.IGNORECASE)


class Failure(Exception):
    """One attempt failed: *reason* is the tail of the user's message; *error* the class to raise."""

    def __init__(
        self,
        reason: str,
        *,
        error: type[CnbError] = RegistryError,
        retryable: bool = False,
        delay: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error = error
        self.retryable = retryable
        self.delay = delay


def api_host(registry: str) -> str:
    """The host the distribution API is served from (Docker Hub's name differs from its API host)."""
    return _DOCKER_HUB_API if registry in ("docker.io", "index.docker.io") else registry


def split_host(hostport: str) -> str:
    """The host part of ``host[:port]`` (IPv6 literals in brackets)."""
    if hostport.startswith("["):
        return hostport[1:].split("]", 1)[0]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def is_loopback(hostport: str) -> bool:
    host = split_host(hostport).lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ssl_context(ca_file: Path | None, *, verify: bool) -> ssl.SSLContext:
    """System trust store (plus *ca_file*), or no verification at all for an insecure registry."""
    if not verify:
        # No trust store to load (that alone costs ~20 ms): nothing is verified.
        lax = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        lax.check_hostname = False
        lax.verify_mode = ssl.CERT_NONE
        return lax
    context = ssl.create_default_context()
    if ca_file is not None:
        context.load_verify_locations(cafile=str(ca_file))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def redact_url(url: httpx.URL | str) -> str:
    """The URL without user info, with the values of signature/token-like query parameters hidden."""
    parsed = httpx.URL(str(url))
    if parsed.userinfo:
        parsed = parsed.copy_with(username=None, password=None)
    if not parsed.query:
        return str(parsed)
    params = [(k, "redacted" if _SENSITIVE_PARAM.search(k) else v) for k, v in parsed.params.multi_items()]
    return str(parsed.copy_with(params=params))


def _auth_kind(value: str | None) -> str:
    return "none" if not value else value.split(" ", 1)[0] + " ***"


def _log_request(request: httpx.Request) -> None:
    log.debug(
        "> %s %s (authorization: %s)",
        request.method,
        redact_url(request.url),
        _auth_kind(request.headers.get("authorization")),
    )


def _log_response(response: httpx.Response) -> None:
    request = response.request
    shown = ("content-type", "content-length", "docker-content-digest", "range", "www-authenticate")
    details = ", ".join(f"{h}: {response.headers[h]}" for h in shown if h in response.headers)
    log.debug("< %s %s %d %s", request.method, redact_url(request.url), response.status_code, details)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def cert_verify_failed(exc: BaseException) -> bool:
    return any(
        isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e) for e in _chain(exc)
    )


def describe(exc: BaseException) -> str:
    """A short reason for a transport failure: 'connection refused', 'read timed out', ..."""
    chain = _chain(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in str(exc).lower():
        return "connection refused"
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return "connection reset"
    if isinstance(exc, httpx.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, httpx.ReadTimeout):
        return "read timed out"
    if isinstance(exc, httpx.WriteTimeout):
        return "write timed out"
    if isinstance(exc, httpx.PoolTimeout):
        return "timed out waiting for a free connection"
    if any(isinstance(e, ssl.SSLError) or "[SSL" in str(e) for e in chain):
        return f"TLS handshake failed ({one_line(str(exc))})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"connection closed by the server ({one_line(str(exc))})"
    return one_line(str(exc)) or type(exc).__name__


def one_line(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def transport_failure(exc: httpx.TransportError) -> Failure:
    """Classify an httpx transport error: certificate and protocol misuse are final, the rest retried."""
    if cert_verify_failed(exc):
        return Failure(f"TLS certificate does not verify ({one_line(str(exc))})")
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.ProxyError)):
        return Failure(describe(exc))
    return Failure(describe(exc), retryable=True)


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def read_limited(response: httpx.Response, limit: int) -> bytes:
    """Read a (streamed) body, refusing more than *limit* bytes."""
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise Failure(f"response of {declared} bytes is larger than the {limit} bytes allowed")
    parts: list[bytes] = []
    total = 0
    try:
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > limit:
                raise Failure(f"response is larger than the {limit} bytes allowed")
            parts.append(chunk)
    except httpx.TransportError as exc:
        raise transport_failure(exc) from exc
    except httpx.DecodingError as exc:
        raise Failure(f"the response body does not decode ({one_line(str(exc))})") from exc
    return b"".join(parts)


def error_details(response: httpx.Response) -> tuple[str | None, str]:
    """The first error code and message of a distribution error body (or the HTTP status line)."""
    try:
        body = read_limited(response, ERROR_BODY_LIMIT)
    except (Failure, httpx.HTTPError):
        body = b""
    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        code = str(first.get("code") or "") or None
        message = one_line(str(first.get("message") or first.get("detail") or ""))
        return code, message or (code or "").lower().replace("_", " ")
    except (ValueError, AttributeError, IndexError, TypeError):
        return None, f"HTTP {response.status_code} {response.reason_phrase}".strip()


def failure_from_response(response: httpx.Response) -> Failure:
    """Map an unexpected status to the error a user should see (Distribution Spec "Error Codes")."""
    status = response.status_code
    delay = retry_after(response)
    code, message = error_details(response)
    reason = f"{code}: {message}" if code else message
    if status in RETRY_STATUS or (status >= 500 and status not in (501, 505)):
        return Failure(reason, retryable=True, delay=delay)
    if status == 401 or code == "UNAUTHORIZED":
        return Failure(f"unauthorized: {message}", error=UnauthorizedError)
    if status == 403 or code == "DENIED":
        return Failure(f"denied: {message}", error=UnauthorizedError)
    if code == "DIGEST_INVALID":
        return Failure(reason, error=DigestMismatchError)
    if (code and code.endswith("_UNKNOWN")) or (status == 404 and code is None):
        return Failure(reason if code else "not found (HTTP 404)", error=NotFoundError)
    return Failure(reason)


def with_retries(action: str, attempt: Callable[[], T], *, retries: int, backoff: float) -> T:
    """Run *attempt* up to *retries* times with exponential backoff and jitter on retryable failures."""
    attempts = max(1, retries)
    last: Failure | None = None
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except Failure as failure:
            if not failure.retryable:
                raise failure.error(f"{action}: {failure.reason}") from failure
            last = failure
            if number == attempts:
                break
            delay = backoff_delay(backoff, number)
            if failure.delay is not None and failure.delay <= MAX_RETRY_AFTER:
                delay = max(failure.delay, 0.0)
            log.debug("%s: %s; retrying in %.2fs (attempt %d of %d)", action, failure.reason, delay, number, attempts)
            time.sleep(delay)
    assert last is not None
    raise RegistryError(f"{action}: {last.reason} after {attempts} attempts") from last


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


def backoff_delay(backoff: float, number: int) -> float:
    """The pause after failed attempt *number* (1-based): exponential, with jitter."""
    return backoff * 2.0 ** (number - 1) + random.uniform(0, backoff / 4)


class ResumingReader(io.RawIOBase):
    """A readable stream over a streamed blob response (raw bytes, no content decoding) that survives a dropped
    connection or a truncated body: it asks again from the first byte not yet handed out, with ``Range:
    bytes=N-`` (OCI Distribution Spec, "Pulling blobs"; RFC 9110 section 14). A registry that answers ``206``
    continues there; one that ignores the range answers ``200`` with the whole blob, whose first N bytes are
    skipped. A body is truncated when it ends before *size* bytes (or before the first response's
    ``Content-Length``). The whole read gets at most *retries* attempts, with :func:`with_retries`'s backoff;
    the caller verifies the digest over everything read, as before.

    *reopen(offset)* sends the request again (with the ``Range`` header when offset > 0) and returns a response
    whose status is 200 or 206, or raises :class:`Failure`.
    """

    def __init__(
        self,
        response: httpx.Response,
        reopen: Callable[[int], httpx.Response],
        action: str,
        *,
        size: int | None = None,
        retries: int = 1,
        backoff: float = 0.0,
    ) -> None:
        super().__init__()
        self._action = action
        self._reopen = reopen
        self._retries = max(1, retries)
        self._backoff = backoff
        self._attempts = 1
        self._offset = 0  # bytes handed to the reader so far
        self._skip = 0  # bytes still to drop from the current body (a 200 answer to a range request)
        self._pending = b""
        declared = response.headers.get("content-length", "")
        self._size = size if size is not None else int(declared) if declared.isdigit() else None
        self._response = response
        self._chunks = self._body(response)

    @property
    def resumed(self) -> int:
        """How many times the body was asked for again."""
        return self._attempts - 1

    @staticmethod
    def _body(response: httpx.Response) -> Iterator[bytes]:
        # A response whose body is already in memory (mock transports) cannot be streamed again.
        return iter([response.content]) if response.is_stream_consumed else response.iter_raw()

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._response.close()
        super().close()

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                if self._size is None or self._offset >= self._size:
                    return 0
                self._resume(Failure(f"the body ended after {self._offset} of {self._size} bytes", retryable=True))
                continue
            except httpx.TransportError as exc:
                self._resume(transport_failure(exc))
                continue
            except httpx.HTTPError as exc:
                self._resume(Failure(f"connection lost while reading ({one_line(str(exc))})", retryable=True))
                continue
            if self._skip:
                dropped = min(self._skip, len(chunk))
                chunk, self._skip = chunk[dropped:], self._skip - dropped
            self._pending = chunk
        n = min(len(buffer), len(self._pending))
        memoryview(buffer)[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self._offset += n
        return n

    def _resume(self, failure: Failure) -> None:
        """Ask again from ``self._offset`` until a body to go on with arrives, or the attempts are spent."""
        self._response.close()
        while True:
            if not failure.retryable:
                raise failure.error(f"{self._action}: {failure.reason}") from failure
            if self._attempts >= self._retries:
                raise RegistryError(f"{self._action}: {failure.reason} after {self._attempts} attempts") from failure
            delay = backoff_delay(self._backoff, self._attempts)
            self._attempts += 1
            log.debug(
                "%s: %s; resuming at byte %d in %.2fs (attempt %d of %d)",
                self._action,
                failure.reason,
                self._offset,
                delay,
                self._attempts,
                self._retries,
            )
            time.sleep(delay)
            try:
                response = self._reopen(self._offset)
            except Failure as again:
                failure = again
                continue
            self._skip = self._start_of(response)
            self._response, self._chunks = response, self._body(response)
            return

    def _start_of(self, response: httpx.Response) -> int:
        """How many bytes of *response*'s body to drop to continue at ``self._offset``."""
        if response.status_code != 206:
            return self._offset  # the range was ignored: the whole blob again
        found = _CONTENT_RANGE.match(response.headers.get("content-range", ""))
        if found is None or int(found.group(1)) != self._offset:
            response.close()
            got = response.headers.get("content-range", "none")
            raise RegistryError(f"{self._action}: asked to resume at byte {self._offset}, got the range {got!r}")
        return 0


class Endpoint:
    """The registry's base URL (scheme chosen once, lazily) and the httpx clients that talk to it.

    The registry host gets its own TLS settings (insecure hosts are not verified); any other host — a
    token realm, a storage backend a blob redirects to — is always verified.
    """

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool,
        ca_file: Path | None,
        transport: httpx.BaseTransport | None,
        timeout: float,
        user_agent: str,
    ) -> None:
        self.registry = registry
        self.host = api_host(registry)
        loopback = is_loopback(self.host)
        self._fallback = insecure or loopback
        lax = insecure or (loopback and ca_file is None)
        options = {
            "timeout": httpx.Timeout(timeout),
            "headers": {"User-Agent": user_agent},
            "event_hooks": {"request": [_log_request], "response": [_log_response]},
            "follow_redirects": False,
            "transport": transport,
            "trust_env": False,  # nothing is read from the environment below the platform layer
        }
        # An injected transport brings its own TLS; building SSL contexts would only cost time.
        registry_tls = ssl_context(ca_file, verify=not lax) if transport is None else True
        self._registry = httpx.Client(verify=registry_tls, **options)  # type: ignore[arg-type]
        # Other hosts (token realms, storage redirects) are rare for a local registry: made on first use.
        self._other_options = options
        self._other_tls: tuple[Path | None, bool] = (ca_file, transport is None)
        self._other_client: httpx.Client | None = None
        self._other_lock = threading.Lock()
        self._base: str | None = None
        self._lock = threading.Lock()

    @property
    def _other(self) -> httpx.Client:
        with self._other_lock:
            if self._other_client is None:
                ca_file, build_tls = self._other_tls
                tls = ssl_context(ca_file, verify=True) if build_tls else True
                self._other_client = httpx.Client(verify=tls, **self._other_options)  # type: ignore[arg-type]
            return self._other_client

    def close(self) -> None:
        self._registry.close()
        if self._other_client is not None:
            self._other_client.close()

    def build(self, method: str, url: str | httpx.URL, **kwargs: object) -> httpx.Request:
        return self._registry.build_request(method, url, **kwargs)  # type: ignore[arg-type]

    def _is_registry(self, url: httpx.URL) -> bool:
        default = 443 if url.scheme == "https" else 80
        own = httpx.URL(f"{url.scheme}://{self.host}/")
        return (url.host, url.port or default) == (own.host, own.port or default)

    def send(self, request: httpx.Request, *, stream: bool = False, follow: bool = False) -> httpx.Response:
        """Send a request, following redirects when *follow* (``Authorization`` stays on its origin).

        Transport errors become :class:`Failure`, retryable where that makes sense.
        """
        for _ in range(MAX_REDIRECTS):
            response = self._send_one(request, stream=stream or follow)
            if not follow or response.status_code not in _REDIRECTS or "location" not in response.headers:
                return response
            target = response.url.join(response.headers["location"])
            response.close()
            if target.scheme not in ("http", "https"):
                raise Failure(f"redirected to an unsupported URL scheme {target.scheme!r}")
            method = "GET" if response.status_code == 303 or request.method not in ("GET", "HEAD") else request.method
            headers = dict(request.headers)
            for name in ("host", "content-length", "content-type"):
                headers.pop(name, None)
            if (target.scheme, target.host, target.port) != (request.url.scheme, request.url.host, request.url.port):
                headers.pop("authorization", None)
            request = self.build(method, target, headers=headers)
        raise Failure(f"more than {MAX_REDIRECTS} redirects")

    def _send_one(self, request: httpx.Request, *, stream: bool) -> httpx.Response:
        client = self._registry if self._is_registry(request.url) else self._other
        try:
            return client.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise transport_failure(exc) from exc

    def base(self, on_probe: Callable[[httpx.Response], object]) -> str:
        """``scheme://host``; the first call probes ``GET /v2/`` and hands the answer to *on_probe*."""
        if self._base is not None:
            return self._base
        with self._lock:
            if self._base is None:
                self._base = self._probe(on_probe)
            return self._base

    def _probe(self, on_probe: Callable[[httpx.Response], object]) -> str:
        schemes = ("https", "http") if self._fallback else ("https",)
        errors: list[Failure] = []
        for scheme in schemes:
            try:
                response = self.send(self.build("GET", f"{scheme}://{self.host}/v2/"), stream=True)
            except Failure as failure:
                if not failure.retryable:
                    raise
                errors.append(failure)
                continue
            with closing(response):
                if scheme == "http" and response.status_code == 400:
                    body = read_limited(response, ERROR_BODY_LIMIT)
                    if b"HTTPS server" in body:
                        raise Failure(f"{self.host} speaks HTTPS but the TLS connection failed: {errors[0].reason}")
                if response.status_code in RETRY_STATUS or response.status_code >= 500:
                    raise failure_from_response(response)
                on_probe(response)
            return f"{scheme}://{self.host}"
        reasons = list(dict.fromkeys(f.reason for f in errors))
        raise Failure("; ".join(reasons), retryable=True) from errors[-1]
