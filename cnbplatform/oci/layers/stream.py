"""The byte plumbing of layer writing: fixed-size chunks in, a hashed gzip blob out.

docs/design.md section 3 decision 4. :class:`ChunkSink` assembles the tar stream into
:data:`~cnbplatform.oci.layers.compress.FEED_CHUNK`-sized buffers, reading file contents straight into them
(no intermediate copies), and hands each full buffer to a callback. :class:`CompressingPipe` gzips
the chunks as independent blocks (see :mod:`cnbplatform.oci.layers.compress`) in helper threads (isal, zlib
and hashlib release the GIL on large buffers, so reading and hashing the tar overlaps with deflating
it on several cores), then hashes and writes the compressed blocks in order.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Final

from cnbplatform.errors import CnbError
from cnbplatform.oci.layers.compress import (
    DICTIONARY_SIZE,
    FEED_CHUNK,
    GZIP_HEADER,
    GzipEncoder,
    crc32,
    deflate_block,
    gzip_trailer,
)

if TYPE_CHECKING:  # concurrent.futures (and the logging it loads) only when a layer is compressed
    from concurrent.futures import Future

_OPEN_FLAGS: Final = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class ChunkSink:
    """Collects the tar stream and passes it on in buffers of exactly FEED_CHUNK bytes (the last one
    shorter). A buffer is never touched again once handed over."""

    __slots__ = ("_buf", "_emit", "_pos", "_view", "total")

    def __init__(self, emit: Callable[[bytearray], None]) -> None:
        self._emit = emit
        self._buf = bytearray(FEED_CHUNK)
        self._view = memoryview(self._buf)
        self._pos = 0
        self.total = 0

    def _flush(self) -> None:
        self._emit(self._buf)
        self._buf = bytearray(FEED_CHUNK)
        self._view = memoryview(self._buf)
        self._pos = 0

    def write(self, data: bytes) -> None:
        n = len(data)
        self.total += n
        pos = self._pos
        if pos + n < FEED_CHUNK:
            self._view[pos : pos + n] = data
            self._pos = pos + n
            return
        view = memoryview(data)
        start = 0
        while start < n:
            take = min(FEED_CHUNK - self._pos, n - start)
            self._view[self._pos : self._pos + take] = view[start : start + take]
            self._pos += take
            start += take
            if self._pos == FEED_CHUNK:
                self._flush()

    def pad(self, size: int) -> None:
        """NUL bytes completing a data section of *size* bytes to a whole 512-byte block."""
        missing = -size % 512
        if missing:
            self.write(b"\0" * missing)

    def copy_file(self, path: str, size: int) -> None:
        """Append exactly *size* bytes of the file at *path* (its size when it was scanned)."""
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as exc:
            raise CnbError(f"cannot read {path} for a layer: {exc.strerror}") from exc
        try:
            remaining = size
            while remaining:
                pos = self._pos
                end = pos + min(FEED_CHUNK - pos, remaining)
                n = os.readv(fd, [self._view[pos:end]])
                if n == 0:
                    raise CnbError(f"cannot read {path} for a layer: it shrank while being archived")
                self._pos = pos + n
                remaining -= n
                if self._pos == FEED_CHUNK:
                    self._flush()
            self.total += size
        except OSError as exc:
            raise CnbError(f"cannot read {path} for a layer: {exc.strerror}") from exc
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Write the end-of-archive marker and emit the last (short) buffer."""
        self.write(b"\0" * 1024)
        if self._pos:
            self._emit(self._buf[: self._pos])
            self._pos = 0


#: Threads that deflate blocks of one layer at once (the bytes do not depend on it).
DEFAULT_WORKERS: Final = 2


class CompressingPipe:
    """gzip-compresses the chunks of one stream into *out* and hashes what it writes.

    Chunks must be FEED_CHUNK bytes long, except the last. With ``workers`` > 0, blocks are deflated
    by that many helper threads while the caller goes on producing; the caller writes the finished
    blocks in order (at most ``workers + 2`` blocks in flight). With 0, everything happens inline.
    """

    def __init__(self, out: BinaryIO, *, use_isal: bool | None, workers: int, what: str) -> None:
        self._out = out
        self._what = what
        self._isal = GzipEncoder(use_isal=use_isal).isal
        self._hasher = hashlib.sha256()
        self._size = 0
        self._crc = 0
        self._input_size = 0
        self._dictionary = b""
        self._short_seen = False
        self._pool = None
        if workers > 0:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="cnb-gzip")
        self._limit = workers + 2
        self._inflight: deque[Future[bytes]] = deque()
        self._write(GZIP_HEADER)

    def _write(self, data: bytes) -> None:
        if data:
            self._hasher.update(data)
            try:
                self._out.write(data)
            except OSError as exc:
                raise CnbError(f"cannot write {self._what}: {exc.strerror or exc}") from exc
            self._size += len(data)

    def put(self, chunk: bytearray) -> None:
        """Compress the next chunk of the stream (never modified afterwards by the caller)."""
        if self._short_seen:
            raise CnbError(f"internal error writing {self._what}: a short chunk was not the last one")
        self._short_seen = len(chunk) != FEED_CHUNK
        self._crc = crc32(chunk, self._crc, isal=self._isal)
        self._input_size += len(chunk)
        dictionary, self._dictionary = self._dictionary, bytes(chunk[-DICTIONARY_SIZE:])
        if self._pool is None:
            self._write(deflate_block(chunk, dictionary, isal=self._isal))
            return
        self._inflight.append(self._pool.submit(deflate_block, chunk, dictionary, isal=self._isal))
        while len(self._inflight) >= self._limit:
            self._write(self._inflight.popleft().result())

    def finish(self) -> tuple[str, int]:
        """Write the remaining blocks and the trailer; returns the digest and size of what was written."""
        try:
            while self._inflight:
                self._write(self._inflight.popleft().result())
            self._write(gzip_trailer(self._crc, self._input_size))
        finally:
            self.abort()
        return "sha256:" + self._hasher.hexdigest(), self._size

    def abort(self) -> None:
        """Stop the helper threads (pending blocks are dropped)."""
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
