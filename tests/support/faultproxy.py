"""A fault-injecting HTTP/1.1 proxy for registry tests: threads and sockets only, listening on 127.0.0.1.

``FaultProxy(upstream)`` relays each client connection to *upstream* (``host:port``, plain HTTP), one request per
connection (it asks upstream for ``Connection: close`` and tells the client the same), and records every
exchange in :attr:`FaultProxy.log`. Faults, each for the ``GET`` of one blob digest:

- ``drop_after=N``: the response is cut after N body bytes and the connection closed, ``drops`` times (a
  connection that dies in the middle of a blob; the client sees fewer bytes than ``Content-Length``);
- ``hide_length=True``: with ``drop_after``, the ``Content-Length`` header is removed too, so the cut body
  ends like a complete one (the truncation shows only against the blob's known size);
- ``strip_range=True``: ``Range`` request headers are removed, as by a registry or cache that ignores them.

A TLS ClientHello is answered by closing the connection, so a client that tries HTTPS first falls back to HTTP.
It is meant for pulls: a request body is relayed by ``Content-Length`` only.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from types import TracebackType

_HEAD_LIMIT = 64 * 1024
_CHUNK = 64 * 1024


@dataclass
class Exchange:
    method: str
    path: str
    range: str | None
    status: int
    body_bytes: int
    cut: bool


def _read_head(sock: socket.socket, first: bytes = b"") -> tuple[bytes, bytes] | None:
    """(head up to and including the blank line, bytes read past it), or None at EOF / on a huge head."""
    data = first
    while b"\r\n\r\n" not in data:
        if len(data) > _HEAD_LIMIT:
            return None
        more = sock.recv(_CHUNK)
        if not more:
            return None
        data += more
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def _headers(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("latin-1").split("\r\n")
    pairs = []
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            pairs.append((name.strip(), value.strip()))
    return lines[0], pairs


def _build(start: str, pairs: list[tuple[str, str]]) -> bytes:
    return ("\r\n".join([start, *(f"{k}: {v}" for k, v in pairs)]) + "\r\n\r\n").encode("latin-1")


def _get(pairs: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in pairs if k.lower() == name), None)


@dataclass
class FaultProxy:
    upstream: str
    blob: str = ""  # the digest whose GET gets the fault
    drop_after: int | None = None
    drops: int = 1
    hide_length: bool = False
    strip_range: bool = False
    log: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = int(self._server.getsockname()[1])
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut_count(self) -> int:
        return sum(1 for e in self.log if e.cut)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)  # wakes the accept() below (close alone does not)
        with contextlib.suppress(OSError):
            self._server.close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    # -- relaying -------------------------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):
            first = client.recv(_CHUNK)
            if not first or first[0] == 0x16:  # EOF, or a TLS handshake: not for this plain-HTTP proxy
                return
            request = _read_head(client, first)
            if request is None:
                return
            head, extra = request
            start, pairs = _headers(head)
            method, path = start.split(" ")[:2]
            length = int(_get(pairs, "content-length") or 0)
            while len(extra) < length:
                more = client.recv(_CHUNK)
                if not more:
                    return
                extra += more
            drop = {"connection", "proxy-connection", "keep-alive"} | ({"range"} if self.strip_range else set())
            pairs = [(k, v) for k, v in pairs if k.lower() not in drop] + [("Connection", "close")]
            with socket.create_connection(self._upstream_address(), timeout=60) as upstream:
                upstream.sendall(_build(start, pairs) + extra)
                self._relay(client, upstream, method, path, _get(pairs, "range"))

    def _upstream_address(self) -> tuple[str, int]:
        host, port = self.upstream.rsplit(":", 1)
        return host, int(port)

    def _relay(self, client: socket.socket, upstream: socket.socket, method: str, path: str, rng: str | None) -> None:
        response = _read_head(upstream)
        if response is None:
            return
        head, body = response
        status_line, pairs = _headers(head)
        status = int(status_line.split(" ")[1])
        limit: int | None = None
        with self._lock:
            if (
                method == "GET"
                and self.blob
                and path.endswith(f"/blobs/{self.blob}")
                and status in (200, 206)
                and self.drop_after is not None
                and self.drops > 0
            ):
                self.drops -= 1
                limit = self.drop_after
        pairs = [(k, v) for k, v in pairs if k.lower() not in ("connection", "keep-alive")]
        if limit is not None and self.hide_length:
            pairs = [(k, v) for k, v in pairs if k.lower() != "content-length"]
        client.sendall(_build(status_line, [*pairs, ("Connection", "close")]))
        sent = 0
        while True:
            if limit is not None and sent + len(body) >= limit:
                client.sendall(body[: limit - sent])
                sent = limit
                break
            client.sendall(body)
            sent += len(body)
            body = upstream.recv(_CHUNK)
            if not body:
                break
        with self._lock:
            self.log.append(Exchange(method, path, rng, status, sent, limit is not None))
        if limit is not None:
            client.shutdown(socket.SHUT_RDWR)  # the connection dies mid-body
