"""Tree fingerprints and the racy guard (docs/design.md section 3 decision 4)."""

from __future__ import annotations

import builtins
import os
import time
from pathlib import Path
from typing import Any

import pytest

from cnbplatform.errors import CnbError
from cnbplatform.oci.layers import fingerprint as fp
from cnbplatform.oci.layers.fingerprint import fingerprint_scan, fingerprint_tree, scan_tree, shape_digest

OLD = 1_600_000_000  # 2020: far from "now"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    (root / "pkg" / "lib").mkdir(parents=True)
    (root / "pkg" / "lib" / "a.js").write_text("console.log(1)\n")
    (root / "pkg" / "b.txt").write_text("bbb\n")
    os.symlink("lib/a.js", root / "pkg" / "index.js")
    os.mkfifo(root / "pkg" / "fifo")
    # Old times everywhere, so that an edit in the same clock tick as the fixture still shows.
    for path in (root / "pkg" / "index.js", root / "pkg" / "lib" / "a.js", root / "pkg" / "b.txt",
                 root / "pkg" / "lib", root / "pkg", root):  # fmt: skip
        os.utime(path, (OLD, OLD), follow_symlinks=False)
    return root


def _stable(root: Path) -> fp.TreeFingerprint:
    """Fingerprint with no racy margin: files written before the scan count as settled."""
    return fingerprint_tree(root, margin_ns=0)


def test_unchanged_tree_gives_the_same_fingerprint(tree: Path) -> None:
    first, second = _stable(tree), _stable(tree)
    assert first.digest == second.digest
    assert first.stable and second.stable
    assert first.entries == 6  # root, pkg, pkg/b.txt, pkg/index.js, pkg/lib, pkg/lib/a.js
    assert first.total_size == len("console.log(1)\n") + len("bbb\n")


def test_scan_order_and_skipped_entries(tree: Path) -> None:
    scan = scan_tree(tree)
    assert [e[0] for e in scan.entries] == ["", "pkg", "pkg/b.txt", "pkg/index.js", "pkg/lib", "pkg/lib/a.js"]
    assert scan.skipped == ("pkg/fifo",)
    link = scan.entries[3]
    assert (link[1], link[7], link[10]) == (fp.SYMLINK, "lib/a.js", os.fspath(tree / "pkg" / "index.js"))


def test_content_edit_changes_the_fingerprint_even_at_the_same_size(tree: Path) -> None:
    before = _stable(tree)
    (tree / "pkg" / "b.txt").write_text("ccc\n")  # same size, new content
    assert _stable(tree).digest != before.digest


def test_edit_that_restores_the_old_mtime_is_still_noticed(tree: Path) -> None:
    target = tree / "pkg" / "b.txt"
    before = _stable(tree)
    time.sleep(0.05)  # let the (coarse) file-system clock tick past the fixture's ctime
    target.write_text("ccc\n")
    os.utime(target, (OLD, OLD))  # like `cp -p` or an archive extraction
    assert _stable(tree).digest != before.digest  # ctime moved


def test_chmod_changes_the_fingerprint(tree: Path) -> None:
    before = _stable(tree)
    os.chmod(tree / "pkg" / "b.txt", 0o755)
    assert _stable(tree).digest != before.digest


def test_rename_changes_the_fingerprint(tree: Path) -> None:
    before = _stable(tree)
    os.rename(tree / "pkg" / "b.txt", tree / "pkg" / "c.txt")
    assert _stable(tree).digest != before.digest


def test_touch_changes_the_fingerprint(tree: Path) -> None:
    before = _stable(tree)
    os.utime(tree / "pkg" / "lib" / "a.js", (OLD + 100, OLD + 100))
    assert _stable(tree).digest != before.digest


def test_new_file_and_retargeted_symlink_change_the_fingerprint(tree: Path) -> None:
    before = _stable(tree)
    (tree / "pkg" / "new").write_text("")
    after_add = _stable(tree)
    assert after_add.digest != before.digest
    os.unlink(tree / "pkg" / "index.js")
    os.symlink("b.txt", tree / "pkg" / "index.js")
    assert _stable(tree).digest != after_add.digest


def test_fresh_files_make_the_fingerprint_unstable(tree: Path) -> None:
    result = fingerprint_tree(tree)  # default margin: the fixture just set the times, so ctime is fresh
    assert not result.stable
    assert "pkg/b.txt" in result.racy
    (tree / "pkg" / "b.txt").write_text("fresh\n")
    later = fingerprint_tree(tree, margin_ns=0)
    assert later.stable  # without margin, nothing is newer than the scan


def test_future_mtime_is_unstable_even_without_margin(tree: Path) -> None:
    future = time.time() + 3600
    os.utime(tree / "pkg" / "b.txt", (future, future))
    result = _stable(tree)
    assert not result.stable and result.racy == ("pkg/b.txt",)


def test_old_files_are_stable_with_the_default_margin(tree: Path) -> None:
    scan = scan_tree(tree)
    # Pretend the scan ran an hour later: every timestamp is then older than the margin.
    later = fp.TreeScan(scan.root, scan.entries, scan.skipped, scan.started_ns + 3600 * 10**9)
    assert fingerprint_scan(later).stable


def test_fingerprint_reads_no_file(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a file was opened: {args[:1]}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(os, "open", refuse)
    assert _stable(tree).stable


def test_shape_ignores_times_but_not_sizes(tree: Path) -> None:
    before = shape_digest(scan_tree(tree))
    os.utime(tree / "pkg" / "b.txt", (OLD + 100, OLD + 100))
    assert shape_digest(scan_tree(tree)) == before
    (tree / "pkg" / "b.txt").write_text("longer content\n")
    assert shape_digest(scan_tree(tree)) != before


def test_missing_root_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CnbError, match="cannot scan layer source"):
        scan_tree(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(CnbError, match="not a directory"):
        scan_tree(tmp_path / "file")


def test_a_tree_renamed_into_place_keeps_its_fingerprint(tmp_path: Path) -> None:
    """A cached layer restored with a rename (lifecycle/cache/trees) must be a fingerprint hit at export."""
    src = tmp_path / "cache" / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(b"x" * 100)
    os.utime(src / "sub" / "f", ns=(10**18, 10**18))
    os.utime(src / "sub", ns=(10**18, 10**18))
    before = fingerprint_tree(src)
    moved = tmp_path / "layers" / "bp" / "layer"
    moved.parent.mkdir(parents=True)
    os.rename(src, moved)
    after = fingerprint_tree(moved)
    assert after.digest == before.digest
    (moved / "sub" / "f").write_bytes(b"y" * 100)
    os.utime(moved / "sub" / "f", ns=(10**18, 10**18))
    assert fingerprint_tree(moved).digest != before.digest


def test_whole_second_filesystems_get_the_coarse_margin() -> None:
    """On FAT/SMB-like timestamps (whole seconds) a change within 2 s could keep the same mtime: stay unstable."""
    second = 1_000_000_000
    entry = ("a", fp.FILE, 0o644, 1, 100 * second, 100 * second, 1, "", 1, 1, "/x/a")
    fine = ("a", fp.FILE, 0o644, 1, 100 * second + 7, 100 * second + 9, 1, "", 1, 1, "/x/a")
    assert fp._coarse_timestamps([entry])
    assert not fp._coarse_timestamps([fine])
    started = 101 * second + 500_000_000  # 1.5 s after the file's timestamps
    assert not fingerprint_scan(fp.TreeScan(Path("/x"), (entry,), (), started)).stable
    assert fingerprint_scan(fp.TreeScan(Path("/x"), (fine,), (), started)).stable
