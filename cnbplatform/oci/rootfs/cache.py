"""A cache of unpacked root filesystems, one per image digest (docs/design.md section 3, decisions 2 and 7).

An unpacked image is cnb's private copy, used as the root of a sandbox. Like Docker's init layer, ``rootfs_for``
gives it an empty ``/etc/resolv.conf`` when the image has an ``/etc`` directory but no such entry: a mount point the
sandbox binds the host's resolver configuration over (an empty file resolves as a missing one does), instead of
rebuilding ``/etc`` entry by entry for every run. Trees unpacked before this rule get the file on their next use.

``cache_dir/<key>`` appears only complete: layers are unpacked into ``cache_dir/.tmp-<random>`` and
renamed into place at the end, so a killed unpack never leaves a half tree at the final path. Each
temporary directory is flock-ed by the process filling it; one whose lock can be taken belongs to a dead
process and is removed by the next ``get``. (Age is no guide here: unpacking sets the tree's mtimes from
the tar.) A per-key lock file makes concurrent callers for one key unpack it once.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from cnbplatform.errors import CnbError, UsageError
from cnbplatform.oci.digest import fsync_dir, hex_part
from cnbplatform.oci.fslock import locked_file, try_lock_dir

if TYPE_CHECKING:
    from cnbplatform.oci.image import Image, Layer
    from cnbplatform.oci.rootfs.unpack import LayerSource, UnpackLimits

__all__ = ["RootfsCache", "add_mount_points", "rootfs_for"]

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_TMP_PREFIX = ".tmp-"


def _rmtree(path: Path) -> None:
    """Remove a tree; a non-root owner may meet read-only directories, so make them writable."""

    def retry(func: Callable[..., object], name: str, exc_info: tuple[type, BaseException, object]) -> None:
        if isinstance(exc_info[1], FileNotFoundError):
            return
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
        if func in (os.rmdir, os.unlink):
            func(name)
        elif not os.path.islink(name):  # could not open or list a directory: open it up, go on
            os.chmod(name, 0o700)
            shutil.rmtree(name, onerror=retry)

    shutil.rmtree(path, onerror=retry)


class RootfsCache:
    """Unpacked image root filesystems under *cache_dir*, keyed by manifest digest hex; each layer is held to
    *limits* (:class:`~cnbplatform.oci.rootfs.unpack.UnpackLimits`, its defaults when None)."""

    def __init__(self, cache_dir: Path, limits: UnpackLimits | None = None) -> None:
        self.cache_dir = cache_dir
        self.limits = limits

    def path(self, key: str) -> Path:
        if not _KEY_RE.match(key):
            raise UsageError(f"invalid rootfs cache key {key!r}: expected a digest hex")
        return self.cache_dir / key

    def get(self, key: str, layers: Iterable[LayerSource] | Callable[[], Iterable[LayerSource]]) -> Path:
        """``cache_dir/<key>``, unpacking *layers* (lowest first; or a callable returning them, called only when
        the tree must be made) into it unless it is already there."""
        final = self.path(key)
        if final.is_dir():
            return final
        from cnbplatform.oci.rootfs.unpack import unpack_layers

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with locked_file(self.cache_dir / f".lock-{key}"):
            if final.is_dir():
                return final  # another caller finished it while we waited
            tmp, tmp_fd = self._new_temp()
            try:
                os.chmod(tmp, 0o755)  # the tar's "./" entry, if any, overrides this
                unpack_layers(layers() if callable(layers) else layers, tmp, limits=self.limits)
                os.rename(tmp, final)
            except BaseException:
                with contextlib.suppress(OSError):  # the partial tree; what is left is cleaned by the next get
                    _rmtree(tmp)
                raise
            finally:
                os.close(tmp_fd)
            fsync_dir(self.cache_dir)
        return final

    def remove(self, key: str) -> None:
        """Delete ``cache_dir/<key>`` if present; it disappears atomically, then is deleted."""
        final = self.path(key)
        if not final.is_dir():
            return
        with locked_file(self.cache_dir / f".lock-{key}"):
            fd = try_lock_dir(final)
            if fd is None:
                if final.is_dir():
                    raise CnbError(f"removing rootfs {key}: it is locked by another process")
                return
            try:
                doomed = self.cache_dir / f"{_TMP_PREFIX}{os.urandom(8).hex()}"
                os.rename(final, doomed)  # the flock follows the inode, so no cleaner takes it
                _rmtree(doomed)
            finally:
                os.close(fd)

    def _new_temp(self) -> tuple[Path, int]:
        """Clean dead temporary trees, then make and lock a fresh one (under the cache-wide lock, so
        a cleaner never sees a new temp dir before its owner has locked it)."""
        with locked_file(self.cache_dir / ".lock"):
            for entry in os.scandir(self.cache_dir):
                if entry.name.startswith(_TMP_PREFIX):
                    fd = try_lock_dir(Path(entry.path))
                    if fd is not None:
                        try:
                            _rmtree(Path(entry.path))
                        finally:
                            os.close(fd)
            tmp = Path(tempfile.mkdtemp(prefix=_TMP_PREFIX, dir=self.cache_dir))
            fd = try_lock_dir(tmp)
            if fd is None:
                raise CnbError(f"unpacking rootfs: cannot lock temporary directory {tmp}")
            return tmp, fd


def image_layer_sources(image: Image) -> list[LayerSource]:
    """The layers of *image* as unpacker sources: decompressed, and verified against digest and diffID."""
    from cnbplatform.oci.digest import verified_reader
    from cnbplatform.oci.layers.compress import open_uncompressed

    def opener(layer: Layer) -> Callable[[], AbstractContextManager[BinaryIO]]:
        @contextlib.contextmanager
        def open_layer() -> Iterator[BinaryIO]:
            with layer.open() as compressed:
                plain = open_uncompressed(compressed, layer.descriptor.media_type)
                yield verified_reader(plain, layer.diff_id, None, "layer content (diffID)")

        return open_layer

    return [(f"layer {layer.descriptor.digest}", opener(layer)) for layer in image.layers()]


RESOLV_CONF = ("etc", "resolv.conf")


def add_mount_points(root: Path) -> None:
    """An empty ``etc/resolv.conf`` in *root* when it has a real ``etc`` directory without one (see the module doc).

    Idempotent and safe while others use the tree: the file appears whole or not at all. A tree where it cannot
    be made (a read-only ``etc``, say) is left alone; the sandbox then rebuilds ``/etc`` to hold the mount point."""
    etc = os.path.join(root, RESOLV_CONF[0])
    try:
        if not stat.S_ISDIR(os.lstat(etc).st_mode):
            return
        fd = os.open(os.path.join(etc, RESOLV_CONF[1]), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    except OSError:
        return  # no etc, a symlink etc, an existing entry (even a dangling symlink), or no permission
    os.close(fd)


def rootfs_for(image: Image, cache_dir: Path, *, limits: UnpackLimits | None = None) -> Path:
    """The unpacked root filesystem of *image*, unpacked once per manifest digest (docs/design.md §3 decision 2), with
    the mount points a sandbox binds over (:func:`add_mount_points`); each layer is held to *limits*."""
    root = RootfsCache(cache_dir, limits).get(hex_part(image.descriptor.digest), lambda: image_layer_sources(image))
    if not os.path.lexists(os.path.join(root, *RESOLV_CONF)):
        add_mount_points(root)
    with contextlib.suppress(OSError):
        os.utime(root)  # its last use, for cnb prune's least-recently-used order
    return root
