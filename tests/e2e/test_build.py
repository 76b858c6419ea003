"""``cnb build`` with the tiny builder (builders/tiny): the platform flow a pack user expects, without a daemon."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Cnb
from tests.support.dockerd import RunningDockerd
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect

pytestmark = pytest.mark.integration
TINY = REPO / "builders" / "tiny"


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CNB_HOME with the tiny base images (what `cnb base create` makes), shared by the module."""
    home = tmp_path_factory.mktemp("tiny-home")
    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", "-q", "base", "create", "--config", str(TINY / "base.toml"),
         "--build-image", "cnb/tiny-build", "--run-image", "cnb/tiny-run"],
        cwd=REPO, env={"CNB_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    yield home


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    subprocess.run(["cp", "-a", str(REPO / "examples" / "shell"), str(path)], check=True)
    return path


@pytest.fixture
def cnb_tiny(cnb: Cnb, tiny_home: Path) -> Cnb:
    subprocess.run(["cp", "-a", f"{tiny_home}/.", str(cnb.home)], check=True) if cnb.home.exists() else subprocess.run(
        ["cp", "-a", str(tiny_home), str(cnb.home)], check=True
    )
    return cnb


def layers_of(cnb: Cnb, image: str) -> list[str]:
    return [layer["digest"] for layer in json.loads(cnb("image", "inspect", "--json", image).stdout)["image"]["layers"]]


def test_build_run_and_rebuild(cnb_tiny: Cnb, app: Path, tmp_path: Path) -> None:
    cnb = cnb_tiny
    first = cnb("build", "shell-app", "--builder", str(TINY), "--path", str(app))
    assert "Successfully built shell-app" in first.stdout
    assert "[cnb/procfile@0.1.0] procfile: process web" in first.stdout  # buildpack output, prefixed
    assert all(f"[{phase}] done in" in first.stderr for phase in ("analyze", "detect", "restore", "build", "export"))
    run = cnb("run", "shell-app")
    assert "Hello from a cnb-built image!" in run.stdout and "uid 1000" in run.stdout
    assert cnb("run", "shell-app", "--process", "greet", "--", "tester").stdout.strip().startswith("hello, tester")

    before = layers_of(cnb, "shell-app")
    again = cnb("build", "shell-app", "--builder", str(TINY), "--path", str(app))
    assert "(0 layers added" in again.stdout
    assert layers_of(cnb, "shell-app") == before

    (app / "hello.sh").write_text('#!/bin/sh\necho "changed app"\n')
    cnb("build", "shell-app", "--builder", str(TINY), "--path", str(app))
    after = layers_of(cnb, "shell-app")
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    assert changed == [len(before) - 4]  # only the app layer (then launcher, config, process-types)
    assert cnb("run", "shell-app").stdout.strip() == "changed app"


COUNTER_PROJECT = """[_]
schema-version = "0.2"
[[io.buildpacks.post.group]]
id = "example/counter"
[io.buildpacks.post.group.script]
api = "0.12"
inline = '''
d="$CNB_LAYERS_DIR/counter"; mkdir -p "$d"; echo run >> "$d/log"
printf '[types]\\ncache = true\\n' > "$CNB_LAYERS_DIR/counter.toml"
echo "counter runs: $(wc -l < "$d/log")"
'''
"""


def test_a_cache_layer_extracted_from_its_blob_is_writable_by_the_buildpack(
    cnb_tiny: Cnb, app: Path, tmp_path: Path
) -> None:
    """As root, files restored from a cache blob belong to the tar's owner (the CNB user); under bwrap the buildpack
    runs as whoever runs cnb, so the restorer gives them to that user."""
    (app / "project.toml").write_text(COUNTER_PROJECT)
    cache = tmp_path / "cache"
    build = ("build", "counter-app", "--builder", str(TINY), "--path", str(app), "--cache-dir", str(cache))
    assert "counter runs: 1" in cnb_tiny(*build).stdout
    shutil.rmtree(cache / "trees")  # no extracted copy left: the layer comes back from its blob
    assert "counter runs: 2" in cnb_tiny(*build).stdout
    assert "counter runs: 3" in cnb_tiny(*build).stdout  # and from the extracted copy the exporter kept


def test_build_flags(cnb_tiny: Cnb, app: Path, tmp_path: Path) -> None:
    cnb = cnb_tiny
    (app / "project.toml").write_text(
        '[_]\nschema-version = "0.2"\n[io.buildpacks]\nexclude = ["secret.txt"]\n'
        '[[io.buildpacks.build.env]]\nname = "FROM_PROJECT"\nvalue = "p"\n'
        '[[io.buildpacks.post.group]]\nid = "example/inline"\n[io.buildpacks.post.group.script]\napi = "0.12"\n'
        'inline = "echo inline saw FROM_PROJECT=$(cat /platform/env/FROM_PROJECT) FLAG=$(cat /platform/env/FLAG)"\n'
    )
    (app / "secret.txt").write_text("do not ship")
    sbom_dir, report_dir = tmp_path / "sbom", tmp_path / "report"
    done = cnb(
        "build", "oci:" + str(tmp_path / "layout") + ":app", "--builder", str(TINY), "--path", str(app),
        "--env", "FLAG=f", "--default-process", "greet", "--creation-time", "1700000000",
        "--sbom-output-dir", str(sbom_dir), "--report-output-dir", str(report_dir), "--network", "none",
        "--volume", f"{tmp_path}:/extra:ro", "--tag", "oci:" + str(tmp_path / "layout") + ":second",
    )  # fmt: skip
    assert "inline saw FROM_PROJECT=p FLAG=f" in done.stdout
    config = skopeo_inspect(f"oci:{tmp_path / 'layout'}:app", "--config")
    assert config["config"]["Entrypoint"] == ["/cnb/process/greet"]
    assert config["created"].startswith("2023-11-14T22:13:20")
    assert (
        skopeo_inspect(f"oci:{tmp_path / 'layout'}:second")["Digest"]
        == skopeo_inspect(f"oci:{tmp_path / 'layout'}:app")["Digest"]
    )
    assert (report_dir / "report.toml").is_file()
    assert sbom_dir.is_dir()
    cnb("image", "copy", f"oci:{tmp_path / 'layout'}:app", "flags-app")
    assert cnb("run", "flags-app", "--", "sh", "-c", "ls /workspace").stdout.split().count("secret.txt") == 0


def test_publish_with_cache_image_on_a_second_machine(
    cnb_tiny: Cnb, app: Path, tmp_path: Path, registry: RunningRegistry, tiny_home: Path
) -> None:
    image = f"{registry.host}/build/shell:1"
    cache = f"{registry.host}/build/shell-cache:1"
    cnb_tiny("build", image, "--builder", str(TINY), "--path", str(app), "--publish", "--cache-image", cache)
    digest = skopeo_inspect(f"docker://{image}")["Digest"]

    # a second machine: an empty CNB_HOME except for the base images; the registry has everything else
    home = tmp_path / "second-home"
    subprocess.run(["cp", "-a", str(tiny_home), str(home)], check=True)
    other = Cnb(home, {**cnb_tiny.env, "CNB_HOME": str(home)})
    log_before = len(registry.log_text())
    again = other("build", image, "--builder", str(TINY), "--path", str(app), "--publish", "--cache-image", cache)
    assert "(0 layers added" in again.stdout
    assert skopeo_inspect(f"docker://{image}")["Digest"] == digest
    new_log = registry.log_text()[log_before:]
    assert "PATCH /v2/build/shell/blobs" not in new_log and "PUT /v2/build/shell/blobs/uploads" not in new_log


def test_daemon_export(cnb_tiny: Cnb, app: Path, dockerd: RunningDockerd) -> None:
    cnb_tiny("build", "shell-daemon:1", "--builder", str(TINY), "--path", str(app), "--daemon",
             extra_env={"DOCKER_HOST": dockerd.base_url})  # fmt: skip
    run = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "shell-daemon:1"],
        env=dockerd.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "Hello from a cnb-built image!" in run.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--builder", "/nonexistent/builder"), "does not exist"),
        (("--builder", str(TINY), "--path", "/nonexistent/app"), "does not exist"),
        (("--builder", str(TINY), "--network", "bridge"), "--network"),
        (("--builder", str(TINY), "--publish", "--daemon"), "exclude each other"),
        (("--builder", str(TINY), "--buildpack", "nobody/nothing@1.0.0"), "not in the builder"),
        (("--builder", str(TINY), "--buildpack", "/nonexistent/bp"), "--buildpack /nonexistent/bp: no such file"),
        (("--builder", str(TINY), "--buildpack", "./nonexistent-bp"), "--buildpack ./nonexistent-bp: no such file"),
        (("--builder", str(TINY), "--creation-time", "yesterday"), "--creation-time"),
    ],
)
def test_bad_inputs(cnb_tiny: Cnb, app: Path, args: tuple[str, ...], needle: str) -> None:
    full = ("--path", str(app), *args) if "--path" not in args else args
    done = cnb_tiny("build", "bad-app", *full, check=False)
    assert done.returncode != 0
    assert needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_machine_where_bwrap_cannot_sandbox_fails_once_with_the_reason(
    cnb_tiny: Cnb, app: Path, tmp_path: Path
) -> None:
    """Not a buildpack's detect error (exit 21) per buildpack: one line saying why no sandbox can be made, exit 1."""
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    path = f"{fake}:{cnb_tiny.env.get('PATH', '/usr/bin:/bin')}"
    done = cnb_tiny(
        "build", "no-sandbox", "--builder", str(TINY), "--path", str(app), check=False, extra_env={"PATH": path}
    )
    assert done.returncode == 1, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: bwrap cannot create a sandbox here: bwrap: setting up uid map: Permission denied "
        "(are unprivileged user namespaces disabled?); use --sandbox docker or --sandbox host"
    ]
    assert "no buildpack group passed" not in done.stderr


LOOP = "echo ready; while :; do sleep 0.1; done"
STOP_PROCFILE = f"""web: trap 'echo graceful; exit 3' TERM; {LOOP}
stubborn: trap 'echo ignoring' TERM; {LOOP}
"""


def start_app(cnb: Cnb, app: Path, *args: str) -> subprocess.Popen[str]:
    (app / "Procfile").write_text(STOP_PROCFILE)
    cnb("build", "stop-app", "--builder", str(TINY), "--path", str(app))
    proc = cnb.popen("run", "stop-app", *args)
    assert proc.stdout is not None
    line = proc.stdout.readline()  # the app is up and its trap is set
    assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
    return proc


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_run_stops_the_app_gracefully(cnb_tiny: Cnb, app: Path, signum: int) -> None:
    """Ctrl-C (or SIGTERM) to `cnb run` reaches the app as SIGTERM, like docker stop; cnb exits with its code."""
    proc = start_app(cnb_tiny, app)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    assert "graceful" in out, err
    assert proc.returncode == 3, err


def test_run_second_ctrl_c_kills_a_stubborn_app(cnb_tiny: Cnb, app: Path) -> None:
    proc = start_app(cnb_tiny, app, "--process", "stubborn")
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ignoring"  # got SIGTERM, keeps running
    time.sleep(0.3)
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "interrupted" in err


def test_missing_base_images_say_how_to_make_them(cnb: Cnb, app: Path) -> None:
    done = cnb("build", "no-base", "--builder", str(TINY), "--path", str(app), check=False)
    assert done.returncode == 1
    assert done.stderr.startswith("error: reading build image cnb/tiny-build:"), done.stderr
    hint = f"cnb base create --config {TINY / 'base.toml'} --build-image cnb/tiny-build --run-image cnb/tiny-run"
    assert hint in done.stderr


def test_quiet_build_prints_no_phase_progress(cnb_tiny: Cnb, app: Path) -> None:
    done = cnb_tiny("-q", "build", "quiet-app", "--builder", str(TINY), "--path", str(app))
    assert "done in" not in done.stderr and "Successfully built" not in done.stdout
    assert "[cnb/procfile@0.1.0] procfile: process web" in done.stdout  # buildpack output still streams
