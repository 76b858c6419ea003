"""Safe unpacking of OCI image layers into a root filesystem directory (docs/design.md section 3, decision 2).

Implements the OCI image spec "Image Layer Filesystem Changeset" (layer.md): regular files, directories,
symlinks, hard links, device nodes and fifos, with the "Whiteouts" rules (``.wh.<name>`` deletes
``<name>`` from lower layers, ``.wh..wh..opq`` hides all lower-layer children of its directory; both
only ever hide lower-layer content, never entries of the same layer, wherever they sit in the tar).

Names are read the way Docker, containerd and umoci read them: an absolute member name or hard-link target is
rooted under the target directory (``/cnb/x`` is ``cnb/x``), as pack writes its builder layers.

Security (layers are untrusted): every path is resolved component by component from a directory fd of the
root, opening each existing parent with ``O_NOFOLLOW | O_DIRECTORY``; an entry whose name escapes with ``..``,
or whose parent on disk is a symlink (or not a directory), or a hard link whose target is outside the root, is
refused with UnsafeArchiveError before anything is written for it. Nothing is ever written through a symlink,
so nothing outside the root can be created or changed. Symlink targets are stored verbatim (they are resolved
against the image root at run time, not here).

The unpacked tree is inert on the host: setuid and setgid bits are cleared, and device nodes and fifos are
not created (layer.md allows an implementation to skip them; a sandbox gets its own ``/dev``). A layer whose
uncompressed tar passes :class:`UnpackLimits` (bytes or entries) is refused, so a small compressed blob
cannot fill the disk; the caller removes the partial tree.

The stream is read once, forward only (``tarfile`` mode ``r|``), and then read to its end so a
digest-verifying reader underneath gets to check the whole blob.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

from cnbplatform.errors import CnbError, UnsafeArchiveError
from cnbplatform.oci.digest import CHUNK

__all__ = [
    "DEFAULT_MAX_LAYER_BYTES",
    "DEFAULT_MAX_LAYER_ENTRIES",
    "LayerSource",
    "UnpackLimits",
    "unpack_layers",
    "unpack_tar",
]

#: (name used in messages, e.g. "layer sha256:ab…", opener of the UNCOMPRESSED tar stream)
LayerSource = tuple[str, Callable[[], AbstractContextManager[BinaryIO]]]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_Parts = tuple[str, ...]
#: Only the permission bits and the sticky bit survive unpacking: never setuid or setgid.
_KEPT_MODE = 0o1777

#: Default limits per layer: no real image comes near them (the largest layers seen are a few GiB and a few
#: hundred thousand entries), a gzip bomb passes them long before the disk fills.
DEFAULT_MAX_LAYER_BYTES = 32 * 1024**3
DEFAULT_MAX_LAYER_ENTRIES = 2_000_000
#: tarfile keeps a pax or GNU long-name record in memory while it parses it; real ones are a few KiB.
MAX_HEADER_BYTES = 16 * 1024 * 1024
_HINT = "(limit: {} in the [unpack] table of config.toml)"


@dataclass(frozen=True)
class UnpackLimits:
    """How far one layer may expand: bytes of uncompressed tar stream, and tar entries."""

    max_layer_bytes: int = DEFAULT_MAX_LAYER_BYTES
    max_layer_entries: int = DEFAULT_MAX_LAYER_ENTRIES


class _Budget:
    """A reader that counts the bytes of the uncompressed stream and refuses to go past the byte limit."""

    def __init__(self, stream: BinaryIO, limit: int, refuse: Callable[[], UnsafeArchiveError], what: str) -> None:
        self.stream = stream
        self.limit = limit
        self.refuse = refuse
        self.what = what
        self.position = 0
        #: while tarfile parses headers (which it holds in memory), where reading must stop; None otherwise. The
        #: first header is parsed when the archive is opened.
        self.header_end: int | None = MAX_HEADER_BYTES

    def unreadable(self, exc: Exception) -> UnsafeArchiveError:
        reason = str(exc) or type(exc).__name__
        return UnsafeArchiveError(f"unpacking {self.what}: cannot read the layer data: {reason}")

    def read(self, size: int = -1) -> bytes:
        try:
            data = self.stream.read(size if size >= 0 else CHUNK)
        except CnbError:
            raise  # a digest mismatch, a registry that went away: already one line
        except Exception as exc:  # the decompressor's own errors (OSError, EOFError, IsalError, ZstdError, ...)
            raise self.unreadable(exc) from exc
        self.position += len(data)
        if self.position > self.limit:
            raise self.refuse()
        if self.header_end is not None and self.position > self.header_end:
            raise UnsafeArchiveError(
                f"unpacking {self.what}: refusing a tar header (pax or long-name record) larger than "
                f"{MAX_HEADER_BYTES} bytes"
            )
        return data


def _is_root() -> bool:
    """Whether ownership can be restored (tests monkeypatch this)."""
    return os.geteuid() == 0


class _Layer:
    """Applies the entries of one layer tar onto an open root directory fd."""

    def __init__(self, root_fd: int, what: str, limits: UnpackLimits) -> None:
        self.root_fd = root_fd
        self.what = what
        self.limits = limits
        self.entries = 0
        self.as_root = _is_root()
        self.added: set[_Parts] = set()  # paths this layer wrote
        self.touched: set[_Parts] = set()  # those paths and all their ancestors
        self.dir_meta: dict[_Parts, tuple[int, float]] = {}  # directory -> (mode, mtime), set at the end
        self.entry = ""

    # -- helpers -------------------------------------------------------------------------------------

    def refuse(self, reason: str) -> UnsafeArchiveError:
        return UnsafeArchiveError(f"unpacking {self.what}: refusing entry {self.entry!r}: {reason}")

    def too_big(self) -> UnsafeArchiveError:
        limit = self.limits.max_layer_bytes
        return self.refuse(f"the layer expands past {limit} bytes {_HINT.format('max-layer-bytes')}")

    def split(self, name: str) -> _Parts:
        """Normalise a tar name to path components below the root (an absolute name is rooted there, as Docker
        does); refuse names that escape with ``..``."""
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
        self.entries += 1
        if self.entries > self.limits.max_layer_entries:
            limit = self.limits.max_layer_entries
            raise self.refuse(f"the layer has more than {limit} entries {_HINT.format('max-layer-entries')}")
        if member.isreg() and member.offset_data + member.size > self.limits.max_layer_bytes:
            raise self.too_big()  # before any of its bytes are written
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
            pass  # never created: an unpacked tree is inert on the host (layer.md lets an implementation skip them)
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
        self.dir_meta[parts] = (member.mode & _KEPT_MODE, member.mtime)

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
                    os.fchown(fd, member.uid, member.gid)
                os.fchmod(fd, member.mode & _KEPT_MODE)
                os.utime(fd, (member.mtime, member.mtime))
            finally:
                os.close(fd)
        finally:
            os.close(parent)
        self.mark(parts)

    def place(self, parts: _Parts, member: tarfile.TarInfo, make: Callable[[int, str], None]) -> None:
        """Create a symlink at *parts*, replacing what is there."""
        parent = self.open_dir(parts[:-1], create=True)
        assert parent is not None
        try:
            name = parts[-1]
            self.clear(parent, name)
            make(parent, name)
            self.owner(parent, name, member)
            os.utime(name, (member.mtime, member.mtime), dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)
        self.mark(parts)

    def hardlink(self, parts: _Parts, member: tarfile.TarInfo) -> None:
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


def unpack_tar(stream: BinaryIO, root: Path, *, what: str, limits: UnpackLimits | None = None) -> None:
    """Apply one uncompressed layer tar (OCI image spec, layer.md "Changeset") onto *root*.

    Raises UnsafeArchiveError naming *what* and the entry for anything that would land outside *root*
    (escaping ``..``, parents that are symlinks, hard links out of the root) and for a layer that passes
    *limits* (default :class:`UnpackLimits`); what was written before that stays for the caller to remove.
    """
    root.mkdir(parents=True, exist_ok=True)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    layer = _Layer(root_fd, what, limits or UnpackLimits())
    budget = _Budget(stream, layer.limits.max_layer_bytes, layer.too_big, what)
    try:
        tar_stream = cast(IO[bytes], budget)
        with tarfile.open(fileobj=tar_stream, mode="r|", encoding="utf-8", errors="surrogateescape") as archive:
            data_end = 0  # where the data of the entry before ends: next() skips to there, then reads headers
            while True:
                budget.header_end = data_end + MAX_HEADER_BYTES
                member = archive.next()
                budget.header_end = None
                if member is None:
                    break
                archive.members = []  # type: ignore[attr-defined]  # streaming: do not keep every header in memory
                data_end = member.offset_data + member.size
                layer.apply(archive, member)
        layer.finish()
        while budget.read(CHUNK):  # read to EOF so a verifying reader checks the whole blob
            pass
    except tarfile.TarError as exc:
        raise UnsafeArchiveError(f"unpacking {what}: unreadable tar stream: {exc}") from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CnbError(f"unpacking {what}: cannot write entry {layer.entry!r}: {reason}") from exc
    finally:
        os.close(root_fd)


def unpack_layers(layers: Iterable[LayerSource], root: Path, *, limits: UnpackLimits | None = None) -> None:
    """Apply *layers* in order (lowest first) onto *root*; each opener yields an uncompressed tar."""
    for what, opener in layers:
        with opener() as stream:
            unpack_tar(stream, root, what=what, limits=limits)
