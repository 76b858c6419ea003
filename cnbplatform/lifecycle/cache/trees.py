"""Extracted copies of cached layers, restored by rename (docs/design.md §3 decision 4; docs/spec-notes.md §7.3 step 4).

Re-extracting a large cached layer on every build costs as much as writing it. So next to the blob a
:class:`~cnbplatform.lifecycle.cache.directory.DirCache` keeps the layer's directory itself, ``trees/<diffID hex>/``,
plus ``trees/<diffID hex>.json`` recording a stat digest of that tree:

* at export, after the layer has been tarred (and its blob added), the exporter hands the layer directory over
  (:meth:`TreeStore.adopt`): it is *moved* into the cache (one rename) and its stat digest recorded;
* at restore, :meth:`TreeStore.take` claims the tree with one rename, checks the digest, and renames it to
  ``<layers>/<bp>/<layer>``. Renames keep inodes, sizes and mtimes, so the exporter's next stat fingerprint of
  an unchanged layer needs no extraction and the tar need not be rewritten.

The digest covers every entry's relative path, type, mode, size, mtime, ctime, inode, link target, device and
link count (:func:`~cnbplatform.oci.layers.fingerprint.scan_tree`), leaving out host paths and the root's ctime, which
the renames change. It detects any change made to a tree while it sits in the cache; nothing but this module
writes there. A tree whose digest does not match is deleted and the restorer falls back to extracting the blob
(whose diffID is verified while it is read).

Crash semantics: a tree is only ever moved whole by ``rename``. A build killed after a restore took the tree
(or before the exporter gave it back) loses the extracted copy, never the cache: the committed blob and
metadata are untouched, and the next restore extracts the blob. A tree and its record are replaced record-last,
so an interrupted replacement leaves a digest that does not match, i.e. a fallback to the blob. Trees are
independent of commits: a tree is valid content for its diffID whatever metadata is current; trees no longer
named by the committed metadata are pruned at the next commit.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from pathlib import Path

from cnbplatform.errors import CnbError
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.digest import hex_part, is_digest
from cnbplatform.oci.layers.fingerprint import fingerprint_scan, scan_tree

#: Claimed or half-adopted trees of a process that died are removed by a later prune after this long.
STALE_SECONDS = 3600


def tree_digest(root: Path) -> str:
    """sha256 of the stat data of every entry below *root* (see the module docstring for what is left out): the
    tree's stat fingerprint (:func:`~cnbplatform.oci.layers.fingerprint.fingerprint_scan`), plus any entry it skips."""
    scan = scan_tree(root)
    digest = fingerprint_scan(scan).digest
    if not scan.skipped:
        return digest
    extra = repr(scan.skipped).encode("utf-8", "surrogateescape")
    return "sha256:" + hashlib.sha256(digest.encode() + b"\n" + extra).hexdigest()


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _same_device(a: Path, b: Path) -> bool:
    try:
        return os.stat(a).st_dev == os.stat(b).st_dev
    except OSError:
        return False


class TreeStore:
    """The ``trees/`` directory of a cache."""

    def __init__(self, root: Path, reporter: Reporter) -> None:
        self.root = root
        self.reporter = reporter

    def _paths(self, diff_id: str) -> tuple[Path, Path]:
        if not is_digest(diff_id):
            raise CnbError(f"invalid layer diffID {diff_id!r}")
        name = hex_part(diff_id)
        return self.root / name, self.root / f"{name}.json"

    def _discard(self, path: Path) -> None:
        """Move *path* out of the way atomically, then delete it."""
        trash = self.root / f".trash-{os.urandom(16).hex()}"
        try:
            os.rename(path, trash)
        except OSError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def take(self, diff_id: str, dest: Path) -> bool:
        """Move the tree of *diff_id* to *dest* (absent, on the same filesystem) if it is intact."""
        tree, record = self._paths(diff_id)
        if not _is_dir(tree) or not _same_device(self.root, dest.parent):
            return False
        try:
            expected = json.loads(record.read_bytes()).get("digest")
        except (OSError, ValueError, AttributeError):
            expected = None
        claim = self.root / f".claim-{os.urandom(16).hex()}"
        try:
            os.rename(tree, claim)
        except OSError:
            return False  # another build took it first
        record.unlink(missing_ok=True)
        try:
            intact = expected is not None and tree_digest(claim) == expected
        except CnbError:
            intact = False
        if not intact:
            self.reporter.debug(f"extracted copy of cached layer {diff_id} changed since it was cached; discarding it")
            shutil.rmtree(claim, ignore_errors=True)
            return False
        try:
            os.rename(claim, dest)
        except OSError as exc:
            self.reporter.debug(f"cannot move the cached copy of layer {diff_id} to {dest}: {exc}")
            shutil.rmtree(claim, ignore_errors=True)
            return False
        return True

    def adopt(self, diff_id: str, layer_dir: Path, digest: str | None = None) -> bool:
        """Move *layer_dir* (whose tar is *diff_id*) into the store; False (and *layer_dir* untouched) if it
        cannot be moved by rename. *digest* is the tree's :func:`tree_digest` as the exporter scanned it to make
        the tar (the rename keeps it valid), saving a second walk; without it the tree is walked here. A tree that
        changed after that scan does not match its record at the next :meth:`take`, which then extracts the blob."""
        tree, record = self._paths(diff_id)
        if not _is_dir(layer_dir):
            return False
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
        if not _same_device(self.root, layer_dir):
            return False
        incoming = self.root / f".adopt-{os.urandom(16).hex()}"
        try:
            os.rename(layer_dir, incoming)
        except OSError as exc:
            self.reporter.debug(f"cannot keep an extracted copy of layer {diff_id}: {exc}")
            return False
        try:
            if digest is None:
                digest = tree_digest(incoming)
            if os.path.lexists(tree):
                self._discard(tree)
            os.rename(incoming, tree)
        except (OSError, CnbError) as exc:
            self.reporter.debug(f"cannot keep an extracted copy of layer {diff_id}: {exc}")
            try:
                os.rename(incoming, layer_dir)
            except OSError:
                shutil.rmtree(incoming, ignore_errors=True)
            return False
        tmp = self.root / f".{record.name}.{os.urandom(16).hex()}.tmp"
        try:
            tmp.write_text(json.dumps({"diff_id": diff_id, "digest": digest}), encoding="utf-8")
            os.replace(tmp, record)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self.reporter.debug(f"cannot record the extracted copy of layer {diff_id}: {exc}")
            self._discard(tree)
            return False
        return True

    def prune(self, keep: set[str]) -> None:
        """Delete trees of layers not in *keep* (diffIDs), leftovers of interrupted moves, and stray records."""
        try:
            names = os.listdir(self.root)
        except OSError:
            return
        now = time.time()
        wanted = {hex_part(d) for d in keep if is_digest(d)}
        for name in names:
            path = self.root / name
            if name.startswith(".trash-"):
                shutil.rmtree(path, ignore_errors=True)
            elif name.startswith((".claim-", ".adopt-")) or (name.startswith(".") and name.endswith(".tmp")):
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if now - st.st_ctime <= STALE_SECONDS:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
            elif name.endswith(".json"):
                if name[: -len(".json")] not in wanted:
                    path.unlink(missing_ok=True)
            elif name not in wanted and not name.startswith("."):
                self._discard(path)
