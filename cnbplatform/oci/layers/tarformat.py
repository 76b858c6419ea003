"""Encoding of tar headers for deterministic layers (POSIX.1-1988 ustar, pax when needed).

docs/design.md section 3 decision 4 and docs/spec-notes.md section 16 item 35: every header carries mtime
1980-01-01T00:00:01Z, numeric owners and empty uname/gname. Plain ustar headers are written whenever
the values fit (names up to 100 bytes, or split at a ``/`` into a 155-byte prefix and a 100-byte name;
sizes below 8 GiB; ids below 2097152); otherwise a pax extended header (typeflag ``x``) carries the
value and the ustar header a truncated/zero stand-in. Readers: GNU tar, Go's archive/tar, skopeo,
umoci and Python's tarfile all accept this format.
"""

from __future__ import annotations

import struct
from typing import Final

#: 1980-01-01T00:00:01Z, the mtime of every entry (docs/spec-notes.md section 16 item 35).
EPOCH: Final = 315532801

BLOCK: Final = 512
END_OF_ARCHIVE: Final = b"\0" * (2 * BLOCK)

REGULAR: Final = b"0"
HARDLINK: Final = b"1"
SYMLINK: Final = b"2"
DIRECTORY: Final = b"5"
PAX: Final = b"x"

_MAX_OCTAL_7: Final = 0o7777777
_MAX_OCTAL_11: Final = 0o77777777777
_PAX_NAME: Final = b"././@PaxHeader"

# name mode uid gid size mtime chksum typeflag linkname magic version uname gname devmajor devminor
# prefix padding; struct pads each "Ns" field with NUL bytes.
_LAYOUT: Final = struct.Struct("100s8s8s8s12s12s8s1s100s6s2s32s32s8s8s155s12s")
_MTIME_FIELD: Final = b"%011o\0" % EPOCH
_ZERO7: Final = b"0000000\0"
_MAGIC: Final = b"ustar\0"
_VERSION: Final = b"00"
_CONSTANT_SUM: Final = sum(_MTIME_FIELD) + sum(b" " * 8) + sum(_MAGIC) + sum(_VERSION) + 2 * sum(_ZERO7)


def _split_name(name: bytes) -> tuple[bytes, bytes] | None:
    """(ustar prefix, name) for *name*, or None when it does not fit ustar."""
    if len(name) <= 100:
        return b"", name
    # The rightmost usable "/" gives the shortest name part; a trailing "/" (directories) cannot split.
    cut = name.rfind(b"/", 0, min(156, len(name) - 1))
    if cut <= 0 or len(name) - cut - 1 > 100:
        return None
    return name[:cut], name[cut + 1 :]


def _pax_record(key: bytes, value: bytes) -> bytes:
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length = len(str(length)) + len(body)
    return str(length).encode() + body


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _ustar(
    name: bytes,
    prefix: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    typeflag: bytes,
    linkname: bytes,
) -> bytes:
    mode_field = b"%07o\0" % mode
    uid_field = b"%07o\0" % uid
    gid_field = b"%07o\0" % gid
    size_field = b"%011o\0" % size
    # The checksum is the sum of all header bytes with the checksum field taken as spaces; NUL
    # padding adds nothing, so summing the fields is enough (and much cheaper than 512 bytes).
    checksum = (
        _CONSTANT_SUM
        + sum(name)
        + sum(mode_field)
        + sum(uid_field)
        + sum(gid_field)
        + sum(size_field)
        + typeflag[0]
        + sum(linkname)
        + sum(prefix)
    )
    return _LAYOUT.pack(
        name,
        mode_field,
        uid_field,
        gid_field,
        size_field,
        _MTIME_FIELD,
        b"%06o\0 " % checksum,
        typeflag,
        linkname,
        _MAGIC,
        _VERSION,
        b"",
        b"",
        _ZERO7,
        _ZERO7,
        prefix,
        b"",
    )


def encode_header(
    name: bytes, *, mode: int, uid: int, gid: int, size: int, typeflag: bytes, linkname: bytes = b""
) -> bytes:
    """The header block(s) for one entry: one ustar block, or a pax header, its data and a ustar block.

    *name* is the archive path, relative, with a trailing ``/`` for directories.
    """
    split = _split_name(name)
    if (
        split is not None
        and len(linkname) <= 100
        and size <= _MAX_OCTAL_11
        and uid <= _MAX_OCTAL_7
        and gid <= _MAX_OCTAL_7
    ):
        return _ustar(split[1], split[0], mode & 0o7777, uid, gid, size, typeflag, linkname)
    records: dict[bytes, bytes] = {}
    if gid > _MAX_OCTAL_7:
        records[b"gid"] = b"%d" % gid
    if (split is None and not _is_utf8(name)) or (len(linkname) > 100 and not _is_utf8(linkname)):
        records[b"hdrcharset"] = b"BINARY"
    if len(linkname) > 100:
        records[b"linkpath"] = linkname
    if split is None:
        records[b"path"] = name
    if size > _MAX_OCTAL_11:
        records[b"size"] = b"%d" % size
    if uid > _MAX_OCTAL_7:
        records[b"uid"] = b"%d" % uid
    data = b"".join(_pax_record(key, value) for key, value in sorted(records.items()))
    pax = _ustar(_PAX_NAME, b"", 0o644, 0, 0, len(data), PAX, b"")
    ustar_prefix, ustar_name = split if split is not None else (b"", name[:100])
    main = _ustar(
        ustar_name,
        ustar_prefix,
        mode & 0o7777,
        uid if uid <= _MAX_OCTAL_7 else 0,
        gid if gid <= _MAX_OCTAL_7 else 0,
        size if size <= _MAX_OCTAL_11 else 0,
        typeflag,
        linkname[:100],
    )
    return pax + data + b"\0" * padding(len(data)) + main


def padding(size: int) -> int:
    """Number of NUL bytes that complete a data section of *size* bytes to whole blocks."""
    return -size % BLOCK
