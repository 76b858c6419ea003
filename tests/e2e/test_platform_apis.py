"""Issue 10 "must show": one build per Platform API a platform uses (Tekton's task: 0.9, kpack: 0.7 to 0.9, pack:
the latest) through ``cnb lifecycle`` analyze, detect, restore, build and export, in the bwrap sandbox of the busybox
build image. metadata.toml, analyzed.toml, report.toml and the image's labels and config are compared with what the
spec of that version says (https://github.com/buildpacks/spec/blob/platform/v0.7/platform.md and the other
``platform/v0.N`` tags), not with cnb's own output:

- ``command`` is one string below 0.10, the rest of the command leading ``args``; an array from 0.10 on;
- ``bom`` (the deprecated launch BOM) is in metadata.toml and the build metadata label below 0.9 only, and
  report.toml's ``[build] bom`` too; from 0.9 on the legacy BOM goes to ``<layers>/sbom/*/sbom.legacy.json``;
- ``SOURCE_DATE_EPOCH`` sets the image's ``created`` from 0.9 on;
- below 0.12 the run image comes from ``stack.toml``, analyzed.toml's ``[run-image]`` has only ``reference`` and
  the lifecycle label names the run image under ``stack`` only; from 0.12 ``run.toml``, ``image``/``target`` and
  ``runImage.image``/``mirrors``, and history ``created_by`` entries;
- ``io.buildpacks.exec-env`` from 0.15 on;
- the operator's build-config env reaches buildpacks from 0.11 on;
- ``create -skip-restore`` skips the whole restore phase below 0.10, and from 0.10 on still restores
  ``store.toml``.

(How the launcher combines user arguments per Platform API is tested in tests/launcher/test_compile.py.)
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cnb
from tests.e2e.test_create import bases, home_with_bases  # noqa: F401  (a fixture, and its helper)
from tests.support.buildpacks import write_buildpack, write_order
from tests.support.tools import skopeo_inspect

pytestmark = pytest.mark.integration

MODERN_BP = r"""
set -e
echo "operator env: ${OPERATOR:-unset}"
echo "target: ${CNB_TARGET_OS:-none}/${CNB_TARGET_ARCH:-none} ${CNB_TARGET_DISTRO_NAME:-none}"
echo "restored store: $(cat "$CNB_LAYERS_DIR/store.toml" 2>/dev/null | tr -d '\n' || true)."
printf '[metadata]\nrun = "yes"\n' > "$CNB_LAYERS_DIR/store.toml"
mkdir -p "$CNB_LAYERS_DIR/rt"
echo runtime > "$CNB_LAYERS_DIR/rt/file"
printf '[types]\nlaunch = true\n' > "$CNB_LAYERS_DIR/rt.toml"
cat > "$CNB_LAYERS_DIR/launch.toml" <<'EOF'
[[processes]]
type = "web"
command = ["echo", "hello"]
args = ["world"]
default = true
EOF
"""

# Buildpack API 0.8: a command string, `direct`, and the deprecated [[bom]] tables
LEGACY_BP = r"""
set -e
cat > "$CNB_LAYERS_DIR/launch.toml" <<'EOF'
[[processes]]
type = "worker"
command = "echo"
args = ["working"]
direct = true

[[bom]]
name = "dep"
[bom.metadata]
version = "1.0"
EOF
cat > "$CNB_LAYERS_DIR/build.toml" <<'EOF'
[[bom]]
name = "tool"
[bom.metadata]
version = "2.0"
EOF
"""

LEGACY = {"id": "test/legacy", "version": "1.0.0"}
MODERN = {"id": "test/modern", "version": "1.0.0"}
LAUNCH_BOM = [{"name": "dep", "metadata": {"version": "1.0"}, "buildpack": LEGACY}]
BUILD_BOM = [{"name": "tool", "metadata": {"version": "2.0"}, "buildpack": LEGACY}]
MIRROR = "mirror.invalid/tiny-run"
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
EPOCH = "1700000000"  # 2023-11-14T22:13:20Z


def expected_processes(api: str, bp_key: str) -> list[dict[str, Any]]:
    """The two processes as the spec of *api* writes them (sorted by type)."""
    if api in ("0.7", "0.9"):
        web = {"command": "echo", "args": ["hello", "world"]}
        worker = {"command": "echo", "args": ["working"]}
    else:
        web = {"command": ["echo", "hello"], "args": ["world"]}
        worker = {"command": ["echo"], "args": ["working"]}
    return [
        {"type": "web", **web, "direct": True, bp_key: "test/modern"},
        {"type": "worker", **worker, "direct": True, bp_key: "test/legacy"},
    ]


def build_with_phases(cnb: Cnb, root: Path, api: str) -> tuple[dict[str, str], str, str]:
    """Build with analyze, detect, restore, build, export; returns the environment, the image and what the build
    phase printed."""
    buildpacks = root / "buildpacks"
    write_buildpack(buildpacks, "test/legacy", "1.0.0", api="0.8", build=LEGACY_BP)
    write_buildpack(buildpacks, "test/modern", "1.0.0", api="0.12", build=MODERN_BP)
    order = write_order(root / "order.toml", [[("test/legacy", "1.0.0"), ("test/modern", "1.0.0")]])
    (root / "stack.toml").write_text(f'[run-image]\nimage = "tiny-run"\nmirrors = ["{MIRROR}"]\n')
    (root / "run.toml").write_text(f'[[images]]\nimage = "tiny-run"\nmirrors = ["{MIRROR}"]\n')
    for name in ("layers", "app", "platform", "build-config/env"):
        (root / name).mkdir(parents=True)
    (root / "build-config" / "env" / "OPERATOR").write_text("set")
    (root / "app" / "index.txt").write_text("app\n")
    layout = root / "out"
    env = {
        "CNB_PLATFORM_API": api,
        "CNB_LAYERS_DIR": str(root / "layers"),
        "CNB_APP_DIR": str(root / "app"),
        "CNB_PLATFORM_DIR": str(root / "platform"),
        "CNB_BUILD_CONFIG_DIR": str(root / "build-config"),
        "CNB_BUILDPACKS_DIR": str(buildpacks),
        "CNB_ORDER_PATH": str(order),
        "CNB_STACK_PATH": str(root / "stack.toml"),
        "CNB_RUN_PATH": str(root / "run.toml"),
        "CNB_SANDBOX": "bwrap",
        "CNB_BUILD_IMAGE": "tiny-build",
        "SOURCE_DATE_EPOCH": EPOCH,
    }
    image = f"oci:{layout}:app"
    output = ""
    for phase in ("analyze", "detect", "restore", "build", "export"):
        done = cnb("lifecycle", phase, *([image] if phase in ("analyze", "export") else []), extra_env=env)
        output += done.stdout if phase == "build" else ""
    return env, image, output


@pytest.mark.parametrize("api", ["0.7", "0.9", "0.12", "0.15"])
def test_a_build_through_the_phases_writes_the_files_and_labels_of_its_platform_api(
    tmp_path: Path,
    cnb: Cnb,
    bases: Path,  # noqa: F811
    api: str,
) -> None:
    home_with_bases(cnb, bases)
    env, image, output = build_with_phases(cnb, tmp_path / "project", api)
    layers = Path(env["CNB_LAYERS_DIR"])
    below_09, below_012 = api == "0.7", api in ("0.7", "0.9")
    assert f"operator env: {'unset' if below_012 else 'set'}" in output
    assert "restored store: ." in output  # the first build has no previous image
    # below 0.12 analyzed.toml has no target: the build image's os-release names the distro, as in the Go lifecycle
    assert f"target: linux/{ARCH} busybox" in output

    metadata = tomllib.loads((layers / "config" / "metadata.toml").read_text())
    assert metadata["processes"] == expected_processes(api, "buildpack-id")
    assert metadata["buildpack-default-process-type"] == "web"
    assert metadata["buildpacks"] == [{**LEGACY, "api": "0.8"}, {**MODERN, "api": "0.12"}]
    assert metadata.get("bom") == (LAUNCH_BOM if below_09 else None)
    assert not metadata.get("labels") and not metadata.get("slices")
    legacy_json = layers / "sbom" / "launch" / "sbom.legacy.json"
    assert legacy_json.is_file() != below_09
    if not below_09:
        assert json.loads(legacy_json.read_text()) == LAUNCH_BOM

    analyzed = tomllib.loads((layers / "analyzed.toml").read_text())
    if below_012:
        assert set(analyzed["run-image"]) == {"reference"}
    else:
        assert analyzed["run-image"]["image"] == "tiny-run"
        assert analyzed["run-image"]["target"]["os"] == "linux"

    report = tomllib.loads((layers / "report.toml").read_text())
    assert report.get("build") == ({"bom": BUILD_BOM} if below_09 else None)

    config = skopeo_inspect(image, "--config")
    labels = config["config"]["Labels"]
    build_md = json.loads(labels["io.buildpacks.build.metadata"])
    assert build_md["processes"] == expected_processes(api, "buildpackID")
    assert [{"id": b["id"], "version": b["version"]} for b in build_md["buildpacks"]] == [LEGACY, MODERN]
    assert build_md["buildpack-default-process-type"] == "web"
    assert ("bom" in build_md) == below_09
    if below_09:
        assert build_md["bom"] == LAUNCH_BOM
    lifecycle_md = json.loads(labels["io.buildpacks.lifecycle.metadata"])
    assert lifecycle_md["stack"] == {"runImage": {"image": "tiny-run", "mirrors": [MIRROR]}}
    if below_012:
        assert set(lifecycle_md["runImage"]) == {"topLayer", "reference"}
    else:
        assert lifecycle_md["runImage"]["image"] == "tiny-run"
        assert lifecycle_md["runImage"]["mirrors"] == [MIRROR]
    assert ("io.buildpacks.exec-env" in labels) == (api == "0.15")
    assert f"CNB_PLATFORM_API={api}" in config["config"]["Env"]
    assert config["created"].startswith("1980-01-01T00:00:01" if below_09 else "2023-11-14T22:13:20")
    assert config["history"][-1].get("created_by") == (None if below_012 else "Buildpacks Process Types")
    assert config["config"]["Entrypoint"] == ["/cnb/process/web"]

    # a second build with create -skip-restore: store.toml of the previous image comes back from 0.10 on only
    subprocess.run(["rm", "-rf", str(layers)], check=True)
    layers.mkdir()
    again = cnb("lifecycle", "create", "--skip-restore", image, extra_env=env)
    restored = 'restored store: [metadata]run = "yes".' in again.stdout
    assert restored == (not below_012), again.stdout
