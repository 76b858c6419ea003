"""Safe layer unpacking (OCI image spec layer.md changesets; docs/design.md section 3 decision 2)."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from cnbplatform.errors import UnsafeArchiveError, UsageError
from cnbplatform.oci.rootfs import unpack
from cnbplatform.oci.rootfs.cache import RootfsCache
from cnbplatform.oci.rootfs.unpack import LayerSource, unpack_layers, unpack_tar

MTIME = 1_000_000_000

# -- building tars -----------------------------------------------------------------------------------


def _info(name: str, kind: bytes, mode: int, **kw: object) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = MTIME
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def f(name: str, data: bytes = b"data", mode: int = 0o644, **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.REGTYPE, mode, size=len(data), **kw), data


def d(name: str, mode: int = 0o755, **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.DIRTYPE, mode, **kw), b""


def sym(name: str, target: str, **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.SYMTYPE, 0o777, linkname=target, **kw), b""


def hard(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, tarfile.LNKTYPE, 0o644, linkname=target), b""


def node(name: str, kind: bytes, mode: int = 0o640, major: int = 0, minor: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    return _info(name, kind, mode, devmajor=major, devminor=minor), b""


def make_tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


class ForwardOnly(io.RawIOBase):
    """A stream that can only be read forward, like a registry download."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def seekable(self) -> bool:
        return False

    def at_eof(self) -> bool:
        return self._data.tell() == len(self._data.getvalue())


def apply(root: Path, data: bytes, what: str = "layer test") -> None:
    unpack_tar(ForwardOnly(data), root, what=what)  # type: ignore[arg-type]


def opener(
    data: bytes, calls: list[str] | None = None, name: str = ""
) -> Callable[[], contextlib.AbstractContextManager[BinaryIO]]:
    @contextlib.contextmanager
    def open_() -> Iterator[BinaryIO]:
        if calls is not None:
            calls.append(name)
        yield io.BytesIO(data)

    return open_


# -- hostile archives ----------------------------------------------------------------------------------


@pytest.fixture()
def arena(tmp_path: Path) -> tuple[Path, Path]:
    """root = tmp/work/root and a sibling sentinel dir tmp/sentinel holding one file."""
    root = tmp_path / "work" / "root"
    root.mkdir(parents=True)
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "secret").write_text("keep me")
    return root, sentinel


def _outside(tmp_path: Path, root: Path) -> dict[str, tuple[int, int, int]]:
    """Everything under tmp_path except the root tree: path -> (mode, size, nlink)."""
    found: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(tmp_path):
        if Path(dirpath) == root:
            dirnames.clear()
            continue
        for name in dirnames + filenames:
            if Path(dirpath, name) == root:
                continue
            st = os.lstat(os.path.join(dirpath, name))
            found[os.path.join(dirpath, name)] = (st.st_mode, st.st_size, st.st_nlink)
    return found


def _hostile_cases(sentinel: Path) -> dict[str, list[tuple[tarfile.TarInfo, bytes]]]:
    s = str(sentinel)
    return {
        "dotdot": [f("ok"), f("../../sentinel/evil")],
        "dotdot-deep": [f("a/b/../../../../sentinel/evil")],
        "absolute-dotdot": [f("/../../sentinel/evil")],
        "absolute-dotdot-deep": [f("/etc/../../../sentinel/evil")],
        "symlink-root": [sym("link", "/"), f("link" + s + "/evil")],
        "symlink-up": [sym("link", "../.."), f("link/sentinel/evil")],
        "symlink-dir-entry": [sym("link", "../../sentinel"), d("link/newdir")],
        "symlink-chain": [sym("link2", "../../sentinel"), sym("link1", "link2"), f("link1/evil")],
        "hardlink-up": [hard("stolen", "../../sentinel/secret")],
        "hardlink-abs": [hard("passwd", "/etc/passwd")],  # rooted: the root has no etc/passwd
        "hardlink-abs-dotdot": [hard("stolen", "/../../sentinel/secret")],
        "hardlink-through-symlink": [sym("link", "../../sentinel"), hard("stolen", "link/secret")],
        "whiteout-up": [f("../../sentinel/.wh.secret")],
        "whiteout-dotdot": [f("x"), f(".wh...")],
        "whiteout-dot-in-subdir": [d("sub"), f("sub/.wh..")],
        "whiteout-through-symlink": [sym("link", "../../sentinel"), f("link/.wh.secret")],
        "opaque-through-symlink": [sym("link", "../../sentinel"), f("link/.wh..wh..opq")],
        "symlink-parent-of-symlink": [sym("link", "../../sentinel"), sym("link/ln", "/etc")],
        "fifo-dotdot": [node("../../sentinel/fifo", tarfile.FIFOTYPE)],
    }


@pytest.mark.parametrize("case", sorted(_hostile_cases(Path("/x"))))
def test_hostile_tar_is_refused_and_nothing_lands_outside(case: str, arena: tuple[Path, Path], tmp_path: Path) -> None:
    root, sentinel = arena
    entries = _hostile_cases(sentinel)[case]
    passwd_links = os.lstat("/etc/passwd").st_nlink
    before = _outside(tmp_path, root)
    with pytest.raises(UnsafeArchiveError) as err:
        apply(root, make_tar(*entries), what=f"layer sha256:{case}")
    message = str(err.value)
    assert f"layer sha256:{case}" in message
    assert repr(entries[-1][0].name) in message, message
    assert _outside(tmp_path, root) == before
    assert sorted(p.name for p in sentinel.iterdir()) == ["secret"]
    assert (sentinel / "secret").read_text() == "keep me"
    assert not Path("/etc/cnb-test-evil").exists()
    assert os.lstat("/etc/passwd").st_nlink == passwd_links


def test_absolute_names_and_hard_link_targets_are_rooted(arena: tuple[Path, Path], tmp_path: Path) -> None:
    """As pack writes builder layers and Docker, containerd and umoci read them: ``/cnb/x`` is ``cnb/x``."""
    root, sentinel = arena
    passwd_links = os.lstat("/etc/passwd").st_nlink
    before = _outside(tmp_path, root)
    apply(
        root,
        make_tar(
            d("/cnb"),
            d("/cnb/buildpacks/bp/1.0"),
            f("/cnb/buildpacks/bp/1.0/buildpack.toml", b"toml"),
            f("/cnb/order.toml", b"order"),
            hard("/cnb/order-link.toml", "/cnb/order.toml"),
            d("/workspace", 0o700),
            f("//etc//cnb-test-evil", b"x"),
            f(str(sentinel) + "/evil", b"y"),
            hard("/passwd", "/etc/cnb-test-evil"),
        ),
    )
    assert (root / "cnb" / "buildpacks" / "bp" / "1.0" / "buildpack.toml").read_bytes() == b"toml"
    assert os.path.samefile(root / "cnb" / "order-link.toml", root / "cnb" / "order.toml")
    assert stat.S_IMODE((root / "workspace").stat().st_mode) == 0o700
    assert (root / "etc" / "cnb-test-evil").read_bytes() == b"x"
    assert os.path.samefile(root / "passwd", root / "etc" / "cnb-test-evil")
    assert (root / str(sentinel).lstrip("/") / "evil").read_bytes() == b"y"
    assert _outside(tmp_path, root) == before
    assert sorted(p.name for p in sentinel.iterdir()) == ["secret"]
    assert not Path("/etc/cnb-test-evil").exists()
    assert os.lstat("/etc/passwd").st_nlink == passwd_links


def test_file_over_symlink_replaces_the_link_not_its_target(arena: tuple[Path, Path]) -> None:
    root, sentinel = arena
    apply(root, make_tar(sym("link", "../../sentinel/secret"), sym("dirlink", "../../sentinel")))
    apply(root, make_tar(f("link", b"new"), d("dirlink"), f("dirlink/x")))
    assert (sentinel / "secret").read_text() == "keep me"
    assert sorted(p.name for p in sentinel.iterdir()) == ["secret"]
    assert not (root / "link").is_symlink() and (root / "link").read_bytes() == b"new"
    assert not (root / "dirlink").is_symlink() and (root / "dirlink" / "x").is_file()


def test_hard_link_to_a_symlink_links_the_symlink_itself(arena: tuple[Path, Path]) -> None:
    root, sentinel = arena
    apply(root, make_tar(sym("abs", str(sentinel / "secret")), hard("copy", "abs")))
    assert os.readlink(root / "copy") == str(sentinel / "secret")
    assert os.lstat(root / "copy").st_ino == os.lstat(root / "abs").st_ino
    assert (sentinel / "secret").stat().st_nlink == 1


def test_in_root_symlink_parent_is_refused_too(tmp_path: Path) -> None:
    """Stricter than containerd: a parent that is a symlink is refused even when it points inside."""
    root = tmp_path / "root"
    apply(root, make_tar(d("usr/bin"), sym("bin", "usr/bin")))
    with pytest.raises(UnsafeArchiveError, match="parent 'bin' is a symlink"):
        apply(root, make_tar(f("bin/sh")))
    assert list((root / "usr" / "bin").iterdir()) == []


def test_corrupt_tar_and_unknown_type_are_refused(tmp_path: Path) -> None:
    good = make_tar(f("a", b"x" * 5000))
    with pytest.raises(UnsafeArchiveError, match="layer cut"):
        apply(tmp_path / "r1", good[:1000], what="layer cut")
    info = _info("weird", b"Z", 0o644)
    with pytest.raises(UnsafeArchiveError, match="unsupported entry type"):
        apply(tmp_path / "r2", make_tar((info, b"")))


# -- normal changesets ---------------------------------------------------------------------------------


def test_whiteouts_and_opaque_dirs_across_two_layers(tmp_path: Path) -> None:
    root = tmp_path / "root"
    lower = make_tar(
        d("etc"),
        f("etc/keep"),
        f("etc/gone"),
        d("etc/gonedir"),
        f("etc/gonedir/x"),
        sym("etc/gonelink", "/nowhere"),
        d("opq"),
        f("opq/a"),
        d("opq/sub"),
        f("opq/sub/b"),
        d("late"),
        f("late/a"),
        d("late/sub"),
        f("late/sub/old"),
        d("same"),
        f("same/lower"),
    )
    upper = make_tar(
        f("etc/.wh.gone"),
        f("etc/.wh.gonedir"),
        f("etc/.wh.gonelink"),
        f("etc/.wh.never-existed"),
        f("missing/.wh.x"),
        f("opq/.wh..wh..opq"),  # marker before the siblings of its layer
        f("opq/new"),
        f("late/new"),  # siblings before the marker
        f("late/sub/fresh"),
        f("late/.wh..wh..opq"),
        f("same/x", b"mine"),
        f("same/.wh.x"),  # a whiteout only hides lower layers, never its own layer
        f("same/.wh..wh.plnk"),  # aufs bookkeeping: ignored
    )
    unpack_layers([("layer 1", opener(lower)), ("layer 2", opener(upper))], root)
    assert sorted(os.listdir(root / "etc")) == ["keep"]
    assert sorted(os.listdir(root / "opq")) == ["new"]
    assert sorted(os.listdir(root / "late")) == ["new", "sub"]
    assert sorted(os.listdir(root / "late" / "sub")) == ["fresh"]
    assert sorted(os.listdir(root / "same")) == ["lower", "x"]
    assert not (root / "missing").exists()
    assert not list(root.rglob(".wh.*"))


def test_whiteout_of_a_dir_the_layer_also_writes_keeps_only_its_own_children(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(root, make_tar(d("w"), f("w/old"), d("w/deep"), f("w/deep/old")))
    apply(root, make_tar(f("w/deep/new"), f(".wh.w")))
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == ["w", "w/deep", "w/deep/new"]


def test_replacing_paths_of_another_type(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(root, make_tar(f("p", b"file"), d("q"), f("q/child"), sym("s", "target"), f("h")))
    apply(root, make_tar(d("p"), f("p/c"), f("q", b"now a file"), d("s"), sym("h", "p/c")))
    assert (root / "p").is_dir() and (root / "p" / "c").is_file()
    assert (root / "q").is_file() and (root / "q").read_bytes() == b"now a file"
    assert (root / "s").is_dir() and not (root / "s").is_symlink()
    assert os.readlink(root / "h") == "p/c"


def test_existing_dir_entry_updates_mode_and_keeps_contents(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(root, make_tar(d("dir", 0o755), f("dir/a")))
    apply(root, make_tar(d("dir", 0o700)))
    assert stat.S_IMODE((root / "dir").stat().st_mode) == 0o700
    assert (root / "dir" / "a").is_file()


def test_hard_links_share_the_inode(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(root, make_tar(d("bin"), f("bin/busybox", b"elf", 0o755), hard("bin/sh", "bin/busybox")))
    apply(root, make_tar(hard("usr/sh2", "./bin/../bin/busybox"), hard("bin/sh", "bin/sh")))
    st = (root / "bin" / "busybox").stat()
    assert st.st_nlink == 3
    assert (root / "bin" / "sh").stat().st_ino == st.st_ino == (root / "usr" / "sh2").stat().st_ino
    with pytest.raises(UnsafeArchiveError, match="does not exist"):
        apply(root, make_tar(hard("x", "nope")))
    with pytest.raises(UnsafeArchiveError, match="is a directory"):
        apply(root, make_tar(hard("x", "bin")))


def test_symlinks_kept_verbatim_and_never_resolved(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(root, make_tar(sym("abs", "/usr/bin/python3"), sym("rel", "../../../etc"), sym("dangling", "nope")))
    assert os.readlink(root / "abs") == "/usr/bin/python3"
    assert os.readlink(root / "rel") == "../../../etc"
    assert os.readlink(root / "dangling") == "nope"
    assert os.lstat(root / "abs").st_mtime == MTIME


def test_modes_mtimes_and_names(tmp_path: Path) -> None:
    root = tmp_path / "root"
    apply(
        root,
        make_tar(
            d(".", 0o755),
            d("tmp", 0o1777),
            d("private", 0o700),
            f("private/key", mode=0o600),
            f("./usr/bin/tool", mode=0o6755),  # parents made implicitly; never setuid/setgid on the host
            f("caf\u00e9", b"x"),
        ),
    )
    assert stat.S_IMODE((root / "tmp").stat().st_mode) == 0o1777
    assert stat.S_IMODE((root / "private").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "private" / "key").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "usr" / "bin" / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((root / "usr").stat().st_mode) == 0o755
    assert (root / "private").stat().st_mtime == MTIME  # set after its child was written
    assert (root / "private" / "key").stat().st_mtime == MTIME
    assert root.stat().st_mtime == MTIME
    assert (root / "caf\u00e9").read_bytes() == b"x"


def test_stream_is_read_forward_only_and_to_its_end(tmp_path: Path) -> None:
    stream = ForwardOnly(make_tar(f("big", os.urandom(3 * 1024 * 1024))) + b"\0" * 20000)
    unpack_tar(stream, tmp_path / "root", what="layer s")  # type: ignore[arg-type]
    assert stream.at_eof()
    assert (tmp_path / "root" / "big").stat().st_size == 3 * 1024 * 1024


def test_ownership_as_root_and_never_special_files(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "CI runs as root"
    root = tmp_path / "root"
    apply(
        root,
        make_tar(
            f("owned", uid=1234, gid=5678),
            d("odir", uid=1234, gid=5678),
            sym("olink", "owned", uid=4321, gid=8765),
            node("fifo", tarfile.FIFOTYPE, 0o640),
            node("null", tarfile.CHRTYPE, 0o666, 1, 3),
        ),
    )
    st = (root / "owned").stat()
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert (root / "odir").stat().st_uid == 1234
    assert (os.lstat(root / "olink").st_uid, os.lstat(root / "olink").st_gid) == (4321, 8765)
    assert not os.path.lexists(root / "fifo")  # inert on the host, even as root
    assert not os.path.lexists(root / "null")


def test_without_root_ownership_and_special_files_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unpack, "_is_root", lambda: False)
    root = tmp_path / "root"
    apply(root, make_tar(f("owned", uid=1234, gid=5678), node("fifo", tarfile.FIFOTYPE), f("after")))
    assert (root / "owned").stat().st_uid == os.geteuid()
    assert not os.path.lexists(root / "fifo")
    assert (root / "after").is_file()


# -- rootfs cache -------------------------------------------------------------------------------------

KEY = "a" * 64


def test_cache_unpacks_once(tmp_path: Path) -> None:
    calls: list[str] = []
    layers: list[LayerSource] = [
        ("layer 1", opener(make_tar(f("a", b"1"), f("b")), calls, "1")),
        ("layer 2", opener(make_tar(f("a", b"2"), f(".wh.b")), calls, "2")),
    ]
    cache = RootfsCache(tmp_path / "cache")
    first = cache.get(KEY, layers)
    assert first == tmp_path / "cache" / KEY
    assert (first / "a").read_bytes() == b"2" and not (first / "b").exists()
    assert stat.S_IMODE(first.stat().st_mode) == 0o755  # usable by a sandboxed non-root user
    assert cache.get(KEY, layers) == first
    assert calls == ["1", "2"]
    cache.remove(KEY)
    assert not first.exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".tmp-")]


def test_cache_failed_unpack_leaves_nothing_at_the_final_path(tmp_path: Path) -> None:
    cache = RootfsCache(tmp_path / "cache")
    layers: list[LayerSource] = [("layer good", opener(make_tar(f("a")))), ("layer bad", opener(make_tar(f("../x"))))]
    with pytest.raises(UnsafeArchiveError, match="layer bad"):
        cache.get(KEY, layers)
    assert not (tmp_path / "cache" / KEY).exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]


def test_cache_concurrent_callers_unpack_once(tmp_path: Path) -> None:
    calls: list[str] = []

    @contextlib.contextmanager
    def slow() -> Iterator[BinaryIO]:
        calls.append("x")
        time.sleep(0.3)
        yield io.BytesIO(make_tar(f("a")))

    cache = RootfsCache(tmp_path / "cache")
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(KEY, [("l", slow)]))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == ["x"]
    assert results == [tmp_path / "cache" / KEY] * 2


def test_cache_rejects_unsafe_keys(tmp_path: Path) -> None:
    cache = RootfsCache(tmp_path / "cache")
    for key in ["../x", ".tmp-1", "a/b", "", ".."]:
        with pytest.raises(UsageError):
            cache.get(key, [])


def test_killed_unpack_leaves_no_final_dir_and_is_cleaned_next_time(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    script = textwrap.dedent(
        f"""
        import contextlib, io, sys, time
        from pathlib import Path
        from cnbplatform.oci.rootfs.cache import RootfsCache

        @contextlib.contextmanager
        def hang():
            print("unpacking", flush=True)
            time.sleep(60)
            yield io.BytesIO(b"")

        RootfsCache(Path({str(cache_dir)!r})).get({KEY!r}, [("l", hang)])
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout is not None and child.stdout.readline() == "unpacking\n"
    # A live unpack's temp dir is not touched by another caller's cleaning.
    live = [p for p in cache_dir.iterdir() if p.name.startswith(".tmp-")]
    RootfsCache(cache_dir).get("b" * 64, [("l", opener(make_tar(f("x"))))])
    assert all(p.exists() for p in live) and len(live) == 1
    (live[0] / "partial").write_text("half a tree")
    child.kill()
    child.wait()
    assert not (cache_dir / KEY).exists()
    path = RootfsCache(cache_dir).get(KEY, [("l", opener(make_tar(f("y"))))])
    assert sorted(os.listdir(path)) == ["y"]
    assert not live[0].exists()


@pytest.mark.integration
def test_unpacked_busybox_rootfs_runs_in_bwrap(tmp_path: Path) -> None:
    busybox = Path("/bin/busybox").read_bytes()
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout.split()
    base = make_tar(d("."), d("bin"), f("bin/busybox", busybox, 0o755), d("proc"), d("dev"), d("tmp", 0o1777))
    links = make_tar(*[sym(f"bin/{a}", "/bin/busybox") for a in applets if a != "busybox"], f("etc/motd", b"hi"))
    cleanup = make_tar(f("etc/.wh.motd"), hard("usr/bin/busybox", "bin/busybox"))
    layers: list[LayerSource] = [(f"layer {i}", opener(t)) for i, t in enumerate([base, links, cleanup])]
    root = RootfsCache(tmp_path / "cache").get("c" * 64, layers)
    assert os.readlink(root / "bin" / "sh") == "/bin/busybox"
    bwrap = shutil.which("bwrap")
    assert bwrap is not None
    sandbox = [bwrap, "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all"]
    out = subprocess.run([*sandbox, "/bin/busybox", "echo", "hi"], capture_output=True, text=True, check=True)
    assert out.stdout == "hi\n"
    script = "ls /etc; test -e /etc/motd || echo no-motd; /usr/bin/busybox echo via-hardlink"
    out = subprocess.run([*sandbox, "/bin/sh", "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout == "no-motd\nvia-hardlink\n"
