"""Content digests (OCI image spec, "Digests"): parsing, hashing, and verified reading.

Every blob cnb reads from anywhere passes through :class:`VerifyingReader`, which hashes while it reads
and raises :class:`~cnbplatform.errors.DigestMismatchError` at end of stream when the bytes do not match
the digest (or size) that named them. Nothing downstream commits content before that check has run.
"""

from __future__ import annotations

import importlib
import io
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cnbplatform.errors import DigestMismatchError, UsageError

if TYPE_CHECKING:
    import hashlib

_DIGEST_RE = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
CHUNK = 1024 * 1024


def _builtin_sha2() -> dict[str, Callable[[bytes], Any]]:
    """CPython's own SHA-2 (``_sha256``/``_sha512``; ``_sha2`` from 3.12), for documents (manifests, configs).

    hashlib loads OpenSSL when it is imported, about 2.5 ms: more than a local ``cnb rebase`` spends on everything
    but start-up. Blobs still go through hashlib, which is several times faster per byte.
    """
    found: dict[str, Callable[[bytes], Any]] = {}
    for algorithm in ("sha256", "sha512"):
        for module in (f"_{algorithm}", "_sha2"):
            try:
                constructor = getattr(importlib.import_module(module), algorithm, None)
            except ImportError:
                continue
            if constructor is not None:
                found[algorithm] = constructor
                break
    return found


_DOCUMENT_HASHERS = _builtin_sha2()


def _document_hexdigest(algorithm: str, data: bytes) -> str:
    """Hex digest of an in-memory document with *algorithm* (``sha256`` or ``sha512``)."""
    builtin = _DOCUMENT_HASHERS.get(algorithm) if len(data) <= CHUNK else None
    if builtin is not None:
        return str(builtin(data).hexdigest())
    import hashlib

    return hashlib.new(algorithm, data).hexdigest()


def validate_digest(value: str) -> str:
    """Return *value* if it is a well-formed sha256/sha512 digest, else raise UsageError."""
    if not _DIGEST_RE.match(value):
        raise UsageError(f"invalid digest {value!r}: expected sha256:<64 hex>")
    return value


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


def _algorithm(digest: str) -> str:
    algorithm = digest.split(":", 1)[0]
    if algorithm not in ("sha256", "sha512"):
        raise UsageError(f"unsupported digest algorithm {algorithm!r}")
    return algorithm


def new_hasher(digest: str = "sha256:") -> hashlib._Hash:
    """A hashlib hasher for the algorithm of *digest* (for streams; documents use :func:`sha256_bytes`)."""
    import hashlib

    return hashlib.new(_algorithm(digest))


def sha256_bytes(data: bytes) -> str:
    return "sha256:" + _document_hexdigest("sha256", data)


def hex_part(digest: str) -> str:
    """The encoded part of a digest: ``sha256:abc`` -> ``abc``."""
    return digest.split(":", 1)[1]


def hash_file(path: Path) -> tuple[str, int]:
    """sha256 digest and size of a file, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def hash_stream(stream: BinaryIO) -> tuple[str, int]:
    import hashlib

    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def verify_bytes(data: bytes, digest: str, what: str) -> bytes:
    """Return *data* if it hashes to *digest*, else raise DigestMismatchError naming *what*."""
    algorithm = _algorithm(digest)
    actual = f"{algorithm}:{_document_hexdigest(algorithm, data)}"
    if actual != digest:
        raise DigestMismatchError(f"digest mismatch for {what}: expected {digest}, got {actual}")
    return data


class VerifyingReader(io.RawIOBase):
    """A read-only stream that checks the digest (and size, when known) of what passes through it.

    The check runs when the wrapped stream reports end of file; a mismatch raises
    DigestMismatchError instead of returning the final empty read, so a consumer that reads to EOF
    can never mistake corrupt content for complete content.
    """

    def __init__(self, raw: BinaryIO, digest: str, size: int | None = None, what: str = "blob") -> None:
        super().__init__()
        self._raw = raw
        self._digest = digest
        self._size = size
        self._what = what
        self._hasher = new_hasher(digest)
        self._count = 0
        self._verified = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)
        if self._size is not None:
            remaining = self._size - self._count
            # Read one byte past the declared size so oversize content is noticed.
            view = view[: max(remaining + 1, 1)]
        data = self._raw.read(len(view))
        n = len(data)
        if n == 0:
            self._check()
            return 0
        view[:n] = data
        self._hasher.update(data)
        self._count += n
        if self._size is not None and self._count > self._size:
            raise DigestMismatchError(
                f"size mismatch for {self._what} {self._digest}: more than the declared {self._size} bytes"
            )
        return n

    def _check(self) -> None:
        if self._verified:
            return
        if self._size is not None and self._count != self._size:
            raise DigestMismatchError(
                f"size mismatch for {self._what} {self._digest}: expected {self._size} bytes, got {self._count}"
            )
        actual = f"{self._digest.split(':', 1)[0]}:{self._hasher.hexdigest()}"
        if actual != self._digest:
            raise DigestMismatchError(f"digest mismatch for {self._what}: expected {self._digest}, got {actual}")
        self._verified = True

    @property
    def bytes_read(self) -> int:
        return self._count

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def verified_reader(raw: BinaryIO, digest: str, size: int | None = None, what: str = "blob") -> io.BufferedReader:
    """Wrap *raw* so reading it to EOF verifies digest and size; buffered for efficient reads."""
    return io.BufferedReader(VerifyingReader(raw, digest, size, what), buffer_size=CHUNK)


def iter_chunks(stream: BinaryIO, chunk_size: int = CHUNK) -> Iterator[bytes]:
    while chunk := stream.read(chunk_size):
        yield chunk


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
