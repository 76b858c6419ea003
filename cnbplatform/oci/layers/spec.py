"""What a layer is made of, and the sorted list of tar entries it becomes (docs/design.md section 3 decision 4).

:class:`LayerSpec` describes a layer (host trees under path prefixes, explicit entries, owners);
:func:`make_plan` turns a spec and the scans of its trees into the archive's entries in their final
order, applying the rules of docs/spec-notes.md section 16 items 35 and 36 (owners, modes) and the
determinism rules listed in :mod:`cnbplatform.oci.layers.tarlayer`.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from cnbplatform.errors import CnbError, UsageError
from cnbplatform.oci.layers.compress import MEDIA_TYPE_TAR_GZIP
from cnbplatform.oci.layers.fingerprint import DIR, FILE, ScanEntry, TreeScan
from cnbplatform.oci.layers.tarformat import DIRECTORY, HARDLINK, REGULAR, SYMLINK, encode_header

#: Changes whenever the same input would give different tar bytes (part of every cache key).
TAR_FORMAT: Final = "cnb-tar-1"

EntryKind = Literal["file", "dir", "symlink", "hardlink"]


@dataclass(frozen=True)
class Entry:
    """An entry added explicitly to a layer. ``path`` is the archive path (a leading ``/`` is dropped).

    For ``file`` entries, content comes from ``data`` or from the host file ``source`` (followed if
    it is a symlink; ``mode=None`` then takes its permission bits). ``target`` is the symlink target,
    or for ``hardlink`` the archive path of an earlier file entry. ``uid``/``gid`` of ``None`` use the
    layer's owner.
    """

    path: str
    kind: EntryKind
    mode: int | None = None
    data: bytes | None = None
    source: Path | None = None
    target: str = ""
    uid: int | None = None
    gid: int | None = None

    @classmethod
    def file(
        cls, path: str, data: bytes, *, mode: int = 0o644, uid: int | None = None, gid: int | None = None
    ) -> Entry:
        return cls(path, "file", mode=mode, data=data, uid=uid, gid=gid)

    @classmethod
    def host_file(
        cls, path: str, source: Path, *, mode: int | None = None, uid: int | None = None, gid: int | None = None
    ) -> Entry:
        return cls(path, "file", mode=mode, source=source, uid=uid, gid=gid)

    @classmethod
    def directory(cls, path: str, *, mode: int = 0o755, uid: int | None = None, gid: int | None = None) -> Entry:
        return cls(path, "dir", mode=mode, uid=uid, gid=gid)

    @classmethod
    def symlink(cls, path: str, target: str, *, uid: int | None = None, gid: int | None = None) -> Entry:
        return cls(path, "symlink", mode=0o777, target=target, uid=uid, gid=gid)

    @classmethod
    def hardlink(cls, path: str, target: str, *, uid: int | None = None, gid: int | None = None) -> Entry:
        return cls(path, "hardlink", target=target, uid=uid, gid=gid)


@dataclass(frozen=True)
class TreeSource:
    """A host directory archived under ``prefix`` (``""``: at the image root; leading ``/`` dropped).

    With a prefix, the tree's root directory itself becomes the prefix's last directory. ``select``
    (relative path, is_dir) -> bool keeps only some entries: a selected directory brings its whole
    subtree, and every kept entry brings its parent directories. ``select_key`` names the selection
    for caches (a select without a key makes the layer uncacheable by fingerprint).
    """

    root: Path
    prefix: str = ""
    uid: int | None = None
    gid: int | None = None
    select: Callable[[str, bool], bool] | None = field(default=None, compare=False)
    select_key: str | None = None


@dataclass(frozen=True)
class LayerSpec:
    """Everything that decides a layer's bytes besides file contents.

    Precedence when two sources give the same path: explicit entries, then later trees, then earlier
    trees, then implied parent directories (``parent_mode``, owner ``parent_uid``/``parent_gid``,
    defaulting to the layer's ``uid``/``gid``).
    """

    trees: tuple[TreeSource, ...] = ()
    entries: tuple[Entry, ...] = ()
    uid: int = 0
    gid: int = 0
    parent_mode: int = 0o755
    parent_uid: int | None = None
    parent_gid: int | None = None


@dataclass(frozen=True)
class LayerBlob:
    """A compressed layer blob on disk and its identities."""

    path: Path
    digest: str
    size: int
    diff_id: str
    uncompressed_size: int
    media_type: str = MEDIA_TYPE_TAR_GZIP
    #: The stat digest of the layer's one source tree as it was scanned for this blob (``fingerprint_scan``), when
    #: the layer is exactly one host directory with nothing skipped: lets the cache record the tree it keeps
    #: without walking it again. Not part of the blob's identity.
    tree_digest: str | None = field(default=None, compare=False)


def clean_path(path: str, *, what: str, allow_empty: bool = False) -> str:
    """*path* as a relative archive path: leading ``/``, ``.`` and empty parts dropped, ``..`` refused."""
    if "\0" in path:
        raise UsageError(f"invalid {what} {path!r}: NUL byte in a layer path")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"invalid {what} {path!r}: '..' is not allowed in a layer path")
    if not parts and not allow_empty:
        raise UsageError(f"invalid {what} {path!r}: a layer entry needs a non-empty path")
    return "/".join(parts)


def _encode(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


class Item:
    """One archive entry. ``name`` has no trailing slash; ``source`` is a host path to copy."""

    __slots__ = ("data", "dev", "gid", "ino", "kind", "link", "mode", "name", "nlink", "rank", "size", "source", "uid")

    def __init__(
        self,
        name: bytes,
        kind: bytes,
        mode: int,
        uid: int,
        gid: int,
        *,
        size: int = 0,
        link: bytes = b"",
        data: bytes | None = None,
        source: str | None = None,
        dev: int = 0,
        ino: int = 0,
        nlink: int = 1,
        rank: int = 1,
    ) -> None:
        self.name = name
        self.kind = kind
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.size = size
        self.link = link
        self.data = data
        self.source = source
        self.dev = dev
        self.ino = ino
        self.nlink = nlink
        self.rank = rank  # 0 implied parent, 1 tree entry, 2 explicit entry

    def header(self) -> bytes:
        name = self.name + b"/" if self.kind == DIRECTORY else self.name
        return encode_header(
            name, mode=self.mode, uid=self.uid, gid=self.gid, size=self.size, typeflag=self.kind, linkname=self.link
        )


def _selected(entries: Sequence[ScanEntry], select: Callable[[str, bool], bool]) -> list[ScanEntry]:
    """The entries *select* keeps, with whole subtrees of kept directories and all parents of kept
    entries. *entries* list parents before children."""
    keep: set[str] = set()
    whole: set[str] = set()  # kept directories: their subtrees are kept too
    for rel, kind, *_ in entries:
        if not rel:
            continue
        if rel.rpartition("/")[0] in whole or select(rel, kind == DIR):
            keep.add(rel)
            if kind == DIR:
                whole.add(rel)
    for rel in list(keep):
        parent = rel.rpartition("/")[0]
        while parent and parent not in keep:
            keep.add(parent)
            parent = parent.rpartition("/")[0]
    return [e for e in entries if not e[0] or e[0] in keep]


def _tree_items(spec: LayerSpec, tree: TreeSource, scan: TreeScan, items: dict[bytes, Item]) -> None:
    prefix = _encode(clean_path(tree.prefix, what="layer prefix", allow_empty=True))
    uid = spec.uid if tree.uid is None else tree.uid
    gid = spec.gid if tree.gid is None else tree.gid
    entries = scan.entries if tree.select is None else _selected(scan.entries, tree.select)
    for rel, kind, mode, size, _, _, ino, target, dev, nlink, path in entries:
        if rel:
            name = prefix + b"/" + _encode(rel) if prefix else _encode(rel)
        elif prefix:
            name = prefix
        else:
            continue  # the root of an unprefixed tree is the image root: no entry
        if kind == FILE:
            items[name] = Item(name, REGULAR, mode, uid, gid, size=size, source=path, dev=dev, ino=ino, nlink=nlink)
        elif kind == DIR:
            items[name] = Item(name, DIRECTORY, mode, uid, gid)
        else:
            items[name] = Item(name, SYMLINK, 0o777, uid, gid, link=_encode(target))


def _explicit_item(spec: LayerSpec, entry: Entry) -> Item:
    name = _encode(clean_path(entry.path, what="layer entry path"))
    uid = spec.uid if entry.uid is None else entry.uid
    gid = spec.gid if entry.gid is None else entry.gid
    if entry.kind == "dir":
        return Item(name, DIRECTORY, 0o755 if entry.mode is None else entry.mode, uid, gid, rank=2)
    if entry.kind == "symlink":
        if not entry.target:
            raise UsageError(f"invalid layer entry {entry.path!r}: a symlink needs a target")
        return Item(name, SYMLINK, 0o777, uid, gid, link=_encode(entry.target), rank=2)
    if entry.kind == "hardlink":
        target = _encode(clean_path(entry.target, what="hard link target"))
        return Item(name, HARDLINK, -1 if entry.mode is None else entry.mode, uid, gid, link=target, rank=2)
    if entry.data is not None:
        mode = 0o644 if entry.mode is None else entry.mode
        return Item(name, REGULAR, mode, uid, gid, size=len(entry.data), data=entry.data, rank=2)
    if entry.source is None:
        raise UsageError(f"invalid layer entry {entry.path!r}: a file needs data or a source path")
    try:
        st = os.stat(entry.source)
    except OSError as exc:
        raise CnbError(f"cannot add {entry.source} to a layer: {exc.strerror}") from exc
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"cannot add {entry.source} to a layer as {entry.path!r}: not a regular file")
    mode = stat.S_IMODE(st.st_mode) if entry.mode is None else entry.mode
    return Item(name, REGULAR, mode, uid, gid, size=st.st_size, source=os.fspath(entry.source), rank=2)


def make_plan(spec: LayerSpec, scans: Sequence[TreeScan]) -> list[Item]:
    """The archive's entries, in order, for *spec* whose trees were scanned as *scans*."""
    for owner in (spec.uid, spec.gid, spec.parent_uid, spec.parent_gid):
        if owner is not None and owner < 0:
            raise UsageError(f"invalid layer owner id {owner}: ids are non-negative")
    items: dict[bytes, Item] = {}
    for tree, scan in zip(spec.trees, scans, strict=True):
        _tree_items(spec, tree, scan, items)
    explicit: set[bytes] = set()
    for entry in spec.entries:
        item = _explicit_item(spec, entry)
        if item.name in explicit:
            raise UsageError(f"invalid layer: the path {entry.path!r} is added twice")
        explicit.add(item.name)
        items[item.name] = item
    parent_uid = spec.uid if spec.parent_uid is None else spec.parent_uid
    parent_gid = spec.gid if spec.parent_gid is None else spec.parent_gid
    for name in list(items):
        parent = name.rpartition(b"/")[0]
        while parent and parent not in items:
            items[parent] = Item(parent, DIRECTORY, spec.parent_mode, parent_uid, parent_gid, rank=0)
            parent = parent.rpartition(b"/")[0]
    plan = sorted(items.values(), key=lambda item: item.name.split(b"/"))
    _link(plan)
    return plan


def _link(plan: list[Item]) -> None:
    """Turn later paths of a hard-linked tree file into link entries; check explicit hard links."""
    first: dict[tuple[int, int], bytes] = {}
    position: dict[bytes, int] = {}
    for index, item in enumerate(plan):
        position[item.name] = index
        if item.kind == REGULAR and item.nlink > 1 and item.rank == 1:
            key = (item.dev, item.ino)
            seen = first.get(key)
            if seen is None:
                first[key] = item.name
            else:
                item.kind, item.link, item.size, item.source = HARDLINK, seen, 0, None
        elif item.kind == HARDLINK and item.rank == 2:
            target_index = position.get(item.link)
            if target_index is None or plan[target_index].kind != REGULAR:
                raise UsageError(
                    f"invalid layer: hard link {item.name.decode(errors='replace')!r} must point to a file "
                    "that sorts before it in the layer"
                )
            if item.mode < 0:
                item.mode = plan[target_index].mode
