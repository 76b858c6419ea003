"""Scanning a source tree, and its stat fingerprint with a racy-file guard.

DESIGN.md section 3 decision 4: an unchanged layer is never tarred, hashed or compressed twice. The
cheap "unchanged" test is a fingerprint of the tree's metadata, computed with ``os.scandir``/``lstat``
only (no file is opened). It is trusted the way git trusts its index:

* every entry contributes (relative path, type, size, mode, mtime_ns, ctime_ns, inode, link target);
  ctime is included because tools that copy or extract files can set an old mtime on new content,
  but nothing can set ctime;
* racy guard: a file or symlink whose mtime or ctime is not older than the scan's start time minus
  :data:`RACY_MARGIN_NS` could still be changed within the same timestamp granularity without its
  metadata changing, so such a fingerprint is marked *unstable* and must not be used to skip work.

The same scan, taken once, also feeds the tar writer (:mod:`cnbplatform.oci.tarlayer`), so the layer
is written from exactly the metadata that was fingerprinted. A second digest, the *shape*, leaves out
times and inodes; it tells whether a changed fingerprint may still hold the same content.
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

from cnbplatform.errors import CnbError

#: How close to the scan a timestamp may be before the entry counts as racy (2 s: FAT/SMB granularity).
RACY_MARGIN_NS: Final = 2_000_000_000

DIR: Final = "d"
FILE: Final = "f"
SYMLINK: Final = "l"


class ScanEntry(NamedTuple):
    """One entry of a scanned tree. ``rel`` is POSIX-style relative to the root; ``""`` is the root."""

    rel: str
    kind: str  # DIR, FILE or SYMLINK
    mode: int  # permission bits with setuid/setgid/sticky
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int
    nlink: int
    target: str  # symlink target, else ""
    path: str  # host path


@dataclass(frozen=True)
class TreeScan:
    """A tree's entries in archive order (depth first, names sorted by their bytes), root first."""

    root: Path
    entries: tuple[ScanEntry, ...]
    skipped: tuple[str, ...]  # sockets, fifos and devices: never archived
    started_ns: int


@dataclass(frozen=True)
class TreeFingerprint:
    """sha256 of a tree's metadata (``digest``), of its content-relevant metadata (``shape``)."""

    digest: str
    shape: str
    stable: bool
    entries: int
    total_size: int
    racy: tuple[str, ...]  # a few of the entries that made it unstable


def _sort_key(entry: os.DirEntry[str]) -> bytes:
    return entry.name.encode("utf-8", "surrogateescape")


def _entry(rel: str, path: str, st: os.stat_result) -> ScanEntry | None:
    fmt = stat.S_IFMT(st.st_mode)
    if fmt == stat.S_IFREG:
        kind, size, target = FILE, st.st_size, ""
    elif fmt == stat.S_IFDIR:
        kind, size, target = DIR, 0, ""
    elif fmt == stat.S_IFLNK:
        kind, size, target = SYMLINK, 0, os.readlink(path)
    else:
        return None
    return ScanEntry(
        rel,
        kind,
        stat.S_IMODE(st.st_mode),
        size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_dev,
        st.st_nlink,
        target,
        path,
    )


def scan_tree(root: Path) -> TreeScan:
    """Walk *root* (not following symlinks below it) and return its entries in archive order."""
    started = time.time_ns()
    root_str = os.fspath(root)
    try:
        root_stat = os.stat(root_str)
    except OSError as exc:
        raise CnbError(f"cannot scan layer source {root}: {exc.strerror}") from exc
    if not stat.S_ISDIR(root_stat.st_mode):
        raise CnbError(f"cannot scan layer source {root}: not a directory")
    first = _entry("", root_str, root_stat)
    assert first is not None
    entries: list[ScanEntry] = [first]
    skipped: list[str] = []
    # Depth-first, pre-order: children are pushed reversed so the smallest name is popped first.
    stack: list[ScanEntry] = []
    _push_children(first, stack, skipped)
    while stack:
        item = stack.pop()
        entries.append(item)
        if item.kind == DIR:
            _push_children(item, stack, skipped)
    return TreeScan(root, tuple(entries), tuple(skipped), started)


def _push_children(parent: ScanEntry, stack: list[ScanEntry], skipped: list[str]) -> None:
    try:
        with os.scandir(parent.path) as it:
            children = sorted(it, key=_sort_key, reverse=True)
    except OSError as exc:
        raise CnbError(f"cannot scan layer source directory {parent.path}: {exc.strerror}") from exc
    base = parent.rel + "/" if parent.rel else ""
    for child in children:
        rel = base + child.name
        try:
            item = _entry(rel, child.path, child.stat(follow_symlinks=False))
        except FileNotFoundError:
            continue  # removed while we looked: it is not part of the tree
        except OSError as exc:
            raise CnbError(f"cannot stat layer source file {child.path}: {exc.strerror}") from exc
        if item is None:
            skipped.append(rel)
        else:
            stack.append(item)


def fingerprint_scan(scan: TreeScan, *, margin_ns: int = RACY_MARGIN_NS) -> TreeFingerprint:
    """Fingerprint of a scan (see the module docstring for what goes in and when it is unstable)."""
    limit = scan.started_ns - margin_ns
    full: list[str] = []
    shape: list[str] = []
    racy: list[str] = []
    first_of_inode: dict[tuple[int, int], str] = {}
    total = 0
    for e in scan.entries:
        full.append(
            f"{e.rel}\0{e.kind}\0{e.size}\0{e.mode:o}\0{e.mtime_ns}\0{e.ctime_ns}\0{e.ino}\0{e.target}\n"
        )
        link = ""
        if e.kind == FILE and e.nlink > 1:
            link = first_of_inode.setdefault((e.dev, e.ino), e.rel)
        shape.append(f"{e.rel}\0{e.kind}\0{e.size}\0{e.mode:o}\0{e.target}\0{link}\n")
        total += e.size
        if e.kind != DIR and (e.mtime_ns >= limit or e.ctime_ns >= limit) and len(racy) < 8:
            racy.append(e.rel or ".")
    return TreeFingerprint(
        digest=_sha256_lines(full),
        shape=_sha256_lines(shape),
        stable=not racy,
        entries=len(scan.entries),
        total_size=total,
        racy=tuple(racy),
    )


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


def _sha256_lines(lines: list[str]) -> str:
    return "sha256:" + hashlib.sha256("".join(lines).encode("utf-8", "surrogateescape")).hexdigest()
