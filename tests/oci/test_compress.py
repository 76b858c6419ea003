"""Deterministic gzip and layer decompression (docs/design.md section 3 decision 4; docs/spec-notes.md section 16 item 42)."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import os
import random
import zlib
from typing import Any

import pytest

from cnbplatform.errors import CnbError, UsageError
from cnbplatform.oci.layers import compress
from cnbplatform.oci.layers.compress import (
    FEED_CHUNK,
    GzipEncoder,
    compression_for,
    compressor_name,
    gzip_bytes,
    open_uncompressed,
)
from cnbplatform.oci.layers.stream import CompressingPipe


def _sample(size: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    text = b"".join(b"line %d of some text %d\n" % (i, rng.randint(0, 99)) for i in range(size // 20 + 1))
    mixed = bytearray(text[: size // 2])
    mixed += rng.randbytes(size - len(mixed))
    return bytes(mixed)


def _encode_in_pieces(data: bytes, sizes: list[int], use_isal: bool | None = None) -> bytes:
    encoder = GzipEncoder(use_isal=use_isal)
    out, start, index = [], 0, 0
    while start < len(data):
        step = sizes[index % len(sizes)]
        out.append(encoder.compress(data[start : start + step]))
        start += step
        index += 1
    out.append(encoder.finish())
    return b"".join(out)


def test_gzip_header_is_fixed_and_output_decompresses() -> None:
    data = _sample(100_000)
    blob = gzip_bytes(data)
    # ID1 ID2 CM FLG(no name, no extra) MTIME=0 XFL=0 OS=255
    assert blob[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    assert gzip.decompress(blob) == data
    assert zlib.crc32(data).to_bytes(4, "little") == blob[-8:-4]
    assert len(data).to_bytes(4, "little") == blob[-4:]


def test_output_does_not_depend_on_how_the_input_is_split() -> None:
    data = _sample(3 * FEED_CHUNK + 12345)
    whole = _encode_in_pieces(data, [len(data)])
    assert _encode_in_pieces(data, [1, 70_000, 999_999, FEED_CHUNK, 3]) == whole
    assert _encode_in_pieces(data, [FEED_CHUNK]) == whole
    assert gzip.decompress(whole) == data


@pytest.mark.parametrize("workers", [0, 1, 3])
def test_parallel_block_compression_gives_the_same_bytes(workers: int) -> None:
    data = _sample(4 * FEED_CHUNK + 777)
    expected = _encode_in_pieces(data, [len(data)])
    out = io.BytesIO()
    pipe = CompressingPipe(out, use_isal=None, workers=workers, what="test stream")
    for start in range(0, len(data), FEED_CHUNK):
        pipe.put(bytearray(data[start : start + FEED_CHUNK]))
    digest, size = pipe.finish()
    assert out.getvalue() == expected
    assert size == len(expected)
    assert digest == "sha256:" + hashlib.sha256(expected).hexdigest()


def test_pipe_refuses_a_short_chunk_in_the_middle() -> None:
    pipe = CompressingPipe(io.BytesIO(), use_isal=None, workers=0, what="test stream")
    pipe.put(bytearray(10))
    with pytest.raises(CnbError, match="short chunk"):
        pipe.put(bytearray(FEED_CHUNK))
    pipe.abort()


def test_isal_and_zlib_both_decompress_to_the_input() -> None:
    data = _sample(2 * FEED_CHUNK + 5)
    with_isal = _encode_in_pieces(data, [len(data)], use_isal=True)
    with_zlib = _encode_in_pieces(data, [len(data)], use_isal=False)
    assert gzip.decompress(with_isal) == data
    assert gzip.decompress(with_zlib) == data
    assert compressor_name(True) == "isal-1"
    assert compressor_name(False) == "zlib-1"


def test_fallback_to_zlib_when_isal_is_not_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compress, "HAVE_ISAL", False)
    monkeypatch.setattr(compress, "_isal_zlib", None)
    monkeypatch.setattr(compress, "_igzip", None)
    data = _sample(50_000)
    blob = gzip_bytes(data)
    assert gzip.decompress(blob) == data
    assert blob == _encode_in_pieces(data, [len(data)], use_isal=False)
    assert compressor_name() == "zlib-1"
    with pytest.raises(CnbError, match="isal"):
        GzipEncoder(use_isal=True)
    # reading falls back to the stdlib gzip module
    with open_uncompressed(io.BytesIO(blob), compress.MEDIA_TYPE_TAR_GZIP) as reader:
        assert reader.read() == data


def test_encoder_misuse_is_reported() -> None:
    encoder = GzipEncoder()
    encoder.finish()
    with pytest.raises(CnbError):
        encoder.compress(b"x")
    with pytest.raises(CnbError):
        encoder.finish()


@pytest.mark.parametrize(
    ("media_type", "kind"),
    [
        ("application/vnd.oci.image.layer.v1.tar+gzip", "gzip"),
        ("application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"),
        ("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "gzip"),
        ("application/vnd.oci.image.layer.v1.tar+zstd", "zstd"),
        ("application/vnd.oci.image.layer.v1.tar", "none"),
        ("application/vnd.docker.image.rootfs.diff.tar", "none"),
    ],
)
def test_compression_for_media_types(media_type: str, kind: str) -> None:
    assert compression_for(media_type) == kind


def test_unknown_media_type_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unsupported layer media type"):
        open_uncompressed(io.BytesIO(b""), "application/json")


def test_open_uncompressed_gzip_plain_and_mislabelled() -> None:
    data = _sample(300_000)
    blob = gzip_bytes(data)
    with open_uncompressed(io.BytesIO(blob), "application/vnd.oci.image.layer.v1.tar+gzip") as reader:
        assert reader.read() == data
    with open_uncompressed(io.BytesIO(data), "application/vnd.oci.image.layer.v1.tar") as reader:
        assert reader.read() == data
    # Docker has written plain tars under the gzip media type: the content decides.
    with open_uncompressed(io.BytesIO(data), "application/vnd.docker.image.rootfs.diff.tar.gzip") as reader:
        assert reader.read() == data
    with open_uncompressed(io.BytesIO(blob), None) as reader:
        assert reader.read() == data


class _Trickle(io.RawIOBase):
    """A stream that returns at most 3 bytes per read, like a slow network body."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(3 if size < 0 else min(size, 3))


def test_open_uncompressed_sniffs_short_reads() -> None:
    data = _sample(20_000)
    with open_uncompressed(_Trickle(gzip_bytes(data)), "application/vnd.oci.image.layer.v1.tar+gzip") as r:  # type: ignore[arg-type]
        assert r.read() == data
    with open_uncompressed(_Trickle(data), None) as r:  # type: ignore[arg-type]
        assert r.read() == data
    with open_uncompressed(io.BytesIO(b""), None) as r:
        assert r.read() == b""


def test_open_uncompressed_reads_other_gzip_writers() -> None:
    data = os.urandom(10_000) + b"a" * 10_000
    with open_uncompressed(
        io.BytesIO(gzip.compress(data, mtime=123)), "application/vnd.oci.image.layer.v1.tar+gzip"
    ) as r:
        assert r.read() == data


def test_zstd_without_zstandard_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def fake_import(name: str, *args: Any) -> Any:
        if name == "zstandard":
            raise ImportError("No module named 'zstandard'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    zstd_frame = b"\x28\xb5\x2f\xfd" + b"\0" * 16
    with pytest.raises(CnbError, match="zstandard"):
        open_uncompressed(io.BytesIO(zstd_frame), "application/vnd.oci.image.layer.v1.tar+zstd")
