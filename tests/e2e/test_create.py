"""Issue 3 "must show": ``cnb lifecycle create`` end to end, in the bwrap sandbox of a busybox build image.

Three buildpacks: one with a build+cache layer, one with a launch layer (env files of every suffix, two processes,
exec.d), one with SBOMs. The image is checked by skopeo and umoci and run with runc; builds are reproducible, the
cache is restored and unchanged layers are reused; broken buildpacks fail with the spec's exit codes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, Cnb
from tests.support.buildpacks import write_buildpack, write_order
from tests.support.tools import skopeo_inspect, umoci_unpack

pytestmark = pytest.mark.integration

CACHE_BP = """
set -e
echo "cache buildpack: previous contents: $(cat "$CNB_LAYERS_DIR/deps/generation" 2>/dev/null || echo none)"
mkdir -p "$CNB_LAYERS_DIR/deps/bin"
printf 'build-%s\\n' "$(cat "$CNB_LAYERS_DIR/deps/generation" 2>/dev/null | wc -l)" >> "$CNB_LAYERS_DIR/deps/generation"
printf '[types]\\nbuild = true\\ncache = true\\n' > "$CNB_LAYERS_DIR/deps.toml"
"""

LAUNCH_BP = r"""
set -e
L="$CNB_LAYERS_DIR/runtime"
mkdir -p "$L/bin" "$L/env" "$L/env.launch/web" "$L/env.build" "$L/exec.d"
printf '#!/bin/sh\necho "hello from the runtime layer"\n' > "$L/bin/runtime-hello"
chmod 755 "$L/bin/runtime-hello"
printf 'overridden' > "$L/env/OVR.override"
printf 'plain' > "$L/env/PLAIN"
printf 'from-default' > "$L/env/DEF.default"
printf 'front' > "$L/env/LIST.prepend"
printf ',' > "$L/env/LIST.delim"
printf 'back' > "$L/env.launch/LIST.append"
printf ',' > "$L/env.launch/LIST.delim"
printf 'web-only' > "$L/env.launch/web/WEBVAR"
printf 'build-only' > "$L/env.build/BUILDVAR"
printf '#!/bin/sh\necho "EXECD_VAR = \\"from exec.d\\"" >&3\n' > "$L/exec.d/setvar"
chmod 755 "$L/exec.d/setvar"
printf '[types]\nlaunch = true\n' > "$CNB_LAYERS_DIR/runtime.toml"
cat > "$CNB_LAYERS_DIR/launch.toml" <<'EOF'
[[processes]]
type = "web"
command = ["sh", "-c", "runtime-hello; echo OVR=$OVR PLAIN=$PLAIN DEF=$DEF LIST=$LIST WEBVAR=$WEBVAR BUILDVAR=${BUILDVAR:-unset} EXECD_VAR=$EXECD_VAR; echo CNB=${CNB_LAYERS_DIR:-gone}"]
default = true

[[processes]]
type = "other"
command = ["echo", "other:"]
args = ["default-arg"]
"""

SBOM_BP = r"""
set -e
printf '{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"name":"left-pad","version":"1.3.0","type":"library"}]}' > "$CNB_LAYERS_DIR/launch.sbom.cdx.json"
"""


@dataclass
class Project:
    root: Path
    buildpacks: Path
    order: Path
    app: Path


def make_project(root: Path) -> Project:
    buildpacks = root / "buildpacks"
    write_buildpack(buildpacks, "test/cache", "1.0.0", build=CACHE_BP)
    write_buildpack(buildpacks, "test/launch", "1.0.0", build=LAUNCH_BP)
    write_buildpack(
        buildpacks,
        "test/sbom",
        "1.0.0",
        build=SBOM_BP,
        toml_extra='sbom-formats = ["application/vnd.cyclonedx+json"]',
    )
    order = write_order(
        root / "order.toml", [[("test/cache", "1.0.0"), ("test/launch", "1.0.0"), ("test/sbom", "1.0.0")]]
    )
    app = root / "app"
    app.mkdir()
    (app / "index.txt").write_text("version 1\n")
    (app / "static").mkdir()
    (app / "static" / "logo.txt").write_text("logo\n")
    return Project(root, buildpacks, order, app)


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNB_HOME holding the busybox build and run images (made once for the module)."""
    home = tmp_path_factory.mktemp("bases-home")
    recipe = REPO / "builders" / "tiny" / "base.toml"
    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", "-q", "base", "create", "--config", str(recipe),
         "--build-image", "tiny-build", "--run-image", "tiny-run"],
        cwd=REPO, env={"CNB_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return home


def create(
    cnb: Cnb, project: Project, output: str, *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    layers = project.root / "layers"
    if layers.exists():
        subprocess.run(["rm", "-rf", str(layers)], check=True)
    layers.mkdir()
    platform = project.root / "platform"
    platform.mkdir(exist_ok=True)
    return cnb(
        "lifecycle", "create",
        "--app", str(project.app), "--layers", str(layers), "--platform", str(platform),
        "--buildpacks", str(project.buildpacks), "--order", str(project.order),
        "--run-image", "tiny-run", "--sandbox", "bwrap", "--build-image", "tiny-build",
        "--cache-dir", str(project.root / "cache"), *extra, output,
        extra_env={"CNB_PLATFORM_API": "0.15"}, check=check,
    )  # fmt: skip


def home_with_bases(cnb: Cnb, bases: Path) -> Cnb:
    subprocess.run(["cp", "-a", f"{bases}/.", str(cnb.home)], check=True) if cnb.home.exists() else subprocess.run(
        ["cp", "-a", str(bases), str(cnb.home)], check=True
    )
    return cnb


def runc_run(bundle: Path, args: list[str], name: str) -> str:
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    config["process"]["terminal"] = False
    config["process"]["args"] = args
    config_path.write_text(json.dumps(config))
    done = subprocess.run(
        ["runc", "--root", str(bundle.parent / "runc-state"), "run", "--bundle", str(bundle), name],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def blob_names(layout: Path) -> set[str]:
    return {p.name for p in (layout / "blobs" / "sha256").iterdir()}


def test_create_runs_reproduces_and_reuses(tmp_path: Path, cnb: Cnb, bases: Path) -> None:
    home_with_bases(cnb, bases)
    project = make_project(tmp_path / "project")
    layout = tmp_path / "out"
    first = create(cnb, project, f"oci:{layout}:app")
    assert "previous contents: none" in first.stdout

    manifest = skopeo_inspect(f"oci:{layout}:app", "--raw")
    config = skopeo_inspect(f"oci:{layout}:app", "--config")
    assert config["config"]["Entrypoint"] == ["/cnb/process/web"]
    labels = config["config"]["Labels"]
    metadata = json.loads(labels["io.buildpacks.lifecycle.metadata"])
    assert [bp["key"] for bp in metadata["buildpacks"]] == ["test/cache", "test/launch", "test/sbom"]
    assert "runtime" in metadata["buildpacks"][1]["layers"]
    assert "deps" not in metadata["buildpacks"][0].get("layers", {})  # build+cache only: not in the image

    bundle = tmp_path / "bundle"
    rootfs = umoci_unpack(layout, "app", bundle)
    sbom = rootfs / "layers" / "sbom" / "launch" / "test_sbom" / "sbom.cdx.json"
    assert json.loads(sbom.read_text())["components"][0]["name"] == "left-pad"
    out = runc_run(bundle, ["/cnb/process/web"], "cnb-e2e-web")
    assert "hello from the runtime layer" in out
    assert "OVR=overridden PLAIN=plain DEF=from-default LIST=front,back WEBVAR=web-only BUILDVAR=unset" in out
    assert "EXECD_VAR=from exec.d" in out
    assert "CNB=gone" in out
    assert runc_run(bundle, ["/cnb/process/other", "user", "args"], "cnb-e2e-other").strip() == "other: user args"
    assert runc_run(bundle, ["/cnb/process/other"], "cnb-e2e-other2").strip() == "other: default-arg"

    # a second build with the cache: the cache layer comes back, every unchanged layer is reused
    blobs_before = blob_names(layout)
    second = create(cnb, project, f"oci:{layout}:app")
    assert "previous contents: build-0" in second.stdout
    assert "0 layers added" in second.stderr
    again = skopeo_inspect(f"oci:{layout}:app", "--raw")
    assert [layer["digest"] for layer in again["layers"]] == [layer["digest"] for layer in manifest["layers"]]
    assert blob_names(layout) - blobs_before <= {
        skopeo_inspect(f"oci:{layout}:app")["Digest"].split(":")[1],
        json.loads(json.dumps(again))["config"]["digest"].split(":")[1],
    }

    # a changed app file changes only the app layer
    (project.app / "index.txt").write_text("version 2\n")
    create(cnb, project, f"oci:{layout}:app")
    changed = skopeo_inspect(f"oci:{layout}:app", "--raw")
    differing = [i for i, (a, b) in enumerate(zip(manifest["layers"], changed["layers"], strict=True)) if a != b]
    app_index = len(manifest["layers"]) - 4  # app, then launcher, config, process-types
    assert differing == [app_index]


def test_same_inputs_give_the_same_digest(tmp_path: Path, cnb: Cnb, bases: Path) -> None:
    """Two machines (empty caches, separate homes) building the same app get the same image digest."""
    digests = []
    for n in range(2):
        home = tmp_path / f"home{n}"
        other = Cnb(home, {**cnb.env, "CNB_HOME": str(home)})
        home_with_bases(other, bases)
        project = make_project(tmp_path / f"project{n}")
        layout = tmp_path / f"out{n}"
        create(other, project, f"oci:{layout}:app")
        digests.append(skopeo_inspect(f"oci:{layout}:app")["Digest"])
    assert digests[0] == digests[1]


def test_create_without_a_platform_dir_builds(tmp_path: Path, cnb: Cnb, bases: Path) -> None:
    """The README's command names no platform dir: the default /platform does not exist on this machine, and the
    build goes on without one (as without a sandbox) instead of failing detection on the missing mount. Its dirs
    are relative (``--app ./app``): relative to cnb's cwd, not the sandbox's."""
    assert not Path("/platform").exists()
    home_with_bases(cnb, bases)
    project = make_project(tmp_path / "project")
    (project.root / "layers").mkdir()

    def rel(path: Path) -> str:
        return os.path.relpath(path, project.root)

    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", "lifecycle", "create", "--app", rel(project.app),
         "--layers", rel(project.root / "layers"), "--buildpacks", rel(project.buildpacks),
         "--order", str(project.order), "--run-image", "tiny-run", "--sandbox", "bwrap", "--build-image", "tiny-build",
         f"oci:{tmp_path / 'out'}:app"],
        cwd=project.root, env={**cnb.env, "CNB_PLATFORM_API": "0.15"}, capture_output=True, text=True, check=False,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert skopeo_inspect(f"oci:{tmp_path / 'out'}:app", "--config")["config"]["Entrypoint"] == ["/cnb/process/web"]

    missing = subprocess.run(
        [sys.executable, "-m", "cnbplatform", "lifecycle", "create", "--app", "no-such-app",
         "--layers", rel(project.root / "layers"), "--buildpacks", rel(project.buildpacks),
         "--order", str(project.order), "--run-image", "tiny-run", "--sandbox", "bwrap", "--build-image", "tiny-build",
         f"oci:{tmp_path / 'out'}:other"],
        cwd=project.root, env={**cnb.env, "CNB_PLATFORM_API": "0.15"}, capture_output=True, text=True, check=False,
        timeout=300,
    )  # fmt: skip
    assert missing.returncode == 22  # the spec's "other detect error", before any buildpack runs
    errors = [line for line in missing.stderr.splitlines() if not line.startswith("===> ")]  # phase banners
    assert errors == ["error: detect: read the app dir: no-such-app is not a directory"]


BROKEN = [
    ("top-level launch in a layer toml", "build", 'mkdir -p "$CNB_LAYERS_DIR/x"; printf \'launch = true\\n\' > "$CNB_LAYERS_DIR/x.toml"', (), 52, "x.toml"),
    ("requires with a top-level version", "detect", 'printf \'[[requires]]\\nname = "a"\\nversion = "1"\\n[[provides]]\\nname = "a"\\n\' > "$CNB_BUILD_PLAN_PATH"', (), 21, "version"),
    ("two default processes", "build", 'printf \'[[processes]]\\ntype = "a"\\ncommand = ["a"]\\ndefault = true\\n[[processes]]\\ntype = "b"\\ncommand = ["b"]\\ndefault = true\\n\' > "$CNB_LAYERS_DIR/launch.toml"', (), 52, "launch.toml"),
    ("SBOM of an undeclared format", "build", 'echo "{}" > "$CNB_LAYERS_DIR/launch.sbom.spdx.json"', (), 52, "launch.sbom.spdx.json"),
    ("detect that hangs", "detect", "sleep 60", ("--detect-timeout", "1"), 21, "timed out"),
    ("bin/build that fails", "build", "echo broken >&2; exit 3", (), 51, "test/broken"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "script", "body", "flags", "code", "needle"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_buildpacks_fail_with_the_spec_exit_code(
    tmp_path: Path, cnb: Cnb, bases: Path, what: str, script: str, body: str, flags: tuple[str, ...], code: int,
    needle: str,
) -> None:  # fmt: skip
    home_with_bases(cnb, bases)
    root = tmp_path / "project"
    buildpacks = root / "buildpacks"
    kwargs = {script: body}
    write_buildpack(buildpacks, "test/broken", "1.0.0", **kwargs)  # type: ignore[arg-type]
    order = write_order(root / "order.toml", [[("test/broken", "1.0.0")]])
    app = root / "app"
    app.mkdir(parents=True)
    project = Project(root, buildpacks, order, app)
    done = create(cnb, project, "broken:1", *flags, check=False)
    assert done.returncode == code, (done.returncode, done.stderr)
    assert needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_detect_printing_megabytes_does_not_hang(tmp_path: Path, cnb: Cnb, bases: Path) -> None:
    home_with_bases(cnb, bases)
    root = tmp_path / "project"
    write_buildpack(root / "buildpacks", "test/loud", "1.0.0", detect="head -c 30000000 /dev/zero | tr '\\0' x; exit 0")
    order = write_order(root / "order.toml", [[("test/loud", "1.0.0")]])
    (root / "app").mkdir(parents=True)
    done = create(cnb, Project(root, root / "buildpacks", order, root / "app"), "loud:1")
    assert done.returncode == 0


def test_hostile_buildpack_cannot_reach_the_host(tmp_path: Path, cnb: Cnb, bases: Path) -> None:
    """The sandbox: no host /root, no writes outside the mounts (the layers dir of the buildpack is writable)."""
    home_with_bases(cnb, bases)
    secret = Path("/root/cnb-e2e-host-secret")
    secret.write_text("top secret")
    try:
        root = tmp_path / "project"
        body = (
            f'cat {secret} > "$CNB_LAYERS_DIR/leak" 2>/dev/null || echo "read denied"; '
            'touch /etc/evil 2>/dev/null || echo "etc denied"; '
            'touch /cnb/buildpacks/evil 2>/dev/null || echo "buildpacks denied"; exit 0'
        )
        write_buildpack(root / "buildpacks", "test/hostile", "1.0.0", build=body)
        order = write_order(root / "order.toml", [[("test/hostile", "1.0.0")]])
        (root / "app").mkdir(parents=True)
        done = create(cnb, Project(root, root / "buildpacks", order, root / "app"), "hostile:1")
        assert "read denied" in done.stdout and "etc denied" in done.stdout and "buildpacks denied" in done.stdout
        assert not (root / "buildpacks" / "evil").exists()
        leak = root / "layers" / "test_hostile" / "leak"
        assert not leak.exists() or "top secret" not in leak.read_text()
    finally:
        secret.unlink()


def test_phases_one_by_one_with_cnb_variables(tmp_path: Path, cnb: Cnb, bases: Path) -> None:
    """A CI system driving analyze, detect, restore, build, export as separate steps, configured by CNB_* only."""
    home_with_bases(cnb, bases)
    project = make_project(tmp_path / "project")
    layers = project.root / "layers"
    layers.mkdir()
    (project.root / "platform").mkdir()
    layout = tmp_path / "out"
    env = {
        "CNB_PLATFORM_API": "0.15",
        "CNB_LAYERS_DIR": str(layers),
        "CNB_APP_DIR": str(project.app),
        "CNB_PLATFORM_DIR": str(project.root / "platform"),
        "CNB_BUILDPACKS_DIR": str(project.buildpacks),
        "CNB_ORDER_PATH": str(project.order),
        "CNB_RUN_IMAGE": "tiny-run",
        "CNB_CACHE_DIR": str(project.root / "cache"),
        "CNB_SANDBOX": "bwrap",
        "CNB_BUILD_IMAGE": "tiny-build",
    }
    cnb("lifecycle", "analyze", f"oci:{layout}:app", extra_env=env)
    assert (layers / "analyzed.toml").is_file()
    cnb("lifecycle", "detect", extra_env=env)
    group = (layers / "group.toml").read_text()
    assert group.index("test/cache") < group.index("test/launch") < group.index("test/sbom")
    cnb("lifecycle", "restore", extra_env=env)
    cnb("lifecycle", "build", extra_env=env)
    assert (layers / "config" / "metadata.toml").is_file()
    cnb("lifecycle", "export", f"oci:{layout}:app", extra_env=env)
    assert skopeo_inspect(f"oci:{layout}:app", "--config")["config"]["Entrypoint"] == ["/cnb/process/web"]
    report = (layers / "report.toml").read_text()
    assert "app" in report
    # a positional argument where the phase takes none is a usage error (exit 3), unset API is exit 11
    assert cnb("lifecycle", "detect", "extra", extra_env=env, check=False).returncode == 3
    no_api = {**env, "CNB_PLATFORM_API": ""}
    done = cnb("lifecycle", "detect", extra_env=no_api, check=False)
    assert done.returncode == 11 and "CNB_PLATFORM_API" in done.stderr
    bad_api = {**env, "CNB_PLATFORM_API": "0.3"}
    assert cnb("lifecycle", "build", extra_env=bad_api, check=False).returncode == 11
