"""What keeps two builds apart: a lock per image name and per cache, and a work dir of each build's own.

Builds of one image name (and of one ``--cache-dir`` or ``--cache-image``) run one after the other: each holds an
exclusive ``flock`` on ``$CNB_HOME/locks/<hash of the key>.lock`` from before it touches its workspace until its
image is stored, so the stored image is always exactly one build's result. A build that has to wait says so and
which process it waits for. Builds of different names hold different locks and run in parallel.

Each build works in a fresh ``$CNB_HOME/work/<random>`` that it holds an exclusive ``flock`` on while it runs, and
removes when it ends (kept on failure with ``--keep-workspace``). A work dir whose lock can be taken belongs to no
running build: ``cnb prune`` removes it. ``$CNB_HOME/locks/in-use.lock`` is held shared by every command that uses
the home's caches (rootfs trees, the layer cache) and exclusively by ``cnb prune`` while it removes them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.errors import CnbError
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.address import ImageAddress, StoreKind, parse_address

LOCKS = "locks"
WORK = "work"
IN_USE = "in-use.lock"


@dataclass(frozen=True)
class LockKey:
    """One thing two builds must not share: *key* is canonical, *label* what the user wrote."""

    key: str
    label: str

    @property
    def file_name(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()[:32] + ".lock"


def image_key(address: ImageAddress) -> str:
    """The canonical name of an image destination: ``shell-app`` and ``local:docker.io/library/shell-app:latest``
    are one key; an OCI layout is keyed by its absolute directory and tag."""
    if address.kind is StoreKind.LAYOUT:
        assert address.path is not None
        return f"layout:{address.path.resolve()}:{address.tag or ''}"
    return f"{address.kind.value}:{address.tag}"


def image_lock(text: str) -> LockKey:
    return LockKey(f"image {image_key(parse_address(text))}", text.removeprefix("local:"))


def cache_dir_lock(path: Path) -> LockKey:
    resolved = path.resolve()
    return LockKey(f"cache-dir {resolved}", f"cache dir {resolved}")


def cache_key(text: str) -> str:
    """A short name for the default cache dir of an image (``$CNB_HOME/cache/<this>``)."""
    return hashlib.sha256(image_key(parse_address(text)).encode()).hexdigest()[:16]


def _lock_fd(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


@contextlib.contextmanager
def holding(home: Path, keys: Sequence[LockKey], reporter: Reporter) -> Iterator[None]:
    """Hold every lock of *keys* (taken in one global order, so two builds never wait on each other in a cycle);
    a lock held by another build is waited for, after saying so."""
    unique = {k.key: k for k in keys}
    with contextlib.ExitStack() as stack:
        for key in sorted(unique):
            stack.enter_context(_hold(home / LOCKS / unique[key].file_name, unique[key].label, reporter))
        yield


@contextlib.contextmanager
def _hold(path: Path, label: str, reporter: Reporter) -> Iterator[None]:
    fd = _lock_fd(path)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            by = f" (pid {holder})" if holder.isdigit() else ""
            reporter.info(f"waiting for another build of {label}{by} to finish")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases the lock


@contextlib.contextmanager
def home_in_use(home: Path, *, exclusive: bool = False, wait: bool = True) -> Iterator[bool]:
    """Hold ``$CNB_HOME/locks/in-use.lock``: shared for commands that use the caches, exclusive for ``cnb prune``.
    With ``wait=False`` yields False at once instead of waiting when the lock is held the other way. A home where
    the lock cannot be made (read-only, as in some build containers) holds nothing to prune: nothing is locked."""
    try:
        fd = _lock_fd(home / LOCKS / IN_USE)
    except OSError:
        yield True
        return
    try:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        try:
            fcntl.flock(fd, mode | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


@contextlib.contextmanager
def own_workdir(home: Path, *, keep_on_failure: bool, reporter: Reporter) -> Iterator[Path]:
    """A fresh, locked ``$CNB_HOME/work/<random>`` for one build; removed when the build ends (on failure too,
    unless *keep_on_failure*: then its path is reported)."""
    parent = home / WORK
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        root = parent / os.urandom(8).hex()
        try:
            root.mkdir(mode=0o700)
            break
        except FileExistsError:
            continue
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield root
        except BaseException:
            if keep_on_failure:
                reporter.info(f"the workspace of this build is kept in {root}")
            else:
                remove_tree(root)
            raise
        remove_tree(root)
    finally:
        os.close(fd)


def remove_tree(path: Path) -> None:
    """Remove a tree that buildpacks wrote (read-only directories included, as Go's module cache makes them)."""

    def retry(func: Callable[..., object], name: str, exc_info: tuple[type, BaseException, object]) -> None:
        if isinstance(exc_info[1], FileNotFoundError):
            return
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
        try:
            if func in (os.rmdir, os.unlink):
                func(name)
            elif not stat.S_ISLNK(os.lstat(name).st_mode):
                os.chmod(name, 0o700)
                shutil.rmtree(name, onerror=retry)
        except FileNotFoundError:
            return
        except OSError as again:
            raise CnbError(f"cannot remove {name}: {again.strerror}") from again

    if os.path.lexists(path):
        shutil.rmtree(path, onerror=retry)
