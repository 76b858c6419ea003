"""The root of a bwrap sandbox: the image bound read-only at ``/`` when it has every mount point, a directory rebuilt
on a tmpfs where one is missing, and the ``/etc/resolv.conf`` mount point ``rootfs_for`` gives cnb's unpacked images.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from cnbplatform.oci.digest import hex_part
from cnbplatform.oci.image import Image, as_image
from cnbplatform.oci.rootfs.cache import RootfsCache, image_layer_sources, rootfs_for
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.sandbox import BwrapSandbox, Mount, RunRequest
from tests.support.images import Entry, busybox_entries, tag_in_layout, write_image

pytestmark = pytest.mark.integration
RequestFactory = Callable[..., RunRequest]
HOST_RESOLVER = "nameserver 127.0.0.53\noptions edns0\n"


def binds(command: list[str]) -> list[tuple[str, str, str]]:
    """Every ``--bind``/``--ro-bind`` of a bwrap command line as (option, source, target)."""
    return [(arg, command[i + 1], command[i + 2]) for i, arg in enumerate(command) if arg in ("--bind", "--ro-bind")]


def pairs(command: list[str]) -> list[tuple[str, str]]:
    return list(itertools.pairwise(command))


def image_of(layout: Path, entries: list[Entry], tag: str) -> Image:
    tag_in_layout(layout, write_image(layout, [entries], arch="amd64"), tag)
    return as_image(LayoutStore(layout).read(tag))


@pytest.fixture
def resolver(tmp_path: Path) -> Path:
    path = tmp_path / "host-resolv.conf"
    path.write_text(HOST_RESOLVER)
    return path


def test_rootfs_for_gives_etc_a_resolv_conf_mount_point_so_etc_is_not_rebuilt(
    tmp_path: Path, resolver: Path, make_request: RequestFactory
) -> None:
    image = image_of(tmp_path / "layout", busybox_entries(), "busybox")  # has /etc, no /etc/resolv.conf
    root = rootfs_for(image, tmp_path / "rootfs")
    assert (root / "etc" / "resolv.conf").read_bytes() == b""
    sandbox = BwrapSandbox(root, resolv_conf=resolver, network="host")  # the host file as it is
    read = make_request(["/bin/cat", "/etc/resolv.conf"], network=True)
    command = sandbox.command(read)
    assert ("--ro-bind", str(root / "etc"), "/etc") in binds(command)  # /etc as a whole ...
    assert ("--dir", "/etc") not in pairs(command)  # ... not rebuilt entry by entry
    assert not any(target.startswith("/etc/") and target != "/etc/resolv.conf" for _, _, target in binds(command))
    assert ("--ro-bind", str(resolver), "/etc/resolv.conf") in binds(command)
    assert sandbox.run(read).stdout == HOST_RESOLVER.encode()
    offline = sandbox.run(make_request(["/bin/cat", "/etc/resolv.conf"], network=False))
    assert (offline.exit_code, offline.stdout) == (0, b"")  # the empty mount point: resolves as a missing file does
    listing = sandbox.run(make_request(["/bin/ls", "/etc"], network=True)).stdout.decode().split()
    assert listing == ["group", "passwd", "resolv.conf"]


def test_a_tree_unpacked_before_gets_the_mount_point_on_its_next_use(tmp_path: Path) -> None:
    image = image_of(tmp_path / "layout", busybox_entries(), "busybox")
    cache = tmp_path / "rootfs"
    old = RootfsCache(cache).get(hex_part(image.descriptor.digest), image_layer_sources(image))
    assert not os.path.lexists(old / "etc" / "resolv.conf")
    assert rootfs_for(image, cache) == old
    assert (old / "etc" / "resolv.conf").is_file()
    assert rootfs_for(image, cache) == old  # idempotent


def test_images_without_a_real_etc_or_with_their_own_resolv_conf_are_left_alone(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    bare = [Entry("bin", "dir")]
    linked = [
        Entry("private", "dir"),
        Entry("private/etc", "dir"),
        Entry("etc", "symlink", 0o777, target="private/etc"),
    ]
    own = [Entry("etc", "dir"), Entry("etc/resolv.conf", "symlink", 0o777, target="../run/resolv.conf")]
    roots = [rootfs_for(image_of(layout, entries, tag), tmp_path / "rootfs") for tag, entries in
             (("bare", bare), ("linked", linked), ("own", own))]  # fmt: skip
    assert sorted(os.listdir(roots[0])) == ["bin"]
    assert os.listdir(roots[1] / "private" / "etc") == []
    assert os.readlink(roots[2] / "etc" / "resolv.conf") == "../run/resolv.conf"


@pytest.fixture
def full_root(rootfs: Path, tmp_path: Path) -> Path:
    """The busybox root with every mount point a build needs: /proc, /dev, /layers, /workspace, /cnb/buildpacks."""
    root = tmp_path / "full-root"
    shutil.copytree(rootfs, root, symlinks=True)
    for name in ("proc", "dev", "layers", "cnb/buildpacks"):
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "cnb" / "order.toml").write_text("[[order]]\n")
    (root / "etc" / "resolv.conf").write_text("")
    return root


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    out = {name: tmp_path / name for name in ("layers", "app", "buildpacks")}
    for path in out.values():
        path.mkdir()
    (out["buildpacks"] / "bp.txt").write_text("a buildpack\n")
    return out


def test_an_image_with_every_mount_point_is_bound_read_only_as_the_root(
    full_root: Path, dirs: dict[str, Path], resolver: Path, make_request: RequestFactory
) -> None:
    sandbox = BwrapSandbox(full_root, resolv_conf=resolver, network="host")
    mounts = [
        Mount(dirs["layers"], "/layers"),
        Mount(dirs["app"], "/workspace"),
        Mount(dirs["buildpacks"], "/cnb/buildpacks", read_only=True),
        Mount(dirs["buildpacks"], "/tmp/plans", read_only=True),  # below /tmp, a fresh tmpfs
    ]
    script = (
        "cat /cnb/buildpacks/bp.txt /tmp/plans/bp.txt /etc/resolv.conf && cat /root/marker"
        " && echo out > /workspace/out && touch /layers/l && touch /tmp/t"
        " && ! touch /x 2>/dev/null && ! touch /etc/x 2>/dev/null && ! touch /cnb/x 2>/dev/null"
    )
    request = make_request(["/bin/sh", "-c", script], cwd="/workspace", mounts=mounts, network=True, uid=0, gid=0)
    command = sandbox.command(request)
    assert ("--ro-bind", str(full_root), "/") in binds(command)
    assert not [b for b in binds(command) if b[1].startswith(f"{full_root}/")]  # no entry bound one by one
    assert "--tmpfs" in command and ("--tmpfs", "/cnb") not in pairs(command)
    result = sandbox.run(request)
    assert result.exit_code == 0, result.stderr
    assert (
        result.stdout.decode()
        == "a buildpack\na buildpack\n" + HOST_RESOLVER + "this /root belongs to the build image\n"
    )
    assert (dirs["app"] / "out").read_text() == "out\n" and (dirs["layers"] / "l").exists()


def test_a_missing_mount_point_below_a_top_level_directory_rebuilds_only_that_directory(
    full_root: Path, dirs: dict[str, Path], tmp_path: Path, make_request: RequestFactory
) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("a CA bundle\n")
    sandbox = BwrapSandbox(full_root)
    mounts = [Mount(dirs["buildpacks"], "/cnb/buildpacks", read_only=True), Mount(ca, "/cnb/ca.crt", read_only=True)]
    script = "cat /cnb/ca.crt /cnb/order.toml /cnb/buildpacks/bp.txt && ls /cnb && ! touch /cnb/x 2>/dev/null"
    request = make_request(["/bin/sh", "-c", script], mounts=mounts, network=False)
    command = sandbox.command(request)
    assert ("--ro-bind", str(full_root), "/") in binds(command)
    assert ("--tmpfs", "/cnb") in pairs(command) and ("--remount-ro", "/cnb") in pairs(command)
    assert command.index("--remount-ro") > command.index("/cnb/ca.crt")  # read-only once the mount points exist
    assert ("--ro-bind", str(full_root / "cnb" / "order.toml"), "/cnb/order.toml") in binds(command)
    result = sandbox.run(request)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode().split("\n")[:3] == ["a CA bundle", "[[order]]", "a buildpack"]
    assert result.stdout.decode().split("\n")[3:] == ["buildpacks", "ca.crt", "order.toml", ""]


@pytest.mark.parametrize("missing", ["/wheels", "/workspace"])  # absent; a directory where a file is mounted
def test_a_missing_top_level_mount_point_or_one_of_the_other_kind_makes_a_tmpfs_root(
    full_root: Path, tmp_path: Path, missing: str, make_request: RequestFactory
) -> None:
    source = tmp_path / "source"
    source.write_text("mounted\n")
    sandbox = BwrapSandbox(full_root)
    request = make_request(["/bin/cat", missing], mounts=[Mount(source, missing, read_only=True)], network=False)
    command = sandbox.command(request)
    assert ("--ro-bind", str(full_root), "/") not in binds(command)
    assert ("--remount-ro", "/") in pairs(command)
    result = sandbox.run(request)
    assert (result.exit_code, result.stdout) == (0, b"mounted\n"), result.stderr
