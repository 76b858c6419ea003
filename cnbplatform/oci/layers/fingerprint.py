"""Scanning a source tree, and its stat fingerprint with a racy-file guard.

docs/design.md section 3 decision 4: an unchanged layer is never tarred, hashed or compressed twice. The
cheap "unchanged" test is a fingerprint of the tree's metadata, computed with ``os.scandir``/``lstat``
only (no file is opened). It is trusted the way git trusts its index:

* every entry contributes (relative path, type, size, mode, mtime_ns, ctime_ns, inode, link target,
  device, link count; not the host path, nor the root directory's own ctime, so a tree renamed into place
  keeps its fingerprint); ctime is included because tools that copy or extract files can set
  an old mtime on new content, but nothing can set ctime;
* racy guard: a file or symlink whose mtime or ctime is not older than the scan's start time minus
  :data:`RACY_MARGIN_NS` could still be changed within the same timestamp granularity without its
  metadata changing, so such a fingerprint is marked *unstable* and must not be used to skip work.

The same scan, taken once, also feeds the tar writer (:mod:`cnbplatform.oci.layers.tarlayer`), so the layer
is written from exactly the metadata that was fingerprinted. A second digest, the *shape*, leaves out
times and inodes; it tells whether a changed fingerprint may still hold the same content.
"""

from __future__ import annotations

import hashlib
import operator
import os
import pickle
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cnbplatform.errors import CnbError

#: How close to the scan a timestamp may be before the entry counts as racy, on filesystems that keep
#: sub-second timestamps (ext4, xfs, btrfs, tmpfs, overlayfs: the kernel clock ticks every 1-10 ms).
RACY_MARGIN_NS: Final = 100_000_000
#: ... and on filesystems whose timestamps are whole seconds (FAT, SMB, some network filesystems).
COARSE_RACY_MARGIN_NS: Final = 2_000_000_000

DIR: Final = "d"
FILE: Final = "f"
SYMLINK: Final = "l"


#: One entry of a scanned tree, a plain tuple (cheap to build and to hash):
#: (rel, kind, mode, size, mtime_ns, ctime_ns, ino, target, dev, nlink, path) where ``rel`` is the
#: POSIX-style path relative to the root (``""`` for the root), ``kind`` is DIR/FILE/SYMLINK, ``mode``
#: holds the permission bits with setuid/setgid/sticky, ``size`` is 0 unless a file, ``target`` is a
#: symlink's target (else ``""``) and ``path`` the host path.
ScanEntry = tuple[str, str, int, int, int, int, int, str, int, int, str]


@dataclass(frozen=True)
class TreeScan:
    """A tree's entries, root first, parents before children, siblings in name order."""

    root: Path
    entries: tuple[ScanEntry, ...]
    skipped: tuple[str, ...]  # sockets, fifos and devices: never archived
    started_ns: int


@dataclass(frozen=True)
class TreeFingerprint:
    """sha256 of a tree's metadata, and whether it may be trusted (``stable``)."""

    digest: str
    stable: bool
    entries: int
    total_size: int
    racy: tuple[str, ...]  # a few of the entries that made it unstable


_IFMT: Final = 0o170000
_IFREG: Final = stat.S_IFREG
_IFDIR: Final = stat.S_IFDIR
_IFLNK: Final = stat.S_IFLNK
_name = operator.attrgetter("name")


def scan_tree(root: Path) -> TreeScan:
    """Walk *root* (not following symlinks below it) and return its entries (no file is opened).

    Siblings are visited in name order, so the result is the same on every machine; the tar writer
    sorts the final archive itself.
    """
    started = time.time_ns()
    root_str = os.fspath(root)
    try:
        st = os.stat(root_str)
    except OSError as exc:
        raise CnbError(f"cannot scan layer source {root}: {exc.strerror}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise CnbError(f"cannot scan layer source {root}: not a directory")
    entries: list[ScanEntry] = [
        ("", DIR, st.st_mode & 0o7777, 0, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, "", st.st_dev, st.st_nlink,
         root_str)
    ]  # fmt: skip
    append = entries.append
    skipped: list[str] = []
    pending: list[tuple[str, str]] = [(root_str, "")]
    while pending:
        directory, base = pending.pop()
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=_name)
        except OSError as exc:
            raise CnbError(f"cannot scan layer source directory {directory}: {exc.strerror}") from exc
        subdirs: list[tuple[str, str]] = []
        for child in children:
            try:
                st = child.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we looked: it is not part of the tree
            except OSError as exc:
                raise CnbError(f"cannot stat layer source file {child.path}: {exc.strerror}") from exc
            rel = base + child.name
            mode = st.st_mode
            fmt = mode & _IFMT
            if fmt == _IFREG:
                kind, size, target = FILE, st.st_size, ""
            elif fmt == _IFDIR:
                kind, size, target = DIR, 0, ""
                subdirs.append((child.path, rel + "/"))
            elif fmt == _IFLNK:
                kind, size, target = SYMLINK, 0, os.readlink(child.path)
            else:
                skipped.append(rel)
                continue
            append((rel, kind, mode & 0o7777, size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, target, st.st_dev,
                    st.st_nlink, child.path))  # fmt: skip
        subdirs.reverse()
        pending += subdirs
    return TreeScan(root, tuple(entries), tuple(skipped), started)


def fingerprint_scan(scan: TreeScan, *, margin_ns: int = RACY_MARGIN_NS) -> TreeFingerprint:
    """Fingerprint of a scan (see the module docstring for what goes in and when it is unstable)."""
    entries = scan.entries
    if margin_ns < COARSE_RACY_MARGIN_NS and _coarse_timestamps(entries):
        margin_ns = COARSE_RACY_MARGIN_NS
    limit = scan.started_ns - margin_ns
    racy = [e[0] or "." for e in entries if (e[4] >= limit or e[5] >= limit) and e[1] != DIR]
    # A pickle without memo depends on the values only; it is streamed into the hash.
    hasher = hashlib.sha256()
    pickler = pickle.Pickler(_HashWriter(hasher), protocol=5)
    pickler.fast = True
    # Leave out host paths and the root directory's ctime: a tree moved into place with a rename (a layer
    # restored from the cache) keeps every inode, mtime and child ctime, and must fingerprint the same.
    root = entries[0]
    pickler.dump([(*root[:5], 0, *root[6:10]), *(e[:10] for e in entries[1:])])
    return TreeFingerprint(
        digest="sha256:" + hasher.hexdigest(),
        stable=not racy,
        entries=len(entries),
        total_size=sum(e[3] for e in entries),
        racy=tuple(racy[:8]),
    )


def _coarse_timestamps(entries: Sequence[ScanEntry]) -> bool:
    """Whether the filesystem keeps whole-second timestamps (every sampled mtime and ctime is a whole second)."""
    sample = entries[:64]
    return all(e[4] % 1_000_000_000 == 0 and e[5] % 1_000_000_000 == 0 for e in sample)


class _HashWriter:
    __slots__ = ("write",)

    def __init__(self, hasher: hashlib._Hash) -> None:
        self.write = hasher.update


def shape_digest(scan: TreeScan) -> str:
    """sha256 of what decides the tar apart from file contents: paths, types, sizes, modes, link
    targets and hard-link groups (no times, no inode numbers)."""
    first_of_inode: dict[tuple[int, int], str] = {}
    shape: list[tuple[str, str, int, int, str, str]] = []
    for rel, kind, mode, size, _, _, ino, target, dev, nlink, _ in scan.entries:
        link = first_of_inode.setdefault((dev, ino), rel) if kind == FILE and nlink > 1 else ""
        shape.append((rel, kind, size, mode, target, link))
    return "sha256:" + hashlib.sha256(repr(shape).encode("utf-8", "surrogateescape")).hexdigest()


def fingerprint_tree(root: Path, *, margin_ns: int = RACY_MARGIN_NS) -> TreeFingerprint:
    """Scan *root* and fingerprint it (no file is read)."""
    return fingerprint_scan(scan_tree(root), margin_ns=margin_ns)


def stat_line(path: Path, *, now_ns: int, margin_ns: int = RACY_MARGIN_NS) -> tuple[str, bool]:
    """Fingerprint line of one host file (``lstat``), and whether it is stable."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise CnbError(f"cannot stat layer source file {path}: {exc.strerror}") from exc
    target = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
    line = f"{st.st_mode:o}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\0{target}"
    limit = now_ns - margin_ns
    return line, st.st_mtime_ns < limit and st.st_ctime_ns < limit
