"""Advisory ``flock`` locks on lock files and directories, shared by the stores, the rootfs cache and the builds
(one running process holds a directory's lock while it uses it; a cleaner skips what it cannot lock)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked_file(path: Path) -> Iterator[int]:
    """Hold an exclusive ``flock`` on the lock file *path* (created if missing), waiting for it; yields its fd."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def try_lock_dir(path: Path) -> int | None:
    """An fd holding an exclusive ``flock`` on directory *path* (not followed if a symlink), or None when another
    process holds it or it cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd
