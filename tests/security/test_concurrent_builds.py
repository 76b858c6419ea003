"""Many builds at once (issue 9 item 2): builds of one image name, or of one cache, are serialised by a lock in
``$CNB_HOME`` and the stored image is always exactly one build's result; builds of different names run side by side;
each build has a work dir of its own, removed when it ends (kept on failure only with ``--keep-workspace``).

Threat: two people (or two CI jobs) building to one name must never get an image that mixes their apps."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Cnb
from tests.security.store_check import full_integrity_check, layer_files, processes, staging_files, stored_image
from tests.support.builders import make_tiny_bases

pytestmark = pytest.mark.integration
TINY = str(REPO / "builders" / "tiny")
NAME = "docker.io/library/contested:latest"  # how the layout's index names `contested`

# A post-group inline buildpack that says it has started, then waits until the test opens the gate (a volume).
GATE_PROJECT = """[_]
schema-version = "0.2"
[[io.buildpacks.post.group]]
id = "test/gate"
[io.buildpacks.post.group.script]
api = "0.12"
inline = '''
touch /gate/started
while [ ! -e /gate/open ]; do sleep 0.05; done
'''
"""


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("concurrent-home")
    make_tiny_bases(home)
    return home


@pytest.fixture
def cnb_tiny(cnb: Cnb, tiny_home: Path) -> Cnb:
    subprocess.run(["cp", "-a", str(tiny_home), str(cnb.home)], check=True)
    return cnb


def make_app(root: Path, letter: str, files: int) -> Path:
    """An app whose files and web process name it: app-a has a-0.txt…, app-b has b-0.txt…"""
    root.mkdir(parents=True)
    (root / "Procfile").write_text(f"web: echo app-{letter}\n")
    for i in range(files):
        (root / f"{letter}-{i}.txt").write_text(f"{letter} {i}\n" * 100)
    return root


@pytest.fixture
def two_apps(tmp_path: Path) -> tuple[Path, Path]:
    return make_app(tmp_path / "app-a", "a", 20), make_app(tmp_path / "app-b", "b", 7)


def app_contents(app: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in app.iterdir() if p.is_file()}


def start(cnb: Cnb, log: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``cnb ARGS`` in the background, stdout and stderr into *log* (read while it runs)."""
    out = open(log, "wb")  # noqa: SIM115 - the child holds it; closed when the test ends
    proc = subprocess.Popen([sys.executable, "-m", "cnbplatform", *args], env=cnb.env, cwd=REPO, stdout=out, stderr=out)
    out.close()
    return proc, log


def wait_until(condition: object, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll *condition* (a callable) for up to 120 s; fail naming *what* (or at once, when *proc* ends first)."""
    assert callable(condition)
    for _ in range(2400):
        if condition():
            return
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"never saw: {what}")


def check_one_apps_image(cnb: Cnb, apps: tuple[Path, ...]) -> Path:
    """The stored image's app layer and processes are exactly those of one of *apps*; returns that app."""
    layout = cnb.home / "images"
    manifest, config = stored_image(layout, NAME)
    app_layers = layer_files(layout, manifest, "workspace/")
    assert len(app_layers) == 1, f"{len(app_layers)} layers hold app files"
    matches = [app for app in apps if app_layers[0] == app_contents(app)]
    assert len(matches) == 1, f"the app layer holds {sorted(app_layers[0])}: no single app's files"
    letter = matches[0].name[-1]
    web = [p for p in processes(config) if p["type"] == "web"]
    assert len(web) == 1 and f"echo app-{letter}" in " ".join(web[0]["command"]), web
    return matches[0]


@pytest.mark.parametrize("same_app", [False, True], ids=["two-apps", "same-app-same-cache-dir"])
def test_builds_to_one_name_at_once_store_exactly_one_builds_image(
    cnb_tiny: Cnb, two_apps: tuple[Path, Path], tmp_path: Path, same_app: bool
) -> None:
    cnb = cnb_tiny
    apps = (two_apps[0], two_apps[0]) if same_app else two_apps
    cache = ("--cache-dir", str(tmp_path / "shared-cache")) if same_app else ()
    for round_ in range(10):
        build = ("build", "contested", "--builder", TINY, *cache)
        procs = [
            start(cnb, tmp_path / f"round{round_}-{i}.log", *build, "--path", str(app)) for i, app in enumerate(apps)
        ]
        for proc, log in procs:
            assert proc.wait(timeout=300) == 0, log.read_text()
        check_one_apps_image(cnb, two_apps)
        assert full_integrity_check(cnb.home / "images") > 0
        assert staging_files(cnb.home / "images") == []
        assert list((cnb.home / "work").iterdir()) == []  # every build removed its own work dir
    if not same_app:
        run = cnb("run", "contested")
        assert run.stdout.strip() in ("app-a", "app-b")


def test_the_second_build_of_a_name_waits_for_the_first_then_runs(
    cnb_tiny: Cnb, two_apps: tuple[Path, Path], tmp_path: Path
) -> None:
    cnb = cnb_tiny
    gate = tmp_path / "gate"
    gate.mkdir()
    (two_apps[0] / "project.toml").write_text(GATE_PROJECT)
    first, first_log = start(cnb, tmp_path / "first.log", "build", "contested", "--builder", TINY,
                             "--path", str(two_apps[0]), "--volume", f"{gate}:/gate")  # fmt: skip
    wait_until((gate / "started").exists, "the first build's buildpack started", first)
    # The same name written out in full is the same image (and the same lock).
    second, second_log = start(cnb, tmp_path / "second.log", "build", "local:docker.io/library/contested:latest",
                               "--builder", TINY, "--path", str(two_apps[1]))  # fmt: skip
    waiting = "waiting for another build of docker.io/library/contested:latest"
    wait_until(lambda: waiting in second_log.read_text(), "the wait", second)
    assert f"(pid {first.pid})" in second_log.read_text()
    assert second.poll() is None  # still waiting: the first build holds the name
    (gate / "open").touch()
    assert first.wait(timeout=300) == 0, first_log.read_text()
    assert second.wait(timeout=300) == 0, second_log.read_text()
    assert check_one_apps_image(cnb, two_apps) == two_apps[1]  # the second ran after the first, and its image won


def test_builds_sharing_a_cache_dir_wait_and_different_names_do_not(
    cnb_tiny: Cnb, two_apps: tuple[Path, Path], tmp_path: Path
) -> None:
    cnb = cnb_tiny
    gate = tmp_path / "gate"
    gate.mkdir()
    (two_apps[0] / "project.toml").write_text(GATE_PROJECT)
    cache = str(tmp_path / "cache")
    first, first_log = start(cnb, tmp_path / "first.log", "build", "gated", "--builder", TINY,
                             "--path", str(two_apps[0]), "--volume", f"{gate}:/gate", "--cache-dir", cache)  # fmt: skip
    wait_until((gate / "started").exists, "the first build's buildpack started", first)
    # Another name with its own cache runs to the end while the first build is held at the gate.
    other = cnb("build", "unrelated", "--builder", TINY, "--path", str(two_apps[1]))
    assert "waiting" not in other.stderr
    assert first.poll() is None
    # Another name with the first build's cache dir waits for it.
    sharing, sharing_log = start(cnb, tmp_path / "sharing.log", "build", "sharer", "--builder", TINY,
                                 "--path", str(two_apps[1]), "--cache-dir", cache)  # fmt: skip
    wait_until(lambda: "waiting for another build of cache dir" in sharing_log.read_text(), "the wait", sharing)
    (gate / "open").touch()
    assert first.wait(timeout=300) == 0, first_log.read_text()
    assert sharing.wait(timeout=300) == 0, sharing_log.read_text()


FAILING_PROJECT = """[_]
schema-version = "0.2"
[[io.buildpacks.post.group]]
id = "test/fail"
[io.buildpacks.post.group.script]
api = "0.12"
inline = "echo failing on purpose; exit 1"
"""


@pytest.fixture
def failing_app(two_apps: tuple[Path, Path]) -> Iterator[Path]:
    (two_apps[0] / "project.toml").write_text(FAILING_PROJECT)
    yield two_apps[0]


def test_a_failed_build_keeps_its_work_dir_only_with_keep_workspace(cnb_tiny: Cnb, failing_app: Path) -> None:
    cnb = cnb_tiny
    failed = cnb("build", "failing", "--builder", TINY, "--path", str(failing_app), check=False)
    assert failed.returncode != 0 and "failing on purpose" in failed.stdout + failed.stderr
    assert list((cnb.home / "work").iterdir()) == []

    kept = cnb("build", "failing", "--builder", TINY, "--path", str(failing_app), "--keep-workspace", check=False)
    assert kept.returncode != 0
    (workdir,) = (cnb.home / "work").iterdir()
    assert f"kept in {workdir}" in kept.stderr
    assert (workdir / "app" / "Procfile").read_text() == "web: echo app-a\n"
    # A successful build does not take over or remove the kept dir of another build.
    cnb("build", "fine", "--builder", TINY, "--path", str(failing_app.parent / "app-b"))
    assert list((cnb.home / "work").iterdir()) == [workdir]
