"""Safe unpacking of OCI image layers into a root filesystem directory (DESIGN.md section 3, decision 2).

Implements the OCI image spec "Image Layer Filesystem Changeset" (layer.md): regular files, directories,
symlinks, hard links, device nodes and fifos, with the "Whiteouts" rules (``.wh.<name>`` deletes
``<name>`` from lower layers, ``.wh..wh..opq`` hides all lower-layer children of its directory; both
only ever hide lower-layer content, never entries of the same layer, wherever they sit in the tar).

Security: every path is resolved component by component from a directory fd of the root, opening each
existing parent with ``O_NOFOLLOW | O_DIRECTORY``; an entry whose name is absolute, escapes with ``..``,
or whose parent on disk is a symlink (or not a directory) is refused with UnsafeArchiveError before
anything is written for it. Nothing is ever written through a symlink, so nothing outside the root can
be created or changed. Symlink targets are stored verbatim (they are resolved against the image root
at run time, not here). The stream is read once, forward only (``tarfile`` mode ``r|``), and then read
to its end so a digest-verifying reader underneath gets to check the whole blob.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from cnbplatform.errors import CnbError, UnsafeArchiveError
from cnbplatform.oci.digest import CHUNK

__all__ = ["LayerSource", "unpack_layers", "unpack_tar"]

#: (name used in messages, e.g. "layer sha256:ab…", opener of the UNCOMPRESSED tar stream)
LayerSource = tuple[str, Callable[[], AbstractContextManager[BinaryIO]]]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_Parts = tuple[str, ...]


def _is_root() -> bool:
    """Whether ownership and device nodes can be restored (tests monkeypatch this)."""
    return os.geteuid() == 0


class _Layer:
    """Applies the entries of one layer tar onto an open root directory fd."""

    def __init__(self, root_fd: int, what: str) -> None:
        self.root_fd = root_fd
        self.what = what
        self.as_root = _is_root()
        self.added: set[_Parts] = set()  # paths this layer wrote
        self.touched: set[_Parts] = set()  # those paths and all their ancestors
        self.dir_meta: dict[_Parts, tuple[int, float]] = {}  # directory -> (mode, mtime), set at the end
        self.entry = ""

    # -- helpers -------------------------------------------------------------------------------------

    def refuse(self, reason: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"unpacking {self.what}: refusing entry {self.entry!r}: {reason}")

    def split(self, name: str) -> _Parts:
        """Normalise a tar name to path components below the root; refuse absolute or escaping names."""
        if name.startswith("/"):
            raise self.refuse("absolute path")
        parts: list[str] = []
        for comp in name.split("/"):
            if comp in ("", "."):
                continue
            if comp == "..":
                if not parts:
                    raise self.refuse("path escapes the root directory")
                parts.pop()
            else:
                parts.append(comp)
        return tuple(parts)

    def mark(self, parts: _Parts) -> None:
        self.added.add(parts)
        for i in range(len(parts) + 1):
            self.touched.add(parts[:i])

    def open_dir(self, parts: _Parts, *, create: bool) -> int | None:
        """An fd of the directory *parts*, walked without following symlinks; None if missing and not
        *create*. Missing directories are created (0755) only when *create*."""
        fd = os.dup(self.root_fd)
        try:
            for i, comp in enumerate(parts):
                try:
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        os.close(fd)
                        return None
                    os.mkdir(comp, 0o755, dir_fd=fd)
                    self.touched.add(parts[: i + 1])
                    nfd = os.open(comp, _DIR_FLAGS, dir_fd=fd)
                    os.fchmod(nfd, 0o755)
                except OSError as exc:
                    if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                        raise
                    where = "/".join(parts[: i + 1])
                    kind = "a symlink" if _is_link(fd, comp) else "not a directory"
                    raise self.refuse(f"parent {where!r} is {kind}") from exc
                os.close(fd)
                fd = nfd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def clear(self, dir_fd: int, name: str, *, keep_dir: bool = False) -> bool:
        """Remove whatever is at *name* (never following a symlink). Returns True if a directory was
        kept because *keep_dir*."""
        try:
            st = os.lstat(name, dir_fd=dir_fd)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(name, dir_fd=dir_fd)
        else:
            os.unlink(name, dir_fd=dir_fd)
        return False

    def owner(self, dir_fd: int, name: str, member: tarfile.TarInfo) -> None:
        if self.as_root:
            os.chown(name, member.uid, member.gid, dir_fd=dir_fd, follow_symlinks=False)

    # -- entries -------------------------------------------------------------------------------------

    def apply(self, archive: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.entry = member.name
        parts = self.split(member.name)
        if parts and parts[-1].startswith(WHITEOUT_PREFIX):
            self.whiteout(parts)
            return
        if member.isdir():
            self.directory(parts, member)
        elif not parts:
            raise self.refuse("only a directory may stand for the root")
        elif member.islnk():
            self.hardlink(parts, member)
        elif member.isreg():
            self.regular(parts, member, archive)
        elif member.issym():
            self.place(parts, member, lambda fd, name: os.symlink(member.linkname, name, dir_fd=fd))
        elif member.ischr() or member.isblk() or member.isfifo():
            if self.as_root:  # without root, device nodes and fifos are skipped (layer.md allows it)
                self.place(parts, member, lambda fd, name: _mknod(fd, name, member))
        else:
            raise self.refuse(f"unsupported entry type {member.type!r}")

    def directory(self, parts: _Parts, member: tarfile.TarInfo) -> None:
        parent = self.open_dir(parts[:-1], create=True) if parts else os.dup(self.root_fd)
        assert parent is not None
        try:
            if parts and not self.clear(parent, parts[-1], keep_dir=True):
                os.mkdir(parts[-1], 0o700, dir_fd=parent)
            if parts:
                self.owner(parent, parts[-1], member)
            elif self.as_root:
                os.fchown(parent, member.uid, member.gid)
        finally:
            os.close(parent)
        self.mark(parts)
        self.dir_meta[parts] = (member.mode & 0o7777, member.mtime)

    def regular(self, parts: _Parts, member: tarfile.TarInfo, archive: tarfile.TarFile) -> None:
        parent = self.open_dir(parts[:-1], create=True)
        assert parent is not None
        try:
            self.clear(parent, parts[-1])
            fd = os.open(parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=parent)
            try:
                source = archive.extractfile(member)
                if source is not None:
                    with open(fd, "wb", closefd=False) as out:
                        shutil.copyfileobj(source, out, CHUNK)
                if self.as_root:
                    os.fchown(fd, member.uid, member.gid)  # before chmod: chown clears set-id bits
                os.fchmod(fd, member.mode & 0o7777)
                os.utime(fd, (member.mtime, member.mtime))
            finally:
                os.close(fd)
        finally:
            os.close(parent)
        self.mark(parts)

    def place(self, parts: _Parts, member: tarfile.TarInfo, make: Callable[[int, str], None]) -> None:
        """Create a symlink or special file at *parts*, replacing what is there."""
        parent = self.open_dir(parts[:-1], create=True)
        assert parent is not None
        try:
            name = parts[-1]
            self.clear(parent, name)
            make(parent, name)
            self.owner(parent, name, member)
            if not member.issym():
                os.chmod(name, member.mode & 0o7777, dir_fd=parent)  # the node just made, not a link
            os.utime(name, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)
        self.mark(parts)

    def hardlink(self, parts: _Parts, member: tarfile.TarInfo) -> None:
        if member.linkname.startswith("/"):
            raise self.refuse("hard link to an absolute path")
        target = self.split(member.linkname)
        if not target:
            raise self.refuse("hard link to the root directory")
        if target == parts:
            return  # a link to itself: the file is already there
        tparent = self.open_dir(target[:-1], create=False)
        if tparent is None:
            raise self.refuse(f"hard link target {member.linkname!r} does not exist")
        try:
            try:
                st = os.lstat(target[-1], dir_fd=tparent)
            except FileNotFoundError:
                raise self.refuse(f"hard link target {member.linkname!r} does not exist") from None
            if stat.S_ISDIR(st.st_mode):
                raise self.refuse(f"hard link target {member.linkname!r} is a directory")
            parent = self.open_dir(parts[:-1], create=True)
            assert parent is not None
            try:
                self.clear(parent, parts[-1])
                os.link(target[-1], parts[-1], src_dir_fd=tparent, dst_dir_fd=parent, follow_symlinks=False)
            finally:
                os.close(parent)
        finally:
            os.close(tparent)
        self.mark(parts)

    # -- whiteouts -----------------------------------------------------------------------------------

    def whiteout(self, parts: _Parts) -> None:
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX * 2) and base != OPAQUE_MARKER:
            return  # other .wh..wh. names are aufs bookkeeping, not changes
        target = base[len(WHITEOUT_PREFIX) :]
        if base != OPAQUE_MARKER and target in ("", ".", ".."):
            raise self.refuse("whiteout does not name an entry inside its directory")
        parent = self.open_dir(parts[:-1], create=False)
        if parent is None:
            return  # nothing below to hide
        try:
            if base != OPAQUE_MARKER:
                self.prune(parent, target, (*parts[:-1], target))
                return
            for child in os.listdir(parent):
                self.prune(parent, child, (*parts[:-1], child))
        finally:
            os.close(parent)

    def prune(self, dir_fd: int, name: str, parts: _Parts) -> None:
        """Delete the lower-layer content at *parts*, keeping what this layer has written there."""
        if parts not in self.touched:
            self.clear(dir_fd, name)
            return
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except OSError:
            return  # a non-directory this layer wrote: keep it
        try:
            for child in os.listdir(fd):
                self.prune(fd, child, (*parts, child))
        finally:
            os.close(fd)

    def finish(self) -> None:
        """Set directory modes and mtimes last, deepest first, since adding children changes them."""
        for parts, (mode, mtime) in sorted(self.dir_meta.items(), key=lambda kv: -len(kv[0])):
            self.entry = "/".join(parts) or "."
            parent = self.open_dir(parts[:-1], create=False) if parts else os.dup(self.root_fd)
            if parent is None:
                continue
            try:
                fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent) if parts else os.dup(parent)
            except OSError:
                continue  # replaced by a non-directory later in the layer
            finally:
                os.close(parent)
            try:
                os.fchmod(fd, mode)
                os.utime(fd, (mtime, mtime))
            finally:
                os.close(fd)


def _is_link(dir_fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def _mknod(dir_fd: int, name: str, member: tarfile.TarInfo) -> None:
    kind = stat.S_IFIFO if member.isfifo() else stat.S_IFCHR if member.ischr() else stat.S_IFBLK
    device = os.makedev(member.devmajor, member.devminor)
    os.mknod(name, kind | (member.mode & 0o7777), device, dir_fd=dir_fd)


def unpack_tar(stream: BinaryIO, root: Path, *, what: str) -> None:
    """Apply one uncompressed layer tar (OCI image spec, layer.md "Changeset") onto *root*.

    Raises UnsafeArchiveError naming *what* and the entry for anything that would land outside *root*
    (absolute names, escaping ``..``, parents that are symlinks, hard links out of the root).
    """
    root.mkdir(parents=True, exist_ok=True)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    layer = _Layer(root_fd, what)
    try:
        with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape") as archive:
            while (member := archive.next()) is not None:
                archive.members = []  # type: ignore[attr-defined]  # streaming: do not keep every header in memory
                layer.apply(archive, member)
        layer.finish()
        while stream.read(CHUNK):  # read to EOF so a verifying reader checks the whole blob
            pass
    except tarfile.TarError as exc:
        raise UnsafeArchiveError(f"unpacking {what}: unreadable tar stream: {exc}") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CnbError(f"unpacking {what}: cannot write entry {layer.entry!r}: {reason}") from exc
    finally:
        os.close(root_fd)


def unpack_layers(layers: Iterable[LayerSource], root: Path) -> None:
    """Apply *layers* in order (lowest first) onto *root*; each opener yields an uncompressed tar."""
    for what, opener in layers:
        with opener() as stream:
            unpack_tar(stream, root, what=what)
