"""Issue 10 item 6: conformance fixes found by running the spec's cases through ``cnb lifecycle`` (each of these
failed before the fix).

- a run image without ``io.buildpacks.base.distro.*`` labels gets its distro from its own ``os-release``
  (https://github.com/buildpacks/spec/blob/main/platform.md#analyzedtoml-toml);
- ``cnb lifecycle detect``/``build`` with ``--sandbox host`` refuse to run buildpacks as root, as the Go
  lifecycle's detector and builder do;
- a group.toml buildpack whose ``api`` is not a supported Buildpack API is exit 12;
- ``CNB_PROCESS_TYPE`` is warned about and ignored by ``cnb lifecycle launch``; no default process and no command
  is exit 82;
- plan.toml is an empty file when no buildpack wrote a plan;
- detect's debug log says why a trial failed, numbers the trials and mentions system buildpacks; export says how
  many app layers it added or reused.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from cnbplatform.errors import PhaseError
from cnbplatform.files.analyzed import Analyzed
from cnbplatform.files.group import GroupFile, GroupMember
from cnbplatform.files.metadata import BuildMetadata, BuildpackRef, ProcessEntry
from cnbplatform.files.system import SystemConfig
from cnbplatform.lifecycle.analyze import AnalyzeInputs, analyze
from cnbplatform.lifecycle.common import RecordingReporter
from cnbplatform.lifecycle.restore import RestoreInputs, restore
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.store.layout import LayoutStore
from tests.conftest import Cnb
from tests.launcher.fakeimage import FakeImage, process
from tests.lifecycle.export_helpers import Scene
from tests.lifecycle.test_cache import make_blob, make_tree, write_image
from tests.lifecycle.test_detect import World, plan, provides, requires
from tests.support.buildpacks import make_dirs, write_order

# -- the run image's distro from its os-release ---------------------------------------------------------------


def run_image_analyzed(tmp_path: Path, labels: dict[str, str], platform_api: str = "0.15") -> Analyzed:
    cache, blobs = LayerCache(tmp_path / "layer-cache"), tmp_path / "blobs"
    lower = make_blob(
        cache, make_tree(tmp_path / "lower", {"usr/lib/os-release": b"ID=alpine\nVERSION_ID=3.19\n"}), "/", blobs
    )
    upper = make_blob(
        cache,
        make_tree(tmp_path / "upper", {"etc/os-release": b'NAME="Ubuntu"\nID=ubuntu\nVERSION_ID="22.04"\n'}),
        "/",
        blobs,
    )
    run = write_image(LayoutStore(tmp_path / "store"), "run", [lower, upper], labels)
    inputs = AnalyzeInputs(
        previous_image=None,
        previous_reference="",
        run_image=run,
        run_image_name="run",
        run_image_reference=f"run@{run.descriptor.digest}",
        layers_dir=tmp_path / "layers",
        analyzed_path=tmp_path / "layers" / "analyzed.toml",
        platform_api=platform_api,
    )
    return analyze(inputs, RecordingReporter())


def test_a_run_image_without_distro_labels_gets_its_distro_from_its_os_release(tmp_path: Path) -> None:
    analyzed = run_image_analyzed(tmp_path, {})
    assert analyzed.run_image is not None and analyzed.run_image.target is not None
    target = analyzed.run_image.target
    assert (target.distro_name, target.distro_version) == ("ubuntu", "22.04")  # the upper layer's /etc/os-release
    written = tomllib.loads((tmp_path / "layers" / "analyzed.toml").read_text())
    assert written["run-image"]["target"]["distro"] == {"name": "ubuntu", "version": "22.04"}


def test_an_unreadable_run_image_layer_only_costs_the_distro(tmp_path: Path) -> None:
    cache, blobs = LayerCache(tmp_path / "layer-cache"), tmp_path / "blobs"
    layer = make_blob(cache, make_tree(tmp_path / "root", {"etc/os-release": b"ID=ubuntu\n"}), "/", blobs)
    run = write_image(LayoutStore(tmp_path / "store"), "run", [layer], {})
    blob = tmp_path / "store" / "blobs" / "sha256" / layer.digest.removeprefix("sha256:")
    blob.chmod(0o644)
    blob.write_bytes(b"not a layer")
    reporter = RecordingReporter()
    inputs = AnalyzeInputs(
        previous_image=None,
        previous_reference="",
        run_image=run,
        run_image_name="run",
        run_image_reference=f"run@{run.descriptor.digest}",
        layers_dir=tmp_path / "layers",
        analyzed_path=tmp_path / "layers" / "analyzed.toml",
    )
    target = analyze(inputs, reporter).run_image.target  # type: ignore[union-attr]
    assert target is not None and target.os == "linux" and not target.distro_name
    assert any("os-release" in w for w in reporter.warnings)


def test_distro_labels_win_over_os_release(tmp_path: Path) -> None:
    labels = {"io.buildpacks.base.distro.name": "debian", "io.buildpacks.base.distro.version": "12"}
    target = run_image_analyzed(tmp_path, labels).run_image.target  # type: ignore[union-attr]
    assert target is not None and (target.distro_name, target.distro_version) == ("debian", "12")


def test_below_platform_0_12_analyzed_toml_names_the_run_image_by_reference_only(tmp_path: Path) -> None:
    run_image_analyzed(tmp_path, {}, platform_api="0.11")
    written = tomllib.loads((tmp_path / "layers" / "analyzed.toml").read_text())
    assert list(written["run-image"]) == ["reference"]


# -- refusing to run buildpacks as root -------------------------------------------------------------------------


@pytest.mark.parametrize("phase", ["detect", "build"])
def test_host_sandbox_refuses_to_run_buildpacks_as_root(tmp_path: Path, cnb: Cnb, phase: str) -> None:
    dirs = make_dirs(tmp_path)
    order = write_order(tmp_path / "order.toml", [[("test/any", "1.0.0")]])
    env = {
        "CNB_PLATFORM_API": "0.15",
        "CNB_LAYERS_DIR": str(dirs.layers),
        "CNB_APP_DIR": str(dirs.app),
        "CNB_PLATFORM_DIR": str(dirs.platform),
        "CNB_BUILDPACKS_DIR": str(dirs.buildpacks),
        "CNB_ORDER_PATH": str(order),
    }
    done = cnb("lifecycle", phase, "--sandbox", "host", extra_env=env, check=False)
    if os.getuid() == 0:  # CI runs as root
        assert done.returncode == 1, done.stderr
        assert "refusing to run as root" in done.stderr and "Traceback" not in done.stderr
        assert not (dirs.layers / "group.toml").exists()
    else:  # as anyone else the phase runs (and fails for its own reasons: no such buildpack)
        assert "refusing to run as root" not in done.stderr
    # the Platform API is checked first, as in the Go lifecycle
    unset = cnb("lifecycle", phase, "--sandbox", "host", extra_env={**env, "CNB_PLATFORM_API": ""}, check=False)
    assert unset.returncode == 11


# -- group.toml Buildpack APIs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["abc", "0.3", "9.0"])
def test_a_group_member_with_an_unsupported_api_is_exit_12(tmp_path: Path, api: str) -> None:
    group = GroupFile(group=(GroupMember("example/bp", "1.0.0", api),))
    inputs = RestoreInputs(group=group, analyzed=Analyzed(), cache=None, layers_dir=tmp_path, platform_api="0.15")
    with pytest.raises(PhaseError) as caught:
        restore(inputs, RecordingReporter())
    assert caught.value.exit_code == 12
    assert "example/bp@1.0.0" in caught.value.message and repr(api) in caught.value.message


def test_cnb_lifecycle_build_checks_the_group_apis(tmp_path: Path, cnb: Cnb) -> None:
    """The builder's own check, before any buildpack (or sandbox) is looked at."""
    layers = tmp_path / "layers"
    layers.mkdir()
    (layers / "group.toml").write_text('[[group]]\nid = "example/bp"\nversion = "1.0.0"\napi = "not-a-version"\n')
    (layers / "plan.toml").write_text("")
    env = {"CNB_PLATFORM_API": "0.15", "CNB_LAYERS_DIR": str(layers)}
    done = cnb("lifecycle", "build", "--sandbox", "bwrap", "--build-image", "no-such-image", extra_env=env, check=False)
    assert done.returncode == 12, done.stderr
    assert "not-a-version" in done.stderr and "Traceback" not in done.stderr
    restored = cnb("lifecycle", "restore", extra_env=env, check=False)
    assert restored.returncode == 12, restored.stderr


# -- the launcher and CNB_PROCESS_TYPE --------------------------------------------------------------------------


def launch_env(image: FakeImage, **extra: str) -> dict[str, str]:
    return {"CNB_PLATFORM_API": "0.15", "CNB_LAYERS_DIR": str(image.layers), "CNB_APP_DIR": str(image.app), **extra}


def write_metadata(image: FakeImage, default: str) -> None:
    BuildMetadata(
        buildpacks=(BuildpackRef("bp/a", "1.0.0", "0.12"),),
        processes=(ProcessEntry("web", ("echo", "web"), (), True, "bp/a"), ProcessEntry("other", ("echo", "other"))),
        default_process_type=default,
    ).dump(image.layers / "config" / "metadata.toml")


def test_lifecycle_launch_warns_about_and_ignores_cnb_process_type(tmp_path: Path, cnb: Cnb) -> None:
    image = FakeImage(tmp_path / "image")
    image.layer("bp/a", "l")
    image.export(process("web", "echo", "web"), process("other", "echo", "other"))
    write_metadata(image, "web")
    done = cnb("lifecycle", "launch", extra_env=launch_env(image, CNB_PROCESS_TYPE="other"))
    assert done.stdout == "web\n"  # the default process, as the image's entrypoint would run it
    assert "CNB_PROCESS_TYPE is not supported" in done.stderr
    # --process-type picks a process; a command after it replaces the process's args
    assert cnb("lifecycle", "launch", "--process-type", "other", extra_env=launch_env(image)).stdout == "other\n"


def test_lifecycle_launch_without_default_process_or_command_is_exit_82(tmp_path: Path, cnb: Cnb) -> None:
    image = FakeImage(tmp_path / "image")
    image.layer("bp/a", "l")
    image.export(process("web", "echo", "web"))
    write_metadata(image, "")
    done = cnb("lifecycle", "launch", extra_env=launch_env(image, CNB_PROCESS_TYPE="web"), check=False)
    assert done.returncode == 82, done.stderr
    assert "when there is no default process a command is required" in done.stderr
    assert cnb("lifecycle", "launch", "echo", "given", extra_env=launch_env(image)).stdout == "given\n"


# -- plan.toml and detect's debug log ----------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, make_dirs(tmp_path))


def test_plan_toml_is_an_empty_file_when_no_buildpack_wrote_a_plan(world: World) -> None:
    world.bp("quiet", detect="exit 0")
    custom = world.dirs.layers / "custom" / "my-plan.toml"
    result, _ = world.detect([[("quiet", "1.0.0")]], plan_path=custom)
    assert not result.plan.entries
    assert custom.read_bytes() == b""


def test_detect_debug_log_numbers_trials_and_says_why_they_failed(world: World) -> None:
    world.bp("opt", detect=plan(provides("unused")))
    world.bp("alt", detect=plan(requires("nothing") + "\n[[or]]\n"))
    world.bp("main", detect="exit 0")
    _, reporter = world.detect([[("opt", "1.0.0", True), ("alt", "1.0.0"), ("main", "1.0.0")]])
    log = reporter.debugs
    assert "Resolving plan... (try #1)" in log and "Resolving plan... (try #2)" in log
    assert "fail: alt@1.0.0 requires nothing" in log
    assert "skip: opt@1.0.0 provides unused unused" in log


def test_detect_debug_log_mentions_system_buildpacks(world: World) -> None:
    for name in ("pre", "main", "post"):
        world.bp(name, detect="exit 0")
    system = SystemConfig.parse(
        '[[system.pre.buildpacks]]\nid = "pre"\nversion = "1.0.0"\n'
        '[[system.post.buildpacks]]\nid = "post"\nversion = "1.0.0"\noptional = true\n'
    )
    result, reporter = world.detect([[("main", "1.0.0")]], system=system)
    assert [m.id for m in result.group.group] == ["pre", "main", "post"]
    assert "Prepending 1 system buildpack(s) to group 1" in reporter.debugs
    assert "Appending 1 system buildpack(s) to group 1" in reporter.debugs


# -- export: how many app layers ---------------------------------------------------------------------------------


def test_export_says_how_many_app_layers_it_added_and_reused(tmp_path: Path) -> None:
    scene = Scene(tmp_path).standard(slices=[["static/*"]])
    scene.export()
    assert "Added 2/2 app layer(s)" in scene.reporter.infos
    (scene.app / "index.js").write_text("console.log(2)\n")  # the remainder changes, the slice does not
    scene.reporter = RecordingReporter()
    scene.export(previous=scene.image())
    assert "Reused 1/2 app layer(s)" in scene.reporter.infos
    assert "Added 1/2 app layer(s)" in scene.reporter.infos


# -- CNB_LOG_LEVEL ------------------------------------------------------------------------------------------------


def test_cnb_log_level_sets_the_log_level_and_the_flag_wins(tmp_path: Path, cnb: Cnb) -> None:
    layers = tmp_path / "layers"
    layers.mkdir()
    (layers / "group.toml").write_text('[[group]]\nid = "example/bp"\nversion = "1.0.0"\napi = "0.12"\n')
    (layers / "analyzed.toml").write_text(
        '[run-image]\nreference = "run@sha256:' + "1" * 64 + '"\n'
        '[[metadata.buildpacks]]\nkey = "example/bp"\nversion = "1.0.0"\n'
        '[metadata.buildpacks.layers.gone]\nsha = "sha256:' + "2" * 64 + '"\nlaunch = false\n'
    )
    env = {"CNB_PLATFORM_API": "0.15", "CNB_LAYERS_DIR": str(layers)}
    debug_line = "Not restoring metadata for 'example/bp:gone', marked as launch=false"
    assert debug_line not in cnb("lifecycle", "restore", extra_env=env).stderr
    assert debug_line in cnb("lifecycle", "restore", extra_env={**env, "CNB_LOG_LEVEL": "debug"}).stderr
    quiet = cnb("lifecycle", "restore", "--log-level", "info", extra_env={**env, "CNB_LOG_LEVEL": "debug"})
    assert debug_line not in quiet.stderr
    bad = cnb("lifecycle", "restore", extra_env={**env, "CNB_LOG_LEVEL": "loud"}, check=False)
    assert bad.returncode != 0 and "CNB_LOG_LEVEL" in bad.stderr and "Traceback" not in bad.stderr
