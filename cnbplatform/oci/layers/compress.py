"""Layer compression: a deterministic gzip encoder and readers for gzip, zstd and plain layer blobs.

docs/design.md section 3 decision 4: layers are compressed with gzip from ``isal`` (igzip, level 1); stdlib
``zlib`` level 1 is the fallback when ``isal`` is not importable. docs/spec-notes.md section 16 item 42
(identical inputs give identical images) needs the compressed bytes to be a pure function of the
uncompressed bytes, so the encoding is fixed:

* one gzip member with a fixed header (no file name, mtime 0, XFL 0, OS byte 255 "unknown");
* the input is cut into :data:`FEED_CHUNK` blocks; each block is deflated on its own (level 1, 32 KiB
  window, memory level 8), primed with the previous 32 KiB of input as dictionary, and ended with a
  sync flush; an empty final block and the CRC-32/size trailer close the stream (the scheme pigz
  uses). Blocks therefore compress independently: several threads may deflate a stream's blocks at
  once and the result does not depend on how many did, or how the caller split its writes.

The output is identical for identical input with the same deflater (isal, or zlib); the two deflaters
produce different (equally valid) bytes, which is why :data:`COMPRESSOR` names the one in use.
"""

from __future__ import annotations

import importlib
import io
import struct
import zlib
from typing import Any, BinaryIO, Final, Literal, cast

from cnbplatform.errors import CnbError, UsageError

_igzip: Any
_isal_zlib: Any
try:
    _igzip = importlib.import_module("isal.igzip")
    _isal_zlib = importlib.import_module("isal.isal_zlib")
    HAVE_ISAL = True
except ImportError:  # pragma: no cover - isal is a dependency; tests monkeypatch this case
    _igzip = _isal_zlib = None
    HAVE_ISAL = False

#: Size of every block deflated on its own (the last block of a stream may be shorter).
FEED_CHUNK: Final = 1024 * 1024

MEDIA_TYPE_TAR: Final = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_TAR_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_TAR_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"

Compression = Literal["gzip", "zstd", "none"]

# gzip member header (RFC 1952 section 2.3): magic, CM=deflate, FLG=0, MTIME=0, XFL=0, OS=255.
GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
#: An empty deflate block with the "final" bit set (fixed Huffman codes, end-of-block only).
FINAL_BLOCK: Final = b"\x03\x00"
DICTIONARY_SIZE: Final = 32 * 1024
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


def deflate_block(data: bytes | bytearray | memoryview, dictionary: bytes = b"", *, isal: bool) -> bytes:
    """Raw deflate of one block, primed with *dictionary* (the previous 32 KiB), ending in a sync flush.

    A pure function (thread-safe; isal and zlib release the GIL while they work).
    """
    module: Any = _isal_zlib if isal else zlib
    if dictionary:
        deflater = module.compressobj(
            _LEVEL, module.DEFLATED, _RAW_DEFLATE_WBITS, _MEM_LEVEL, module.Z_DEFAULT_STRATEGY, dictionary
        )
    else:
        deflater = module.compressobj(_LEVEL, module.DEFLATED, _RAW_DEFLATE_WBITS, _MEM_LEVEL)
    out: bytes = deflater.compress(data) + deflater.flush(module.Z_SYNC_FLUSH)
    return out


def crc32(data: bytes | bytearray | memoryview, value: int = 0, *, isal: bool) -> int:
    result: int = (_isal_zlib.crc32 if isal else zlib.crc32)(data, value)
    return result


def gzip_trailer(crc: int, size: int) -> bytes:
    """The end of the member: an empty final deflate block, then CRC-32 and size modulo 2**32."""
    return FINAL_BLOCK + struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF)


class GzipEncoder:
    """A deterministic, streaming gzip encoder (one member, RFC 1952) that compresses in the calling
    thread. Not thread-safe: one encoder per stream; different encoders may run in different threads.
    """

    def __init__(self, *, use_isal: bool | None = None) -> None:
        self.isal = _want_isal(use_isal)
        self._crc = 0
        self._size = 0
        self._dictionary = b""
        self._pending = bytearray()
        self._started = False
        self._finished = False

    def _block(self, block: bytes | bytearray | memoryview) -> bytes:
        self._crc = crc32(block, self._crc, isal=self.isal)
        self._size += len(block)
        out = deflate_block(block, self._dictionary, isal=self.isal)
        self._dictionary = bytes(block[-DICTIONARY_SIZE:])
        return out

    def compress(self, data: bytes | bytearray | memoryview) -> bytes:
        """Compress *data*; returns the compressed bytes ready so far (the header on the first call)."""
        if self._finished:
            raise CnbError("gzip encoder used after finish()")
        out: list[bytes] = []
        if not self._started:
            self._started = True
            out.append(GZIP_HEADER)
        view = memoryview(data).cast("B")
        start = 0
        if self._pending:
            take = min(FEED_CHUNK - len(self._pending), len(view))
            self._pending += view[:take]
            start = take
            if len(self._pending) == FEED_CHUNK:
                out.append(self._block(self._pending))
                self._pending = bytearray()
        while len(view) - start >= FEED_CHUNK:
            out.append(self._block(view[start : start + FEED_CHUNK]))
            start += FEED_CHUNK
        if start < len(view):
            self._pending += view[start:]
        return b"".join(out)

    def finish(self) -> bytes:
        """The remaining compressed bytes and the gzip trailer."""
        if self._finished:
            raise CnbError("gzip encoder finished twice")
        out = [self.compress(b"")]
        if self._pending:
            out.append(self._block(self._pending))
            self._pending = bytearray()
        out.append(gzip_trailer(self._crc, self._size))
        self._finished = True
        return b"".join(out)


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


def _sniff(head: bytes) -> Compression:
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
    ``zstandard`` package. Closing the returned reader closes *stream*.
    """
    if media_type is not None:
        compression_for(media_type)
    head = b""
    while len(head) < len(_ZSTD_MAGIC):
        more = stream.read(len(_ZSTD_MAGIC) - len(head))
        if not more:
            break
        head += more
    buffered = io.BufferedReader(_PrefixedRaw(head, stream), buffer_size=FEED_CHUNK)
    kind = _sniff(head)
    if kind == "none":
        return buffered
    if kind == "gzip":
        if _igzip is not None:
            return cast(BinaryIO, _igzip.IGzipFile(fileobj=buffered, mode="rb"))
        import gzip  # the fallback when isal is missing

        return cast(BinaryIO, gzip.GzipFile(fileobj=buffered, mode="rb"))
    try:
        zstandard = importlib.import_module("zstandard")
    except ImportError as exc:
        raise CnbError(
            "cannot read a zstd-compressed layer: the optional 'zstandard' package is not installed"
        ) from exc
    return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(buffered, read_across_frames=True))


class _PrefixedRaw(io.RawIOBase):
    """A raw stream that returns *head* (bytes already read for sniffing), then the rest of *stream*."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head = head
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(self._head), len(view))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            super().close()
