"""Nothing left behind (issue 9 item 6): the staging files of a killed write are removed by the next write to the
store, and ``cnb prune`` removes what the caches hold (``--dry-run`` lists exactly that first), after which a build
still works.

Threat: a disk filled by what killed or finished commands left behind (staging blobs, unpacked trees, work dirs)."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cnbplatform.oci.store.layout import LayoutStore
from tests.conftest import REPO, Cnb
from tests.security.store_check import full_integrity_check, staging_files, write_layout_image
from tests.support.builders import make_tiny_bases
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo, skopeo_raw_digest

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
BIG = 256 * MiB


@pytest.fixture(scope="module")
def big_image(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The big image in the session's registry (generated once per module; the layout copy is removed)."""
    layout = tmp_path_factory.mktemp("big-layout")
    write_layout_image(layout, size=BIG)
    remote = f"docker://{registry.host}/security/big:1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:big", remote)
    subprocess.run(["rm", "-rf", str(layout)], check=True)
    return remote


def _partial_staging_file(layout: Path) -> Path | None:
    """A staging file of the big layer that is being written: past its first 16 MiB, short of its last 64 MiB."""
    for path in staging_files(layout):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        if path.is_file() and 16 * MiB <= size <= BIG - 64 * MiB:
            return path
    return None


def test_a_copy_killed_ten_times_leaves_no_staging_file_after_the_next_copy(cnb: Cnb, big_image: str) -> None:
    """The issue asks for a 1 GiB image; on this 2-core machine shared by the suite that is too heavy, and the size
    is not what makes the test meaningful: each kill is made to land mid-write deterministically, by waiting until a
    staging file of the 256 MiB layer of random (incompressible) bytes exists and is neither nearly empty nor nearly
    complete, then sending SIGKILL, and checking that the partial file is still there after the process died."""
    layout = cnb.home / "images"
    for attempt in range(10):
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnbplatform", "-q", "image", "copy", big_image, "big:copied"],
            env=cnb.env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        partial = None
        for _ in range(60_000):  # up to 5 minutes; each poll is a few stat calls
            partial = _partial_staging_file(layout)
            if partial is not None or proc.poll() is not None:
                break
            time.sleep(0.005)
        assert partial is not None, f"attempt {attempt}: the copy ended before it was killed: {proc.stderr}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.stderr is not None
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        assert partial.is_file() and partial.stat().st_size < BIG  # the kill landed mid-write: a partial blob stays
        assert len({p.parent for p in staging_files(layout) if p.is_file()}) == 1  # the last kill's only

    cnb("-q", "image", "copy", big_image, "big:copied")
    assert staging_files(layout) == []
    assert full_integrity_check(layout) == 3
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [skopeo_raw_digest(big_image)]


TINY = str(REPO / "builders" / "tiny")
LINE = re.compile(r"^(would remove|removed) (.+) (/\S+) \((\d+) bytes\)$")


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("prune-home")
    make_tiny_bases(home)
    return home


@pytest.fixture
def cnb_tiny(cnb: Cnb, tiny_home: Path) -> Cnb:
    subprocess.run(["cp", "-a", str(tiny_home), str(cnb.home)], check=True)
    return cnb


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    subprocess.run(["cp", "-a", str(REPO / "examples" / "shell"), str(path)], check=True)
    return path


def listed(output: str) -> dict[Path, tuple[str, int]]:
    """The lines of ``cnb prune``: path -> (kind, bytes)."""
    found = {}
    for line in output.splitlines():
        match = LINE.match(line)
        if match:
            found[Path(match[3])] = (match[2], int(match[4]))
    return found


def test_prune_dry_run_lists_what_prune_then_removes_and_a_build_still_works(
    cnb_tiny: Cnb, app: Path, tmp_path: Path
) -> None:
    cnb = cnb_tiny
    cnb("build", "shell-app", "--builder", TINY, "--path", str(app))
    (app / "hello.sh").write_text('#!/bin/sh\necho "second version"\n')
    cnb("build", "shell-app", "--builder", TINY, "--path", str(app))  # the first image's blobs are unreferenced now
    (app / "project.toml").write_text(
        '[_]\nschema-version = "0.2"\n[[io.buildpacks.post.group]]\nid = "test/fail"\n'
        '[io.buildpacks.post.group.script]\napi = "0.12"\ninline = "exit 1"\n'
    )
    assert cnb("build", "failed", "--builder", TINY, "--path", str(app), "--keep-workspace", check=False).returncode
    (app / "project.toml").unlink()
    (kept,) = (cnb.home / "work").iterdir()
    (rootfs,) = [p for p in (cnb.home / "rootfs").iterdir() if not p.name.startswith(".")]
    caches = list((cnb.home / "cache").iterdir())

    # Without --all only what is garbage now goes (the unreferenced blobs); fresh caches stay.
    default = listed(cnb("prune", "--dry-run").stdout)
    assert default and {kind for kind, _ in default.values()} == {"store garbage"}

    dry = cnb("prune", "--all", "--dry-run").stdout
    planned = listed(dry)
    assert {kept, rootfs, *caches} <= set(planned)
    assert {kind for kind, _ in planned.values()} >= {"work dir", "rootfs tree", "build cache", "store garbage"}
    assert all(path.exists() for path in planned)  # a dry run removes nothing
    assert f"would free {sum(size for _, size in planned.values())} bytes" in dry

    done = cnb("prune", "--all").stdout
    assert listed(done) == planned
    assert f"freed {sum(size for _, size in planned.values())} bytes" in done
    assert not any(path.exists() for path in planned)
    assert full_integrity_check(cnb.home / "images") > 0  # every image still stored is whole

    assert cnb("run", "shell-app").stdout.strip() == "second version"  # unpacked again
    (app / "hello.sh").write_text('#!/bin/sh\necho "after prune"\n')
    cnb("build", "shell-app", "--builder", TINY, "--path", str(app))
    assert cnb("run", "shell-app").stdout.strip() == "after prune"


def test_the_store_prunes_itself_past_its_cache_budget(cnb_tiny: Cnb, app: Path) -> None:
    cnb = cnb_tiny
    first = cnb("build", "shell-app", "--builder", TINY, "--path", str(app))
    assert "budget" not in first.stderr  # the default budget (10 GiB) is far away
    trees = [p for p in (cnb.home / "rootfs").iterdir() if not p.name.startswith(".")]
    assert len(trees) == 1

    (cnb.home / "config.toml").write_text("[prune]\ncache-budget-bytes = 100000\n")  # less than the tiny rootfs
    (app / "hello.sh").write_text('#!/bin/sh\necho "over budget"\n')
    second = cnb("build", "shell-app", "--builder", TINY, "--path", str(app))
    assert "passed their budget of 100000 bytes" in second.stderr
    assert not trees[0].exists()  # the least recently used (and biggest) cache went
    assert full_integrity_check(cnb.home / "images") > 0
    assert cnb("run", "shell-app").stdout.strip() == "over budget"


def test_the_next_write_removes_only_the_staging_dirs_whose_writer_is_gone(tmp_path: Path) -> None:
    """A staging dir is its writer's while the writer holds its lock, however old it is; once the lock is free (the
    writer died), the next write to the layout removes it. No age is guessed."""
    source = tmp_path / "source"
    write_layout_image(source, size=MiB)
    target = tmp_path / "target"
    LayoutStore(target).write(LayoutStore(source).read("big"), "first")  # makes the layout
    staging = target / ".cnb-tmp"
    dead, live = staging / "write-dead", staging / "write-live"
    for directory in (dead, live):
        directory.mkdir(parents=True)
        (directory / ("0" * 64)).write_bytes(os.urandom(4096))
        os.utime(directory, (0, 0))  # very old: age must not decide
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a writer that is still running
        LayoutStore(target).write(LayoutStore(source).read("big"), "second")
        assert not dead.exists()
        assert (live / ("0" * 64)).is_file()
    finally:
        os.close(fd)
    LayoutStore(target).write(LayoutStore(source).read("big"), "third")
    assert staging_files(target) == []
    assert full_integrity_check(target) == 3
