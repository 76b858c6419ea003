"""Digests: documents hashed in memory and blobs read through a verifying reader agree with hashlib."""

from __future__ import annotations

import hashlib
import io

import pytest

from cnbplatform.errors import DigestMismatchError, UsageError
from cnbplatform.oci.digest import CHUNK, hash_stream, sha256_bytes, verified_reader, verify_bytes

SIZES = [0, 1, 4096, CHUNK, CHUNK + 1]


@pytest.mark.parametrize("size", SIZES)
def test_documents_hash_as_hashlib_does(size: int) -> None:
    data = bytes(i % 251 for i in range(size))
    sha256 = "sha256:" + hashlib.sha256(data).hexdigest()
    sha512 = "sha512:" + hashlib.sha512(data).hexdigest()
    assert sha256_bytes(data) == sha256
    assert verify_bytes(data, sha256, "doc") is data
    assert verify_bytes(data, sha512, "doc") is data
    assert hash_stream(io.BytesIO(data)) == (sha256, size)
    with verified_reader(io.BytesIO(data), sha512, size) as reader:
        assert reader.read() == data


def test_a_changed_document_or_an_unknown_algorithm_is_refused() -> None:
    data = b'{"schemaVersion":2}'
    digest = sha256_bytes(data)
    with pytest.raises(DigestMismatchError, match="digest mismatch for manifest"):
        verify_bytes(data + b" ", digest, "manifest")
    with pytest.raises(UsageError, match="unsupported digest algorithm 'md5'"):
        verify_bytes(data, "md5:" + hashlib.md5(data).hexdigest(), "manifest")
