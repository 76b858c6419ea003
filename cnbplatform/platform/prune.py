"""``cnb prune``: free the disk space that ``$CNB_HOME``'s caches hold, as ``docker system prune`` does.

What can go (nothing a stored image needs; each with its size and its last use):

- **work dirs** (``work/<random>``) that no running build holds: left by killed builds or kept by ``--keep-workspace``;
- **rootfs trees** (``rootfs/<digest>``): unpacked images, made again on their next use; last use is the tree's mtime,
  which :func:`cnbplatform.oci.rootfs.cache.rootfs_for` sets at each use;
- **layer blobs** (``blobs/<hex>``) of the layer cache that no stored image links (one link only), and the layer-cache
  records that name them; last use is the blob's mtime: when it was written (a hit must not touch it: build caches
  check their blobs by inode, size and mtime);
- **build caches** (``cache/<key>``): the default ``--cache-dir`` of each image name; last use is the dir's mtime
  (set by each build of that name);
- **store garbage**: blobs of the local store that no image reaches, and staging dirs of killed writes.

``cnb prune`` removes what was not used for ``unused-after-seconds`` (default a day) and all store garbage;
``--all`` removes every candidate; ``--dry-run`` lists what would go and removes nothing. After a build that added
layers, the store prunes itself, least recently used first, when the candidates pass ``cache-budget-bytes``
(default 10 GiB)::

    [prune]
    cache-budget-bytes = 10737418240
    unused-after-seconds = 86400

Rootfs trees, layer blobs and build caches are used by running builds and runs: they are pruned only while no other
cnb command holds ``$CNB_HOME/locks/in-use.lock`` (see :mod:`cnbplatform.platform.build_locks`).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cnbplatform.errors import CnbError
from cnbplatform.files.common import Table, read_toml
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.fslock import try_lock_dir
from cnbplatform.oci.rootfs.cache import RootfsCache
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.platform.build_locks import WORK, home_in_use, remove_tree

GiB = 1024**3
DEFAULT_BUDGET = 10 * GiB
DEFAULT_UNUSED = 24 * 3600
_LAYER_RECORDS = ("fingerprints", "diffids")


@dataclass(frozen=True)
class PruneSettings:
    budget: int = DEFAULT_BUDGET
    unused_after: float = DEFAULT_UNUSED


@dataclass(frozen=True)
class Candidate:
    kind: str
    path: Path
    size: int
    last_use: float


@dataclass
class PruneReport:
    removed: list[Candidate] = field(default_factory=list)
    skipped_in_use: bool = False

    @property
    def bytes(self) -> int:
        return sum(c.size for c in self.removed)


def load_settings(home: Path) -> PruneSettings:
    """``[prune]`` of ``$CNB_HOME/config.toml`` (defaults when absent)."""
    table: Table = read_toml(home / "config.toml", missing_ok=True).table("prune")
    table.only("cache-budget-bytes", "unused-after-seconds")
    budget = table.get_int("cache-budget-bytes", DEFAULT_BUDGET)
    unused = table.get_int("unused-after-seconds", DEFAULT_UNUSED)
    for key, value in (("cache-budget-bytes", budget), ("unused-after-seconds", unused)):
        if value < 0:
            raise table.error(key, f"expected a non-negative integer, got {value}")
    return PruneSettings(budget=budget, unused_after=unused)


def prune(home: Path, *, everything: bool, dry_run: bool, unused_after: float, reporter: Reporter) -> PruneReport:
    """``cnb prune``: remove (or with *dry_run* list) the candidates unused for *unused_after* seconds (every one
    with *everything*), and all store garbage."""
    cutoff = time.time() - unused_after
    report = PruneReport()
    with home_in_use(home, exclusive=True, wait=False) as alone:
        report.skipped_in_use = not alone
        chosen = [
            c for c in candidates(home, caches=alone) if everything or c.kind == "store garbage" or c.last_use < cutoff
        ]
        report.removed = chosen if dry_run else _remove(home, chosen, reporter)
    return report


def auto_prune(home: Path, reporter: Reporter) -> PruneReport | None:
    """After a build: when the caches pass the budget, remove the least recently used candidates until they fit.
    Does nothing while another cnb command uses the caches (the last one to finish prunes)."""
    settings = load_settings(home)
    with home_in_use(home, exclusive=True, wait=False) as alone:
        if not alone:
            return None
        found = sorted(candidates(home, caches=True), key=lambda c: c.last_use)
        total = sum(c.size for c in found)
        if total <= settings.budget:
            return None
        chosen: list[Candidate] = []
        for candidate in found:
            if total <= settings.budget:
                break
            chosen.append(candidate)
            total -= candidate.size
        reporter.info(f"the caches in {home} passed their budget of {settings.budget} bytes: pruning")
        return PruneReport(removed=_remove(home, chosen, reporter))


def candidates(home: Path, *, caches: bool) -> list[Candidate]:
    """Everything prune may remove; rootfs trees, layer blobs and build caches only when *caches* (no other cnb
    command uses them)."""
    found = list(_work_dirs(home))
    found += [
        Candidate("store garbage", path, size, _mtime(path))
        for path, size in LayoutStore(home / "images", create=False).collect_garbage(dry_run=True)
    ]
    if caches:
        found += _rootfs_trees(home)
        found += _layer_blobs(home)
        found += _build_caches(home)
    return found


def _work_dirs(home: Path) -> Iterator[Candidate]:
    for path in _children(home / WORK):
        fd = try_lock_dir(path)
        if fd is None:
            continue  # a running build's
        os.close(fd)
        yield Candidate("work dir", path, _tree_size(path), _mtime(path))


def _rootfs_trees(home: Path) -> Iterator[Candidate]:
    for path in _children(home / "rootfs"):
        if not path.name.startswith(".") and path.is_dir():
            yield Candidate("rootfs tree", path, _rootfs_size(path), _mtime(path))


def _rootfs_size(tree: Path) -> int:
    """The size of an unpacked tree, measured once and kept beside it (``.size-<key>``): a tree does not change
    after it is unpacked, and a build image's tree has tens of thousands of files."""
    record = tree.parent / f".size-{tree.name}"
    with contextlib.suppress(OSError, ValueError):
        return int(record.read_text())
    size = _tree_size(tree)
    with contextlib.suppress(OSError):
        tmp = record.with_name(f"{record.name}.{os.getpid()}.tmp")
        tmp.write_text(str(size))
        os.replace(tmp, record)
    return size


def _layer_blobs(home: Path) -> Iterator[Candidate]:
    for path in _children(home / "blobs"):
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if info.st_nlink == 1 and not path.name.startswith("."):
            yield Candidate("layer blob", path, info.st_size, info.st_mtime)


def _build_caches(home: Path) -> Iterator[Candidate]:
    for path in _children(home / "cache"):
        if path.is_dir():
            yield Candidate("build cache", path, _tree_size(path), _mtime(path))


def _remove(home: Path, chosen: list[Candidate], reporter: Reporter) -> list[Candidate]:
    removed: list[Candidate] = []
    blobs: set[str] = set()
    for candidate in chosen:
        try:
            if candidate.kind == "store garbage":
                continue  # below, under the store's own gc lock
            if candidate.kind == "work dir":
                fd = try_lock_dir(candidate.path)
                if fd is None:
                    continue
                try:
                    remove_tree(candidate.path)
                finally:
                    os.close(fd)
            elif candidate.kind == "rootfs tree":
                RootfsCache(candidate.path.parent).remove(candidate.path.name)
                (candidate.path.parent / f".size-{candidate.path.name}").unlink(missing_ok=True)
            elif candidate.kind == "layer blob":
                candidate.path.unlink(missing_ok=True)
                blobs.add(candidate.path.name)
            else:
                remove_tree(candidate.path)
        except CnbError as exc:
            reporter.warn(f"prune: {candidate.path} is left: {exc}")
            continue
        removed.append(candidate)
    if any(c.kind == "store garbage" for c in chosen):
        store = LayoutStore(home / "images", create=False)
        removed += [Candidate("store garbage", path, size, 0.0) for path, size in store.collect_garbage(dry_run=False)]
    if blobs:
        _drop_layer_records(home / "layer-cache", blobs)
    return removed


def _drop_layer_records(cache: Path, hexes: set[str]) -> None:
    """Remove the layer-cache records that name a removed blob (they would be misses now)."""
    for kind in _LAYER_RECORDS:
        for path in _children(cache / kind):
            try:
                digest = json.loads(path.read_bytes()).get("digest", "")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(digest, str) and digest.partition(":")[2] in hexes:
                path.unlink(missing_ok=True)


def _children(directory: Path) -> list[Path]:
    try:
        return sorted(Path(e.path) for e in os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except FileNotFoundError:
        return 0.0


def _tree_size(root: Path) -> int:
    """Bytes of the regular files under *root* (each hard-linked inode once); lstat only."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for dirpath, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(dirpath, name))
                if info.st_nlink > 1:
                    if (info.st_dev, info.st_ino) in seen:
                        continue
                    seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total
