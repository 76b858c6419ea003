"""The detect phase end to end: real ``bin/detect`` scripts run through a sandbox (docs/spec-notes.md §3.2, §4, §16
items 1-19). Most tests use ``HostSandbox`` for speed; the environment tests and one end-to-end run use bwrap on a
busybox build image."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cnbplatform.errors import PhaseError
from cnbplatform.files.analyzed import TargetInfo
from cnbplatform.files.group import GroupFile
from cnbplatform.files.order import Order
from cnbplatform.files.plan import Plan
from cnbplatform.files.system import SystemConfig
from cnbplatform.lifecycle.common import RecordingReporter
from cnbplatform.lifecycle.context import Dirs, Execution
from cnbplatform.lifecycle.detect.phase import DetectInputs, DetectResult, detect
from cnbplatform.sandbox import BwrapSandbox, HostSandbox, Sandbox
from tests.support.buildpacks import EntrySpec, make_dirs, order_text, write_buildpack
from tests.support.rootfs import make_busybox_rootfs

HOST_PATH = os.environ.get("PATH", "/usr/bin:/bin")
TARGET = TargetInfo(os="linux", arch="amd64", distro_name="ubuntu", distro_version="22.04")


def plan(toml: str, code: int = 0) -> str:
    """A detect script body writing *toml* to the build plan, then exiting *code*."""
    return f"cat > \"$CNB_BUILD_PLAN_PATH\" <<'EOF'\n{toml}\nEOF\nexit {code}"


def provides(*names: str) -> str:
    return "".join(f'[[provides]]\nname = "{n}"\n' for n in names)


def requires(*names: str) -> str:
    return "".join(f'[[requires]]\nname = "{n}"\n' for n in names)


@dataclass
class World:
    root: Path
    dirs: Dirs
    sandbox: Sandbox = field(default_factory=HostSandbox)
    base_env: dict[str, str] = field(default_factory=lambda: {"PATH": HOST_PATH})

    def bp(self, id: str, version: str = "1.0.0", **kwargs: Any) -> Path:
        return write_buildpack(self.dirs.buildpacks, id, version, **kwargs)

    def inputs(self, groups: Sequence[Sequence[EntrySpec]], **kwargs: Any) -> DetectInputs:
        execution = Execution(sandbox=self.sandbox, dirs=self.dirs, base_env=self.base_env, timeout=30)
        if "execution" in kwargs:
            execution = kwargs.pop("execution")
        values: dict[str, Any] = {
            "execution": execution,
            "order": Order.parse(order_text(groups)),
            "system": None,
            "run_target": TARGET,
            "platform_api": "0.15",
            "group_path": self.dirs.layers / "group.toml",
            "plan_path": self.dirs.layers / "plan.toml",
        }
        values.update(kwargs)
        return DetectInputs(**values)

    def detect(self, groups: Sequence[Sequence[EntrySpec]], **kwargs: Any) -> tuple[DetectResult, RecordingReporter]:
        reporter = RecordingReporter()
        return detect(self.inputs(groups, **kwargs), reporter), reporter

    def fail(self, groups: Sequence[Sequence[EntrySpec]], **kwargs: Any) -> tuple[PhaseError, RecordingReporter]:
        reporter = RecordingReporter()
        with pytest.raises(PhaseError) as info:
            detect(self.inputs(groups, **kwargs), reporter)
        return info.value, reporter


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path, make_dirs(tmp_path))


def ids(result: DetectResult) -> list[str]:
    return [str(m) for m in result.group.group]


# --- pass / fail / error (§16 items 1-5) -----------------------------------------------------------------------


def test_exit_codes_pass_fail_error_and_plan_read_only_on_pass(world: World) -> None:
    """§16 item 1: exit 0 passes, 100 fails, others error; the plan is read only on exit 0."""
    world.bp("pass", detect=plan(provides("x") + requires("x")))
    world.bp("fail-with-junk-plan", detect=plan("this is = = not toml", 100))
    world.bp("error", detect="echo boom >&2; exit 3")

    result, _ = world.detect([[("pass", "1.0.0")]])
    assert ids(result) == ["pass@1.0.0"]
    assert [e.name for e in result.plan.entries] == ["x"]

    err, _ = world.fail([[("fail-with-junk-plan", "1.0.0")]])
    assert err.exit_code == 20  # a junk plan after exit 100 is not read, so it is no error

    err, reporter = world.fail([[("error", "1.0.0")]])
    assert err.exit_code == 21
    assert "error@1.0.0 exited with code 3" in str(err) and "boom" in str(err)
    assert any("boom" in m for m in reporter.infos)


def test_group_needs_all_required_passing_one_buildpack_and_a_plan(world: World) -> None:
    """§16 item 2: every non-optional element passed, >= 1 buildpack passed, and a trial resolves."""
    world.bp("a")
    world.bp("b", detect="exit 100")
    world.bp("c", detect="exit 100")
    world.bp("needs-x", detect=plan(requires("x")))

    err, _ = world.fail([[("a", "1.0.0"), ("b", "1.0.0")]])
    assert err.exit_code == 20 and "b@1.0.0 failed" in str(err)
    err, _ = world.fail([[("c", "1.0.0", True)]])
    assert err.exit_code == 20 and "no buildpack passed" in str(err)
    err, _ = world.fail([[("a", "1.0.0"), ("needs-x", "1.0.0")]])
    assert err.exit_code == 20 and "no build plan resolved" in str(err) and "requires 'x'" in str(err)


def test_failing_and_erroring_optional_elements_are_dropped(world: World) -> None:
    """§16 item 3: optional elements that fail or error are dropped; the group still passes."""
    world.bp("a")
    world.bp("opt-fail", detect="exit 100")
    world.bp("opt-error", detect="exit 7")

    result, _ = world.detect([[("opt-fail", "1.0.0", True), ("a", "1.0.0"), ("opt-error", "1.0.0", True)]])
    assert ids(result) == ["a@1.0.0"]
    assert result.tried_groups == 1


def test_first_passing_group_wins_and_group_toml_has_exactly_the_spec_keys(world: World) -> None:
    """§16 item 4: first passing group; group.toml lists id, version, api (+homepage), never optional."""
    world.bp("first", detect="exit 100")
    world.bp("a", api="0.10", toml_extra='homepage = "https://example.com/a"')
    world.bp("b", "2.0.0")
    world.bp("later", detect='touch "$CNB_PLATFORM_DIR/../later-ran"; exit 0')

    result, _ = world.detect([[("first", "1.0.0")], [("a", "1.0.0", True), ("b", "2.0.0")], [("later", "1.0.0")]])

    assert result.tried_groups == 2
    assert not (world.root / "later-ran").exists()
    text = (world.dirs.layers / "group.toml").read_text()
    assert "optional" not in text
    assert GroupFile.load(world.dirs.layers / "group.toml").to_dict() == {
        "group": [
            {"id": "a", "version": "1.0.0", "api": "0.10", "homepage": "https://example.com/a"},
            {"id": "b", "version": "2.0.0", "api": "0.12"},
        ]
    }
    assert result.group == GroupFile.load(world.dirs.layers / "group.toml")
    assert sorted(p.name for p in world.dirs.layers.iterdir()) == ["group.toml", "plan.toml"]  # temp plans gone


def test_all_groups_fail_exit_20_and_with_an_error_exit_21(world: World) -> None:
    """§16 item 5: no group passes: 20 without errors, 21 when any bin/detect errored."""
    world.bp("a", detect="echo 'no app here'; exit 100")
    world.bp("b", detect="exit 100")
    world.bp("boom", detect="echo line1; echo line2; exit 2")

    err, reporter = world.fail([[("a", "1.0.0")], [("b", "1.0.0")]])
    assert err.exit_code == 20 and "tried 2 groups" in str(err)
    assert "no app here" in "\n".join(reporter.infos)  # on failure, detect output is shown at info level

    err, _ = world.fail([[("a", "1.0.0")], [("boom", "1.0.0"), ("b", "1.0.0")]])
    assert err.exit_code == 21
    assert "boom@1.0.0 exited with code 2; last output: line1 | line2" in str(err)


def test_output_of_passing_detection_is_debug_only(world: World) -> None:
    world.bp("a", detect="echo 'hello from detect'; exit 0")
    result, reporter = world.detect([[("a", "1.0.0")]])
    assert ids(result) == ["a@1.0.0"]
    assert any("hello from detect" in m for m in reporter.debugs)
    assert not any("hello from detect" in m for m in reporter.infos)
    assert any(re.fullmatch(r"a\s+1\.0\.0", m) for m in reporter.infos)


# --- order resolution end to end (§16 items 6, 7, 18) --------------------------------------------------------------


def test_composites_and_dedupe_end_to_end(world: World) -> None:
    """§16 item 6: the §4.2 worked example; only [A1, D1, B1] passes, after four failing groups."""
    world.bp("A", "1")
    world.bp("B", "1", detect=plan(requires("d")))
    world.bp("C", "1", detect="exit 100")
    world.bp("D", "1", detect=plan(provides("d")))
    world.bp("A", "2", detect="exit 100")
    world.bp("B", "2", detect="exit 100")
    world.bp("C", "2", detect="exit 100")
    world.bp("D", "2", detect=plan(provides("d")))
    world.bp("G", "1", composite_order=[[("A", "2"), ("B", "2")], [("C", "2"), ("D", "2")]])
    world.bp("F", "1", composite_order=[[("C", "1")], [("G", "1", True)], [("D", "1")]])
    world.bp("E", "1", composite_order=[[("A", "1"), ("F", "1"), ("B", "1")]])

    result, reporter = world.detect([[("E", "1")]])

    assert ids(result) == ["A@1", "D@1", "B@1"]
    assert result.tried_groups == 5
    tried = [m for m in reporter.debugs if m.startswith("======== Trying")]
    assert tried == [
        "======== Trying group 1 [A@1, C@1, B@1] ========",
        "======== Trying group 2 [A@1, B@2] ========",
        "======== Trying group 3 [A@1, C@2, D@2, B@1] ========",
        "======== Trying group 4 [A@1, B@1] ========",
        "======== Trying group 5 [A@1, D@1, B@1] ========",
    ]


def test_optional_element_copy_without_it_is_tried(world: World) -> None:
    """§16 item 7: [B1 optional, X] with X = [[B2, C]]: with B1 the composite's B2 is skipped and C's require is
    unmet; the copy without B1 gives [B2, C], which passes."""
    world.bp("B", "1", detect="exit 100")
    world.bp("B", "2", detect=plan(provides("b")))
    world.bp("C", "1", detect=plan(requires("b")))
    world.bp("X", "1", composite_order=[[("B", "2"), ("C", "1")]])

    result, _ = world.detect([[("B", "1", True), ("X", "1")]])

    assert ids(result) == ["B@2", "C@1"]
    assert result.tried_groups == 2


def test_system_buildpacks_pre_and_post(world: World) -> None:
    """§16 item 18: system.toml pre/post go into every group unless the ID is present (Platform 0.15 only)."""
    world.bp("pre", detect=plan(provides("p")))
    world.bp("pre", "2.0.0", detect=plan(provides("p")))
    world.bp("post", detect=plan(requires("p")))
    world.bp("web")
    system = SystemConfig.parse(
        '[[system.pre.buildpacks]]\nid = "pre"\nversion = "1.0.0"\n'
        '[[system.post.buildpacks]]\nid = "post"\nversion = "1.0.0"\n'
    )
    result, _ = world.detect([[("web", "1.0.0")]], system=system)
    assert ids(result) == ["pre@1.0.0", "web@1.0.0", "post@1.0.0"]

    result, _ = world.detect([[("pre", "2.0.0"), ("web", "1.0.0")]], system=system)
    assert ids(result) == ["pre@2.0.0", "web@1.0.0", "post@1.0.0"]

    result, _ = world.detect([[("web", "1.0.0")]], system=system, platform_api="0.14")
    assert ids(result) == ["web@1.0.0"]


# --- plan (§16 items 8-12) -----------------------------------------------------------------------------------------


def test_unmet_requires_and_unused_provides_drop_optional_elements(world: World) -> None:
    """§16 items 8-9: an optional element with an unmet require or an unused provide is dropped; a required one
    fails the group."""
    world.bp("web")
    world.bp("wants", detect=plan(requires("nothing")))
    world.bp("offers", detect=plan(provides("unused")))

    result, _ = world.detect([[("wants", "1.0.0", True), ("web", "1.0.0"), ("offers", "1.0.0", True)]])
    assert ids(result) == ["web@1.0.0"]
    err, _ = world.fail([[("web", "1.0.0"), ("offers", "1.0.0")]])
    assert err.exit_code == 20 and "provides 'unused'" in str(err)


def test_or_alternatives_and_plan_toml(world: World) -> None:
    """§16 items 10-11: [[or]] tried after the primary; plan.toml has providers and all requires with metadata."""
    world.bp("node", detect=plan('[[provides]]\nname = "node"\n[[or]]\n[[or.provides]]\nname = "node-alt"\n'))
    world.bp(
        "npm",
        detect=plan(
            '[[requires]]\nname = "node-alt"\n[requires.metadata]\nversion = "18.x"\n'
            '[[or]]\n[[or.requires]]\nname = "node"\n[or.requires.metadata]\nversion = "20.x"\n'
            '[[or.provides]]\nname = "npm"\n[[or.requires]]\nname = "npm"\n'
        ),
    )
    result, _ = world.detect([[("node", "1.0.0"), ("npm", "1.0.0")]])

    on_disk = Plan.load(world.dirs.layers / "plan.toml")
    assert on_disk == result.plan
    assert on_disk.to_dict() == {
        "entries": [
            {
                "providers": [{"id": "node", "version": "1.0.0"}],
                "requires": [{"name": "node", "metadata": {"version": "20.x"}}],
            },
            {"providers": [{"id": "npm", "version": "1.0.0"}], "requires": [{"name": "npm", "metadata": {}}]},
        ]
    }


def test_top_level_version_in_requires_is_an_error(world: World) -> None:
    """§16 item 12: a top-level version in requires makes the detect result an error (exit 21)."""
    world.bp("old-style", detect=plan('[[provides]]\nname = "x"\n[[requires]]\nname = "x"\nversion = "1"\n'))
    err, _ = world.fail([[("old-style", "1.0.0")]])
    assert err.exit_code == 21 and "old-style@1.0.0" in str(err) and "version" in str(err)


# --- targets, exec-env, APIs (§16 items 17, 19) --------------------------------------------------------------------


def test_target_mismatch_of_a_required_buildpack_is_an_error(world: World) -> None:
    """§16 item 17: a non-optional buildpack whose targets do not match the run image: group fails with error;
    an optional mismatching one still runs."""
    arm = [{"os": "linux", "arch": "arm64"}]
    world.bp("arm-only", targets=arm, detect='touch "$CNB_PLATFORM_DIR/../arm-ran"; exit 0')
    world.bp("jammy", targets=[{"os": "linux", "distros": [{"name": "ubuntu", "version": "22.04"}]}])
    world.bp("arm-optional", targets=arm, detect='touch "$CNB_PLATFORM_DIR/../arm-optional-ran"; exit 0')

    err, _ = world.fail([[("arm-only", "1.0.0"), ("jammy", "1.0.0")]])
    assert err.exit_code == 21 and "arm-only@1.0.0" in str(err) and "target" in str(err)
    assert not (world.root / "arm-ran").exists()

    result, _ = world.detect([[("jammy", "1.0.0"), ("arm-optional", "1.0.0", True)]])
    assert ids(result) == ["jammy@1.0.0", "arm-optional@1.0.0"]
    assert (world.root / "arm-optional-ran").exists()

    bionic = TargetInfo(os="linux", arch="amd64", distro_name="ubuntu", distro_version="18.04")
    err, _ = world.fail([[("jammy", "1.0.0")]], run_target=bionic)
    assert err.exit_code == 21
    result, _ = world.detect([[("arm-only", "1.0.0")]], platform_api="0.11")  # no target check before 0.12
    assert ids(result) == ["arm-only@1.0.0"]


def test_exec_env_filtering(world: World) -> None:
    """§4.3 step 2: Platform 0.15 skips buildpacks (API >= 0.12) whose exec-env excludes CNB_EXEC_ENV."""
    world.bp("always")
    world.bp("test-only", toml_extra='exec-env = ["test"]')
    world.bp("star", toml_extra='exec-env = ["*"]')
    world.bp("old-api", api="0.11", toml_extra='exec-env = ["test"]')
    groups = [[("always", "1.0.0"), ("test-only", "1.0.0"), ("star", "1.0.0"), ("old-api", "1.0.0")]]

    result, _ = world.detect(groups)
    assert ids(result) == ["always@1.0.0", "star@1.0.0", "old-api@1.0.0"]
    result, _ = world.detect(groups, exec_env="test")
    assert ids(result) == ["always@1.0.0", "test-only@1.0.0", "star@1.0.0", "old-api@1.0.0"]
    result, _ = world.detect(groups, platform_api="0.14")
    assert len(result.group.group) == 4


@pytest.mark.parametrize("value", ["", "0.3", "banana"])
def test_platform_api_missing_or_unsupported_is_exit_11(world: World, value: str) -> None:
    """§16 item 19: unset or unsupported CNB_PLATFORM_API exits 11."""
    world.bp("a")
    err, _ = world.fail([[("a", "1.0.0")]], platform_api=value)
    assert err.exit_code == 11


def test_unsupported_buildpack_api_is_exit_12_before_any_detect(world: World) -> None:
    """§16 item 19: any top-level element with an unsupported api exits 12 before detection runs."""
    world.bp("a", detect='touch "$CNB_PLATFORM_DIR/../a-ran"; exit 0')
    world.bp("future", api="0.99")
    err, _ = world.fail([[("a", "1.0.0")], [("future", "1.0.0")]])
    assert err.exit_code == 12 and "future@1.0.0" in str(err)
    assert not (world.root / "a-ran").exists()


def test_other_detect_errors_are_exit_22(world: World) -> None:
    world.bp("a")
    err, _ = world.fail([[("a", "1.0.0"), ("missing", "1.0.0")]])
    assert err.exit_code == 22 and "missing@1.0.0" in str(err)
    extensions = Order.parse(order_text([[("a", "1.0.0")]]) + '[[order-extensions]]\n[[order-extensions.group]]\n'
                             'id = "ext"\nversion = "1"\n')  # fmt: skip
    err, _ = world.fail([], order=extensions)
    assert err.exit_code == 22 and "extensions" in str(err)


def test_empty_order_is_exit_20(world: World) -> None:
    err, _ = world.fail([])
    assert err.exit_code == 20


# --- running bin/detect: memoisation, concurrency, limits ----------------------------------------------------------


def test_detect_runs_once_per_buildpack_across_groups(world: World) -> None:
    """§4.2: detect results are memoised per id@version across groups."""
    log = world.root / "runs.log"
    world.bp("shared", detect=f"echo run >> {log}; exit 0")
    world.bp("nope", detect="exit 100")
    world.bp("last")

    result, _ = world.detect([[("shared", "1.0.0"), ("nope", "1.0.0")], [("nope", "1.0.0", True), ("shared", "1.0.0")],
                              [("shared", "1.0.0"), ("last", "1.0.0")]])  # fmt: skip

    assert ids(result) == ["shared@1.0.0"]
    assert log.read_text() == "run\n"
    assert result.tried_groups == 2


def test_result_does_not_depend_on_which_detect_finishes_first(world: World) -> None:
    """§4.2: detects of one group run concurrently; the outcome follows group order, not finishing order."""
    finished = world.root / "finished"
    world.bp("slow", detect=f"sleep 0.6; echo slow >> {finished}; " + plan(provides("x") + requires("x")))
    world.bp("fast-1", detect=f"echo fast-1 >> {finished}; " + plan(requires("x")))
    world.bp("fast-2", detect=f"echo fast-2 >> {finished}; " + plan(requires("x")))
    groups = [[("slow", "1.0.0"), ("fast-1", "1.0.0"), ("fast-2", "1.0.0")]]

    result, reporter = world.detect(groups, parallel=3)
    assert finished.read_text().splitlines()[-1] == "slow"  # ran side by side: the first in order finished last

    assert ids(result) == ["slow@1.0.0", "fast-1@1.0.0", "fast-2@1.0.0"]
    assert [[p.id for p in e.providers] for e in result.plan.entries] == [["slow"]]
    assert len(result.plan.entries[0].requires) == 3
    assert [m for m in reporter.debugs if m.startswith("pass:")] == [
        "pass: slow@1.0.0",
        "pass: fast-1@1.0.0",
        "pass: fast-2@1.0.0",
    ]

    finished.unlink()
    sequential, _ = world.detect(groups, parallel=1)
    assert finished.read_text().splitlines() == ["slow", "fast-1", "fast-2"]
    assert sequential == result


def test_each_buildpack_gets_a_fresh_empty_plan_file_and_positional_args(world: World) -> None:
    """§3.2: CNB_BUILD_PLAN_PATH is a fresh empty file per buildpack; $1 = platform dir, $2 = plan path."""
    for name in ("a", "b"):
        world.bp(
            name,
            detect=f'test -s "$CNB_BUILD_PLAN_PATH" && exit 9\n'
            f'echo "$1|$2|$CNB_PLATFORM_DIR|$CNB_BUILD_PLAN_PATH|$(pwd)" > {world.root}/{name}.args\n'
            + plan(provides(name) + requires(name)),
        )
    result, _ = world.detect([[("a", "1.0.0"), ("b", "1.0.0")]])
    assert ids(result) == ["a@1.0.0", "b@1.0.0"]
    paths = []
    for name in ("a", "b"):
        first, second, platform_dir, plan_path, cwd = (world.root / f"{name}.args").read_text().strip().split("|")
        assert first == platform_dir == str(world.dirs.platform)  # HostSandbox shows host paths
        assert second == plan_path and cwd == str(world.dirs.app)
        paths.append(plan_path)
    assert paths[0] != paths[1]
    assert not Path(paths[0]).exists()


def test_hanging_detect_is_killed_and_reported(world: World) -> None:
    """A bin/detect that hangs is killed at the execution timeout and counts as an error (exit 21)."""
    world.bp("hangs", detect="echo starting; sleep 60")
    execution = Execution(sandbox=world.sandbox, dirs=world.dirs, base_env=world.base_env, timeout=0.5)
    err, _ = world.fail([[("hangs", "1.0.0")]], execution=execution)
    assert err.exit_code == 21
    assert "hangs@1.0.0" in str(err) and "timed out" in str(err) and "starting" in str(err)


def test_huge_output_is_bounded_and_does_not_hang(world: World) -> None:
    """A bin/detect printing 20 MB finishes; what is kept and reported is bounded by the output limit."""
    world.bp("chatty", detect="yes 0123456789abcdef | head -c 20000000; echo; echo the-end; exit 5")
    execution = Execution(
        sandbox=world.sandbox, dirs=world.dirs, base_env=world.base_env, timeout=60, output_limit=1 << 20
    )
    err, reporter = world.fail([[("chatty", "1.0.0")]], execution=execution)
    assert err.exit_code == 21 and "the-end" in str(err)
    shown = "\n".join(reporter.infos)
    assert "bytes of output omitted" in shown and "the-end" in shown
    assert len(shown) < (1 << 20) + 64 * 1024


# --- the environment bin/detect sees, in a real sandbox (§16 items 13-16) -------------------------------------------

DUMP_ENV = 'cat /proc/self/environ > "/workspace/env.$(basename "$(dirname "$CNB_BUILDPACK_DIR")")"\n'
SHELL_ADDED = {"SHLVL": "1", "PWD": "/workspace"}  # busybox sh exports these itself; PWD proves cwd = <app>


@pytest.fixture(scope="module")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_busybox_rootfs(tmp_path_factory.mktemp("build-image"))


@pytest.fixture
def sandboxed(tmp_path: Path, busybox_rootfs: Path) -> World:
    return World(tmp_path, make_dirs(tmp_path), sandbox=BwrapSandbox(busybox_rootfs), base_env={"PATH": "/bin"})


def dumped_env(world: World, escaped_id: str) -> dict[str, str]:
    raw = (world.dirs.app / f"env.{escaped_id}").read_bytes()
    return dict(item.decode().split("=", 1) for item in raw.split(b"\0") if item)


@pytest.mark.integration
def test_detect_env_is_exactly_the_spec_env(sandboxed: World) -> None:
    """§16 items 13-16: cwd <app>; CNB_BUILDPACK_DIR, CNB_PLATFORM_DIR, CNB_BUILD_PLAN_PATH, CNB_TARGET_*,
    CNB_EXEC_ENV; lifecycle vars outside the include list (FOO, CNB_REGISTRY_AUTH) are invisible; platform env
    (PATH prepended, others override, clear-env suppresses); build-config env (no suffix = default, .override)."""
    world = sandboxed
    world.base_env = {
        "PATH": "/bin",
        "HOME": "/home/cnb",
        "http_proxy": "http://127.0.0.1:9",
        "FOO": "must not leak",
        "CNB_REGISTRY_AUTH": '{"registry.example": "Basic c2VjcmV0"}',
        "CNB_PLATFORM_API": "0.15",
    }
    (world.dirs.platform / "env" / "PATH").write_text("/user/bin")
    (world.dirs.platform / "env" / "USERVAR").write_bytes(b"multi\nline\n")
    (world.dirs.platform / "env" / "OPERATOR_DEFAULTED").write_text("from user")
    assert world.dirs.build_config is not None
    (world.dirs.build_config / "env" / "OPERATOR_DEFAULTED").write_text("from operator")
    (world.dirs.build_config / "env" / "OPERATOR_ONLY").write_text("operator value")
    (world.dirs.build_config / "env" / "HOME.override").write_text("/forced/home")
    world.bp("example/env", detect=DUMP_ENV + plan(provides("x")))
    world.bp("example/clear", toml_extra="clear-env = true", detect=DUMP_ENV + plan(requires("x")))
    world.bp("example/old", api="0.9", detect=DUMP_ENV)
    target = TargetInfo(os="linux", arch="arm64", arch_variant="v8", distro_name="ubuntu", distro_version="22.04")

    result, _ = world.detect(
        [[("example/env", "1.0.0"), ("example/clear", "1.0.0"), ("example/old", "1.0.0")]], run_target=target
    )
    assert ids(result) == ["example/env@1.0.0", "example/clear@1.0.0", "example/old@1.0.0"]

    env = dumped_env(world, "example_env")
    plan_path = env.pop("CNB_BUILD_PLAN_PATH")
    assert re.fullmatch(r"/layers/\.cnb-detect-[^/]+/\d+-example_env\.toml", plan_path)
    assert env == {
        **SHELL_ADDED,
        "PATH": "/user/bin:/bin",
        "HOME": "/forced/home",
        "http_proxy": "http://127.0.0.1:9",
        "USERVAR": "multi\nline\n",
        "OPERATOR_DEFAULTED": "from user",
        "OPERATOR_ONLY": "operator value",
        "CNB_BUILDPACK_DIR": "/cnb/buildpacks/example_env/1.0.0",
        "CNB_PLATFORM_DIR": "/platform",
        "CNB_TARGET_OS": "linux",
        "CNB_TARGET_ARCH": "arm64",
        "CNB_TARGET_ARCH_VARIANT": "v8",
        "CNB_TARGET_DISTRO_NAME": "ubuntu",
        "CNB_TARGET_DISTRO_VERSION": "22.04",
        "CNB_EXEC_ENV": "production",
    }

    cleared = dumped_env(world, "example_clear")
    assert cleared.pop("CNB_BUILD_PLAN_PATH") != plan_path
    assert cleared == {
        **SHELL_ADDED,
        "PATH": "/bin",
        "HOME": "/forced/home",
        "http_proxy": "http://127.0.0.1:9",
        "OPERATOR_DEFAULTED": "from operator",
        "OPERATOR_ONLY": "operator value",
        "CNB_BUILDPACK_DIR": "/cnb/buildpacks/example_clear/1.0.0",
        "CNB_PLATFORM_DIR": "/platform",
        "CNB_TARGET_OS": "linux",
        "CNB_TARGET_ARCH": "arm64",
        "CNB_TARGET_ARCH_VARIANT": "v8",
        "CNB_TARGET_DISTRO_NAME": "ubuntu",
        "CNB_TARGET_DISTRO_VERSION": "22.04",
        "CNB_EXEC_ENV": "production",
    }

    old = dumped_env(world, "example_old")  # Buildpack API 0.9: no CNB_TARGET_* (0.10) and no CNB_EXEC_ENV (0.12)
    assert {k for k in old if k.startswith("CNB_")} == {"CNB_BUILDPACK_DIR", "CNB_PLATFORM_DIR", "CNB_BUILD_PLAN_PATH"}


@pytest.mark.integration
def test_credentials_in_the_lifecycle_env_are_invisible_to_detect(sandboxed: World) -> None:
    """§16 item 14: FOO and CNB_REGISTRY_AUTH set for the lifecycle never reach bin/detect, not even via /proc."""
    world = sandboxed
    secret = "Basic c2VjcmV0LXRva2Vu"
    world.base_env = {"PATH": "/bin", "FOO": "bar", "CNB_REGISTRY_AUTH": f'{{"127.0.0.1:5000": "{secret}"}}'}
    world.bp(
        "snoop",
        detect=DUMP_ENV + "cat /proc/*/environ > /workspace/all-environ 2>/dev/null; env > /workspace/env.txt; exit 0",
    )
    result, _ = world.detect([[("snoop", "1.0.0")]])
    assert ids(result) == ["snoop@1.0.0"]
    env = dumped_env(world, "snoop")
    assert "FOO" not in env and "CNB_REGISTRY_AUTH" not in env
    for name in ("env.snoop", "all-environ", "env.txt"):
        data = (world.dirs.app / name).read_bytes()
        assert secret.encode() not in data and b"FOO=" not in data


@pytest.mark.integration
def test_end_to_end_in_bwrap(sandboxed: World) -> None:
    """§4 end to end in the busybox build image: detect reads the app dir, writes its plan, group and plan files."""
    world = sandboxed
    (world.dirs.app / "package.json").write_text("{}")
    world.bp(
        "example/node",
        detect="test -f package.json || exit 100\n"
        "id -u > /workspace/uid\n"
        + plan('[[provides]]\nname = "node"\n[[requires]]\nname = "node"\n[requires.metadata]\nversion = "18.x"\n'),
    )
    world.bp("example/python", detect="test -f requirements.txt || exit 100")
    world.bp("example/failing-optional", detect="echo oops; exit 1")

    result, _ = world.detect(
        [[("example/python", "1.0.0")], [("example/node", "1.0.0"), ("example/failing-optional", "1.0.0", True)]]
    )

    assert ids(result) == ["example/node@1.0.0"]
    assert (world.dirs.app / "uid").read_text().strip() == "1000"
    assert GroupFile.load(world.dirs.layers / "group.toml") == result.group
    assert Plan.load(world.dirs.layers / "plan.toml").to_dict() == {
        "entries": [
            {
                "providers": [{"id": "example/node", "version": "1.0.0"}],
                "requires": [{"name": "node", "metadata": {"version": "18.x"}}],
            }
        ]
    }
    assert sorted(p.name for p in world.dirs.layers.iterdir()) == ["group.toml", "plan.toml"]


@pytest.mark.integration
def test_hanging_detect_in_bwrap_times_out(sandboxed: World) -> None:
    world = sandboxed
    world.bp("hangs", detect="sleep 60")
    execution = Execution(sandbox=world.sandbox, dirs=world.dirs, base_env=world.base_env, timeout=0.5)
    err, _ = world.fail([[("hangs", "1.0.0")]], execution=execution)
    assert err.exit_code == 21 and "hangs@1.0.0" in str(err) and "timed out" in str(err)
