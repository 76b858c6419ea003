"""Layer compression: a deterministic gzip encoder and readers for gzip, zstd and plain layer blobs.

DESIGN.md section 3 decision 4: layers are compressed with gzip from ``isal`` (igzip, level 1); stdlib
``zlib`` level 1 is the fallback when ``isal`` is not importable. CNB-SPEC.md section 16 item 42
(identical inputs give identical images) needs the compressed bytes to be a pure function of the
uncompressed bytes, so the encoder

* writes its own fixed gzip header (no file name, mtime 0, XFL 0, OS byte 255 "unknown") and trailer,
* feeds the deflater in fixed :data:`FEED_CHUNK` pieces whatever sizes the caller passes (igzip's
  output depends on how its input is split across calls),
* pins level, window and memory level.

The output is identical for identical input with the same deflater (isal, or zlib); the two deflaters
produce different (equally valid) bytes, which is why :data:`COMPRESSOR` names the one in use.
"""

from __future__ import annotations

import importlib
import io
import struct
import zlib
from typing import Any, BinaryIO, Final, Literal

from cnbplatform.errors import CnbError, UsageError

try:  # pragma: no branch - depends on the environment
    from isal import igzip as _igzip
    from isal import isal_zlib as _isal_zlib

    HAVE_ISAL = True
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    _igzip = None
    _isal_zlib = None
    HAVE_ISAL = False

#: Size of every piece handed to the deflater (the last piece of a stream may be shorter).
FEED_CHUNK: Final = 1024 * 1024

MEDIA_TYPE_TAR: Final = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_TAR_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_TAR_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"

Compression = Literal["gzip", "zstd", "none"]

# gzip member header (RFC 1952 section 2.3): magic, CM=deflate, FLG=0, MTIME=0, XFL=0, OS=255.
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_GZIP_MAGIC: Final = b"\x1f\x8b"
_ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
_LEVEL: Final = 1
_MEM_LEVEL: Final = 8
_RAW_DEFLATE_WBITS: Final = -15


def compressor_name(use_isal: bool | None = None) -> str:
    """Name of the deflater :class:`GzipEncoder` uses (``isal-1`` or ``zlib-1``)."""
    return "isal-1" if _want_isal(use_isal) else "zlib-1"


def _want_isal(use_isal: bool | None) -> bool:
    if use_isal is None:
        return HAVE_ISAL
    if use_isal and not HAVE_ISAL:
        raise CnbError("cannot compress with isal: the isal package is not importable")
    return use_isal


#: The deflater used by default on this machine.
COMPRESSOR: Final = compressor_name()


class GzipEncoder:
    """A deterministic, streaming gzip encoder (one member, RFC 1952).

    Not thread-safe: one encoder per stream. Different encoders may run in different threads at once;
    isal and zlib release the GIL while they compress.
    """

    def __init__(self, *, use_isal: bool | None = None) -> None:
        self._isal = _want_isal(use_isal)
        if self._isal:
            assert _isal_zlib is not None
            self._deflater: Any = _isal_zlib.compressobj(_LEVEL, _isal_zlib.DEFLATED, _RAW_DEFLATE_WBITS, _MEM_LEVEL)
            self._crc32: Any = _isal_zlib.crc32
        else:
            self._deflater = zlib.compressobj(_LEVEL, zlib.DEFLATED, _RAW_DEFLATE_WBITS, _MEM_LEVEL)
            self._crc32 = zlib.crc32
        self._crc = 0
        self._size = 0
        self._pending = bytearray()
        self._started = False
        self._finished = False

    def _feed(self, piece: bytes | bytearray | memoryview) -> bytes:
        self._crc = self._crc32(piece, self._crc)
        self._size += len(piece)
        out: bytes = self._deflater.compress(piece)
        return out

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """Compress *data*; returns the compressed bytes ready so far (the header on the first call)."""
        if self._finished:
            raise CnbError("gzip encoder used after finish()")
        out: list[bytes] = []
        if not self._started:
            self._started = True
            out.append(_GZIP_HEADER)
        view = memoryview(data).cast("B")
        if not self._pending and len(view) == FEED_CHUNK:
            out.append(self._feed(view))  # the tar writer's fast path: exactly one piece, no copy
            return b"".join(out)
        start = 0
        if self._pending:
            take = min(FEED_CHUNK - len(self._pending), len(view))
            self._pending += view[:take]
            start = take
            if len(self._pending) == FEED_CHUNK:
                out.append(self._feed(self._pending))
                self._pending = bytearray()
        while len(view) - start >= FEED_CHUNK:
            out.append(self._feed(view[start : start + FEED_CHUNK]))
            start += FEED_CHUNK
        if start < len(view):
            self._pending += view[start:]
        return b"".join(out)

    def finish(self) -> bytes:
        """Flush the deflater and return the remaining bytes and the gzip trailer."""
        if self._finished:
            raise CnbError("gzip encoder finished twice")
        out = [self.compress(b"")]
        if self._pending:
            out.append(self._feed(self._pending))
            self._pending = bytearray()
        out.append(self._deflater.flush())
        out.append(struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF))
        self._finished = True
        return b"".join(out)

    @property
    def uncompressed_size(self) -> int:
        return self._size + len(self._pending)


def gzip_bytes(data: bytes, *, use_isal: bool | None = None) -> bytes:
    """Deterministic gzip of a small in-memory value."""
    encoder = GzipEncoder(use_isal=use_isal)
    return encoder.compress(data) + encoder.finish()


def compression_for(media_type: str) -> Compression:
    """The compression a layer media type declares (OCI image spec "Image Layer Filesystem Changeset")."""
    base = media_type.split(";", 1)[0].strip()
    if base.endswith(("tar+gzip", "tar.gzip")):
        return "gzip"
    if base.endswith(("tar+zstd", "tar.zstd")):
        return "zstd"
    if base.endswith((".v1.tar", "diff.tar", "layer.tar")) or base == "application/x-tar":
        return "none"
    raise UsageError(f"unsupported layer media type {media_type!r}: expected a tar, tar+gzip or tar+zstd layer")


def _sniff(stream: io.BufferedReader) -> Compression:
    head = stream.peek(4)[:4]
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


def open_uncompressed(stream: BinaryIO, media_type: str | None) -> BinaryIO:
    """A reader of the uncompressed tar inside a layer blob.

    *media_type* must be a known layer type (``None`` means: decide from the content alone). The
    compression actually used is taken from the stream's magic bytes, because Docker has long written
    uncompressed tars under gzip media types; the caller checks the diffID of what it reads anyway.
    gzip is decoded with igzip when available (else stdlib ``gzip``); zstd needs the optional
    ``zstandard`` package.
    """
    if media_type is not None:
        compression_for(media_type)
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(_RawAdapter(stream))
    kind = _sniff(buffered)
    if kind == "none":
        return buffered
    if kind == "gzip":
        if _igzip is not None:
            return _igzip.IGzipFile(fileobj=buffered, mode="rb")  # type: ignore[no-any-return]
        import gzip

        return gzip.GzipFile(fileobj=buffered, mode="rb")
    try:
        zstandard = importlib.import_module("zstandard")
    except ImportError as exc:
        raise CnbError(
            "cannot read a zstd-compressed layer: the optional 'zstandard' package is not installed"
        ) from exc
    return zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True)  # type: ignore[no-any-return]


class _RawAdapter(io.RawIOBase):
    """Lets io.BufferedReader wrap any object with a ``read`` method (for peeking at magic bytes)."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()
