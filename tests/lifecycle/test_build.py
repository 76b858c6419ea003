"""The build phase (docs/spec-notes.md §3.3-§3.10, §5.3; §16 items 20-25 and 28-32) with sh test buildpacks on the host
sandbox. The build environment (items 26, 27) and the bwrap build are in test_build_env.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cnbplatform.errors import PhaseError
from cnbplatform.files.group import GroupMember
from cnbplatform.files.metadata import BuildMetadata
from cnbplatform.files.plan import BuildpackPlan
from cnbplatform.lifecycle.build.phase import BuildpackFailed
from tests.lifecycle.build_helpers import BuildSetup, launch_toml, layer_toml, plan_of


@pytest.fixture
def setup(tmp_path: Path) -> BuildSetup:
    return BuildSetup.create(tmp_path)


# --- item 20: order, cwd, failure -----------------------------------------------------------------------------


def test_buildpacks_run_in_group_order_with_cwd_app(setup: BuildSetup) -> None:
    """Item 20: group order, cwd = <app>; output is streamed to the reporter per buildpack."""
    for name in ("c", "a", "b"):
        setup.bp(f"t/{name}", f'echo {name} >> order.txt\npwd > pwd-{name}.txt\necho "hello from {name}"')
    result = setup.run("t/c", "t/a", "t/b")
    assert setup.app("order.txt").read_text().split() == ["c", "a", "b"]
    assert setup.app("pwd-a.txt").read_text().strip() == str(setup.dirs.app)
    assert [b.id for b in result.buildpacks] == ["t/c", "t/a", "t/b"]
    assert "hello from a" in setup.reporter.text_of("t/a@0.0.1")
    assert "hello from a" not in setup.reporter.text_of("t/b@0.0.1")


def test_failing_build_stops_the_build_with_51(setup: BuildSetup) -> None:
    """Item 20: a non-zero bin/build stops the build (exit 51, naming the buildpack and its exit code)."""
    setup.bp("t/a", "echo a >> order.txt")
    setup.bp("t/b", "echo b >> order.txt\necho broken >&2\nexit 3")
    setup.bp("t/c", "echo c >> order.txt")
    with pytest.raises(BuildpackFailed) as info:
        setup.run("t/a", "t/b", "t/c")
    err = info.value
    assert err.exit_code == 51
    assert "t/b@0.0.1" in err.message and "exit code 3" in err.message
    assert err.exit_status == 3 and not err.timed_out
    assert [b.id for b in err.completed] == ["t/a"]  # accounting of what ran survives the failure
    assert setup.app("order.txt").read_text().split() == ["a", "b"]
    assert "broken" in setup.reporter.text_of("t/b")
    assert not setup.layers("config", "metadata.toml").exists()


def test_hanging_build_times_out_with_51(setup: BuildSetup) -> None:
    """Item 20: a bin/build that does not finish within the execution's timeout fails with 51, 'timed out'."""
    setup.bp("t/hang", "sleep 30")
    with pytest.raises(PhaseError) as info:
        setup.run("t/hang", execution=setup.execution(timeout=0.5))
    assert info.value.exit_code == 51
    assert "t/hang@0.0.1" in info.value.message and "timed out" in info.value.message


def test_missing_bin_build_is_51(setup: BuildSetup) -> None:
    bp_dir = setup.dirs.buildpacks / "t_a" / "0.0.1"
    setup.bp("t/a")
    (bp_dir / "bin" / "build").unlink()
    with pytest.raises(PhaseError) as info:
        setup.run("t/a")
    assert info.value.exit_code == 51 and "bin/build" in info.value.message


def test_unknown_buildpack_is_52_and_unsupported_api_is_12(setup: BuildSetup) -> None:
    setup.members["t/missing"] = GroupMember("t/missing", "9.9.9", "0.12")
    with pytest.raises(PhaseError) as info:
        setup.run("t/missing")
    assert info.value.exit_code == 52 and "t/missing@9.9.9" in info.value.message
    setup.bp("t/old", api="0.6")
    with pytest.raises(PhaseError) as info:
        setup.run("t/old")
    assert info.value.exit_code == 12 and "0.6" in info.value.message


# --- item 21: CNB_LAYERS_DIR ----------------------------------------------------------------------------------


def test_layers_dir_is_escaped_id_and_exists_before_build(setup: BuildSetup) -> None:
    """Item 21: CNB_LAYERS_DIR = <layers>/<id with / → _>, created before bin/build starts; $1 is the same."""
    setup.bp(
        "org/some-bp",
        'test -d "$CNB_LAYERS_DIR" && echo exists > "$CNB_LAYERS_DIR/../seen"\n'
        'echo "$CNB_LAYERS_DIR" > layers-dir.txt\necho "$1" > arg1.txt',
    )
    setup.run("org/some-bp")
    expected = setup.layers("org_some-bp")
    assert setup.app("layers-dir.txt").read_text().strip() == str(expected)
    assert setup.app("arg1.txt").read_text().strip() == str(expected)
    assert setup.layers("seen").read_text() == "exists\n"


def test_buildpack_dir_gets_the_owner_of_the_layers_dir(setup: BuildSetup) -> None:
    """Item 21: as root, <layers>/<bp> is handed to the owner of <layers> (whoever the sandbox runs buildpacks as);
    otherwise it simply belongs to the lifecycle's user."""
    expected = (os.getuid(), os.getgid())
    if os.geteuid() == 0:
        expected = (1234, 1234)
        os.chown(setup.dirs.layers, *expected)
    setup.bp("t/a", "true")
    setup.run("t/a")
    st = setup.layers("t_a").stat()
    assert (st.st_uid, st.st_gid) == expected


# --- items 22, 23: buildpack plan and build.toml --------------------------------------------------------------


def _plan_dumping_bp(setup: BuildSetup, id: str, extra: str = "") -> None:
    name = id.split("/")[-1]
    setup.bp(id, f'cat "$CNB_BP_PLAN_PATH" > plan-{name}.toml\necho "$3" > plan-arg-{name}.txt\n{extra}')


def _plan_seen(setup: BuildSetup, name: str) -> BuildpackPlan:
    return BuildpackPlan.parse(setup.app(f"plan-{name}.toml").read_text())


def test_buildpack_plan_holds_only_its_entries_and_met_ones_are_withheld(setup: BuildSetup) -> None:
    """Item 22: a buildpack sees the requires of entries it provides (each require, also repeated names); entries it
    did not list as unmet are withheld from later providers."""
    _plan_dumping_bp(setup, "t/a")
    _plan_dumping_bp(setup, "t/b")
    plan = plan_of(
        ("node", ["t/a", "t/b"], [{"version": "18"}, {"version": "18.x", "launch": True}]),
        ("npm", ["t/b"], [{}]),
        ("other", ["t/x"], [{}]),
    )
    result = setup.run("t/a", "t/b", plan=plan)
    seen_a = _plan_seen(setup, "a")
    assert [(e.name, e.metadata) for e in seen_a.entries] == [
        ("node", {"version": "18"}),
        ("node", {"version": "18.x", "launch": True}),
    ]
    assert _plan_seen(setup, "b").names == ("npm",)
    assert result.buildpacks[0].met == ("node",)
    assert setup.app("plan-arg-a.txt").read_text().strip().endswith("t_a/plan.toml")


def test_unmet_entries_go_to_the_next_provider(setup: BuildSetup) -> None:
    """Item 22: an entry listed in build.toml [[unmet]] stays in the plan for the next provider."""
    _plan_dumping_bp(setup, "t/a", """printf '[[unmet]]\\nname = "node"\\n' > "$CNB_LAYERS_DIR/build.toml\"""")
    _plan_dumping_bp(setup, "t/b")
    plan = plan_of(("node", ["t/a", "t/b"], [{}]), ("yarn", ["t/a", "t/b"], [{}]))
    result = setup.run("t/a", "t/b", plan=plan)
    assert _plan_seen(setup, "a").names == ("node", "yarn")
    assert _plan_seen(setup, "b").names == ("node",)
    assert result.buildpacks[0].met == ("yarn",)


def test_unmet_name_not_in_plan_fails_the_build(setup: BuildSetup) -> None:
    """Item 23: an unmet.name that is not in the buildpack's plan fails the build (52)."""
    setup.bp("t/a", """printf '[[unmet]]\\nname = "ghost"\\n' > "$CNB_LAYERS_DIR/build.toml\"""")
    with pytest.raises(PhaseError) as info:
        setup.run("t/a", plan=plan_of(("node", ["t/a"], [{}])))
    assert info.value.exit_code == 52
    assert "'ghost'" in info.value.message and "t/a@0.0.1" in info.value.message


# --- items 24, 25: layer tomls --------------------------------------------------------------------------------


def test_types_outside_types_table_fail_the_build(setup: BuildSetup) -> None:
    """Item 24: launch/build/cache at the top level of a layer toml fails the build, naming the file and key."""
    setup.bp("t/a", 'mkdir "$1/bad"\nprintf "launch = true\\n" > "$1/bad.toml"')
    with pytest.raises(PhaseError) as info:
        setup.run("t/a")
    assert info.value.exit_code == 52
    assert str(setup.layers("t_a", "bad.toml")) in info.value.message
    assert "'launch'" in info.value.message and "[types]" in info.value.message


def test_unused_layers_are_set_aside(setup: BuildSetup) -> None:
    """Item 25: layers with all types false (also no [types] at all) are renamed <layer>.ignore; others stay."""
    body = "\n".join(
        [
            layer_toml("unused"),
            'touch "$1/unused/file"',
            'mkdir "$1/notypes"\nprintf "[metadata]\\nx = 1\\n" > "$1/notypes.toml"',
            layer_toml("kept", launch=True),
            layer_toml("cached", cache=True),
        ]
    )
    setup.bp("t/a", body)
    result = setup.run("t/a")
    assert setup.layers("t_a", "unused.ignore", "file").exists()
    assert not setup.layers("t_a", "unused").exists()
    assert setup.layers("t_a", "notypes.ignore").is_dir()
    assert setup.layers("t_a", "kept").is_dir() and setup.layers("t_a", "cached").is_dir()
    layers = {x.name: x for x in result.buildpacks[0].layers}
    assert sorted(layers) == ["cached", "kept", "notypes", "unused"]
    assert layers["unused"].ignored and not layers["kept"].ignored
    assert layers["kept"].types.launch and layers["cached"].types.cache
    assert layers["notypes"].toml.metadata == {"x": 1}


def test_reserved_layer_names_fail_the_build(setup: BuildSetup) -> None:
    """§3.3: layer names build, launch and store are forbidden."""
    setup.bp("t/a", 'mkdir "$1/store"')
    with pytest.raises(PhaseError) as info:
        setup.run("t/a")
    assert info.value.exit_code == 52 and "'store' is reserved" in info.value.message


def test_layer_toml_symlink_out_of_layers_is_refused(setup: BuildSetup, tmp_path: Path) -> None:
    """The lifecycle reads buildpack output on the host: a symlink to a host file is not followed."""
    secret = tmp_path / "host-secret.toml"
    secret.write_text("[types]\nlaunch = true\n")
    setup.bp("t/a", f'ln -s "{secret}" "$1/sneaky.toml"')
    with pytest.raises(PhaseError) as info:
        setup.run("t/a")
    assert info.value.exit_code == 52 and "leads outside" in info.value.message


# --- items 28, 29: processes ----------------------------------------------------------------------------------

WEB_DEFAULT = """
[[processes]]
type = "web"
command = ["web-a"]
default = true
[[processes]]
type = "worker"
command = ["worker-a", "x"]
args = ["--a"]
"""


def test_processes_merge_by_type_later_wins(setup: BuildSetup) -> None:
    """Item 28: process types merge across buildpacks, later wins; the default survives a default redefinition."""
    setup.bp("t/a", launch_toml(WEB_DEFAULT))
    setup.bp("t/b", launch_toml('[[processes]]\ntype = "worker"\ncommand = ["worker-b"]'))
    result = setup.run("t/a", "t/b")
    procs = {p.type: p for p in result.metadata.processes}
    assert procs["worker"].command == ("worker-b",) and procs["worker"].buildpack_id == "t/b"
    assert procs["web"].command == ("web-a",) and procs["web"].buildpack_id == "t/a"
    assert result.metadata.default_process_type == "web"
    assert not setup.reporter.warnings


def test_last_default_wins(setup: BuildSetup) -> None:
    """Item 28: the last process declared default = true wins."""
    setup.bp("t/a", launch_toml(WEB_DEFAULT))
    setup.bp("t/b", launch_toml('[[processes]]\ntype = "other"\ncommand = ["o"]\ndefault = true'))
    result = setup.run("t/a", "t/b")
    assert result.metadata.default_process_type == "other"


def test_non_default_redefinition_clears_the_default(setup: BuildSetup) -> None:
    """Item 28: a later non-default redefinition of the default type clears the default, with a warning."""
    setup.bp("t/a", launch_toml(WEB_DEFAULT))
    setup.bp("t/b", launch_toml('[[processes]]\ntype = "web"\ncommand = ["web-b"]'))
    result = setup.run("t/a", "t/b")
    assert result.metadata.default_process_type == ""
    assert "buildpack-default-process-type" not in setup.metadata_toml()
    assert any("'web'" in w and "default" in w for w in setup.reporter.warnings)


def test_two_defaults_in_one_launch_toml_fail(setup: BuildSetup) -> None:
    """Item 28: two defaults in one launch.toml fail the build."""
    two = '[[processes]]\ntype = "a"\ncommand = ["a"]\ndefault = true\n'
    two += '[[processes]]\ntype = "b"\ncommand = ["b"]\ndefault = true'
    setup.bp("t/a", launch_toml(two))
    with pytest.raises(PhaseError) as info:
        setup.run("t/a")
    assert info.value.exit_code == 52 and "launch.toml" in info.value.message and "default" in info.value.message


@pytest.mark.parametrize(
    ("api", "text", "key"),
    [
        ("0.9", '[[processes]]\ntype = "web"\ncommand = ["x"]\ndirect = true', "direct"),
        ("0.12", '[[processes]]\ntype = "web"\ncommand = ["x"]\ndirect = false', "direct"),
        ("0.10", '[[processes]]\ntype = "web"\ncommand = "x y"', "command"),
    ],
)
def test_direct_or_string_command_fail_with_api_0_9_and_later(setup: BuildSetup, api: str, text: str, key: str) -> None:
    """Item 29: Buildpack API >= 0.9 launch.toml with `direct` fails; `command` must be an array."""
    setup.bp("t/a", launch_toml(text), api=api)
    with pytest.raises(PhaseError) as info:
        setup.run("t/a")
    assert info.value.exit_code == 52
    assert f"'processes[0].{key}'" in info.value.message and "launch.toml" in info.value.message


# --- item 30: metadata.toml -----------------------------------------------------------------------------------


def test_metadata_toml(setup: BuildSetup) -> None:
    """Item 30: buildpacks (id, version, api, homepage), processes sorted by type with buildpack-id, slices, labels
    (later wins) and buildpack-default-process-type."""
    setup.bp(
        "t/a",
        launch_toml(
            '[[labels]]\nkey = "l1"\nvalue = "a"\n[[labels]]\nkey = "l2"\nvalue = "a"\n'
            '[[processes]]\ntype = "zeta"\ncommand = ["z"]\nworking-dir = "/workspace/sub"\n'
            '[[processes]]\ntype = "alpha"\ncommand = ["a", "b"]\nargs = ["c"]\ndefault = true\n'
            '[[slices]]\npaths = ["static/*"]'
        ),
        homepage="https://a.example",
    )
    setup.bp(
        "t/b",
        launch_toml('[[labels]]\nkey = "l1"\nvalue = "b"\n[[slices]]\npaths = ["*.css", "x"]'),
        api="0.10",
    )
    setup.run("t/a", "t/b")
    raw = setup.metadata_toml()
    assert raw["buildpacks"] == [
        {"id": "t/a", "version": "0.0.1", "api": "0.12", "homepage": "https://a.example"},
        {"id": "t/b", "version": "0.0.1", "api": "0.10"},
    ]
    assert [p["type"] for p in raw["processes"]] == ["alpha", "zeta"]
    assert raw["processes"][0] == {
        "type": "alpha",
        "command": ["a", "b"],
        "args": ["c"],
        "direct": True,
        "buildpack-id": "t/a",
    }
    assert raw["processes"][1]["working-dir"] == "/workspace/sub"
    assert "default" not in raw["processes"][0]
    assert raw["slices"] == [{"paths": ["static/*"]}, {"paths": ["*.css", "x"]}]
    assert {label["key"]: label["value"] for label in raw["labels"]} == {"l1": "b", "l2": "a"}
    assert len(raw["labels"]) == 2
    assert raw["buildpack-default-process-type"] == "alpha"
    assert BuildMetadata.load(setup.layers("config", "metadata.toml")).process("zeta") is not None


def test_metadata_for_platform_api_before_0_10_has_one_command_entry(setup: BuildSetup) -> None:
    """§5.3: Platform < 0.10 has a single command; extra command entries move to the front of args."""
    setup.bp("t/a", launch_toml('[[processes]]\ntype = "web"\ncommand = ["a", "b"]\nargs = ["c"]'))
    result = setup.run("t/a", platform_api="0.9")
    web = result.metadata.process("web")
    assert web is not None and web.command == ("a",) and web.args == ("b", "c")


def test_stale_metadata_is_removed_when_the_build_fails(setup: BuildSetup) -> None:
    setup.layers("config").mkdir()
    setup.layers("config", "metadata.toml").write_text("stale = true\n")
    setup.bp("t/a", "exit 1")
    with pytest.raises(PhaseError):
        setup.run("t/a")
    assert not setup.layers("config", "metadata.toml").exists()


# --- items 31, 32: SBOM files ---------------------------------------------------------------------------------

SBOM_ALL = 'sbom-formats = ["application/vnd.cyclonedx+json", "application/spdx+json; version=2.3"]'


def test_sbom_with_unsupported_extension_fails(setup: BuildSetup) -> None:
    """Item 31: an SBOM file with an unsupported extension fails the build."""
    setup.bp("t/a", 'echo "{}" > "$1/launch.sbom.xml.json"', toml_extra=SBOM_ALL)
    with pytest.raises(PhaseError) as info:
        setup.run("t/a")
    assert info.value.exit_code == 52 and "launch.sbom.xml.json" in info.value.message
    assert "xml.json" in info.value.message


def test_sbom_media_type_not_in_sbom_formats_fails(setup: BuildSetup) -> None:
    """Item 31: an SBOM whose media type is not in sbom-formats fails the build."""
    setup.bp("t/a", 'echo "{}" > "$1/launch.sbom.syft.json"', toml_extra=SBOM_ALL)
    with pytest.raises(PhaseError) as info:
        setup.run("t/a")
    assert info.value.exit_code == 52
    assert "application/vnd.syft+json" in info.value.message and "sbom-formats" in info.value.message


def test_sbom_files_are_relocated(setup: BuildSetup) -> None:
    """Item 32: SBOMs go to <layers>/sbom/{launch,build,cache}/<bp>/[<layer>/]sbom.<ext>; the old sbom dir is gone."""
    stale = setup.layers("sbom", "launch", "old")
    stale.mkdir(parents=True)
    (stale / "sbom.cdx.json").write_text("old")
    body = "\n".join(
        [
            layer_toml("run", launch=True, cache=True),
            layer_toml("tools", build=True),
            'echo \'{"l":"run"}\' > "$1/run.sbom.cdx.json"',
            'echo \'{"l":"tools"}\' > "$1/tools.sbom.spdx.json"',
            'echo \'{"l":"launch"}\' > "$1/launch.sbom.cdx.json"',
            'echo \'{"l":"build"}\' > "$1/build.sbom.spdx.json"',
            'echo \'{"l":"nolayer"}\' > "$1/nolayer.sbom.cdx.json"',
        ]
    )
    setup.bp("org/sb", body, toml_extra=SBOM_ALL)
    result = setup.run("org/sb")
    sbom = setup.layers("sbom")

    def content(*parts: str) -> str:
        return str(json.loads(sbom.joinpath(*parts).read_text())["l"])

    assert content("launch", "org_sb", "run", "sbom.cdx.json") == "run"
    assert content("cache", "org_sb", "run", "sbom.cdx.json") == "run"
    assert content("build", "org_sb", "tools", "sbom.spdx.json") == "tools"
    assert content("launch", "org_sb", "sbom.cdx.json") == "launch"
    assert content("build", "org_sb", "sbom.spdx.json") == "build"
    assert not (sbom / "launch" / "old").exists()
    assert not list(sbom.rglob("*nolayer*")) and not (sbom / "launch" / "org_sb" / "nolayer").exists()
    assert any("nolayer" in w for w in setup.reporter.warnings)
    assert len(result.sbom_paths) == 5
    assert json.loads((sbom / "launch" / "sbom.legacy.json").read_text()) == []


def test_sbom_symlink_to_a_host_file_is_not_copied(setup: BuildSetup, tmp_path: Path) -> None:
    """Item 32 + DESIGN §3 decision 1: an SBOM that is a symlink out of the layers dir never reaches the image."""
    secret = tmp_path / "credentials.json"
    secret.write_text('{"auth": "secret"}')
    setup.bp("t/a", f'ln -s "{secret}" "$1/launch.sbom.cdx.json"', toml_extra=SBOM_ALL)
    with pytest.raises(PhaseError) as info:
        setup.run("t/a")
    assert info.value.exit_code == 52 and "leads outside" in info.value.message
    assert not setup.layers("sbom", "launch").exists()


def test_no_sbom_copy_before_platform_0_8(setup: BuildSetup) -> None:
    """§3.10: SBOM files are copied for Platform API >= 0.8 only."""
    setup.bp("t/a", 'echo "{}" > "$1/launch.sbom.cdx.json"', toml_extra=SBOM_ALL)
    setup.run("t/a", platform_api="0.7")
    assert not setup.layers("sbom").exists()


def test_legacy_bom_is_written_for_platform_0_9(setup: BuildSetup) -> None:
    """§3.7: Platform >= 0.9 writes the deprecated [[bom]] entries to sbom.legacy.json."""
    setup.bp("t/a", launch_toml('[[bom]]\nname = "dep"\n[bom.metadata]\nversion = "1.2"'))
    setup.run("t/a")
    data = json.loads(setup.layers("sbom", "launch", "sbom.legacy.json").read_text())
    assert data == [{"name": "dep", "metadata": {"version": "1.2"}, "buildpack": {"id": "t/a", "version": "0.0.1"}}]
    assert any("deprecated" in w for w in setup.reporter.warnings)


# --- API versions ---------------------------------------------------------------------------------------------


def test_buildpack_apis_0_7_to_0_12_in_one_group(setup: BuildSetup) -> None:
    """Buildpack APIs 0.7, 0.8, 0.9 and 0.12 build in one group: string commands and `direct` before 0.9,
    `working-dir` only from 0.8, CNB_* inputs from 0.8."""
    dump = 'env | grep "^CNB_" | sort > env-{0}.txt\n'
    setup.bp(
        "t/v07",
        dump.format("v07")
        + launch_toml('[[processes]]\ntype = "old"\ncommand = "echo old"\ndirect = false\nworking-dir = "/x"'),
        api="0.7",
    )
    setup.bp(
        "t/v08",
        dump.format("v08")
        + launch_toml('[[processes]]\ntype = "direct"\ncommand = "run"\ndirect = true\nworking-dir = "/w"'),
        api="0.8",
    )
    setup.bp("t/v09", dump.format("v09") + launch_toml('[[processes]]\ntype = "new"\ncommand = ["a", "b"]'), api="0.9")
    setup.bp("t/v12", dump.format("v12") + launch_toml('[[processes]]\ntype = "newest"\ncommand = ["z"]'))
    result = setup.run("t/v07", "t/v08", "t/v09", "t/v12")
    procs = {p.type: p for p in result.metadata.processes}
    assert procs["old"].command == ("echo old",) and procs["old"].direct is False
    assert procs["old"].working_dir == ""  # working-dir needs 0.8
    assert any("working-dir" in w for w in setup.reporter.warnings)
    assert procs["direct"].direct is True and procs["direct"].working_dir == "/w"
    assert procs["new"].command == ("a", "b") and procs["new"].direct is True
    names = {v: {line.split("=")[0] for line in setup.app(f"env-{v}.txt").read_text().splitlines()} for v in
             ("v07", "v08", "v09", "v12")}  # fmt: skip
    assert names["v07"] == {"CNB_BUILDPACK_DIR"}
    assert names["v08"] == {"CNB_BUILDPACK_DIR", "CNB_LAYERS_DIR", "CNB_PLATFORM_DIR", "CNB_BP_PLAN_PATH"}
    assert names["v09"] == names["v08"]
    assert names["v12"] == names["v08"] | {"CNB_TARGET_OS", "CNB_TARGET_ARCH", "CNB_TARGET_DISTRO_NAME",
                                           "CNB_TARGET_DISTRO_VERSION", "CNB_EXEC_ENV"}  # fmt: skip
    assert [b.api for b in result.metadata.buildpacks] == ["0.7", "0.8", "0.9", "0.12"]


def test_timing_is_the_time_inside_bin_build(setup: BuildSetup) -> None:
    setup.bp("t/slow", "sleep 0.3")
    setup.bp("t/fast", "true")
    result = setup.run("t/slow", "t/fast")
    slow, fast = result.buildpacks
    assert slow.duration >= 0.3  # a lower bound bin/build guarantees, not a wall-clock limit (timings: bench/)
    assert fast.duration >= 0
    assert result.buildpack_time == pytest.approx(slow.duration + fast.duration)


def test_planted_symlinks_are_not_written_through(setup: BuildSetup, tmp_path: Path) -> None:
    """The lifecycle writes metadata.toml and SBOMs on the host: a buildpack's symlink at <layers>/config or
    <layers>/sbom must not redirect those writes outside the layers dir."""
    outside = tmp_path / "outside"
    outside.mkdir()
    setup.bp(
        "t/a",
        f'ln -s "{outside}" "$1/../config"\nln -s "{outside}" "$1/../sbom"\necho "{{}}" > "$1/launch.sbom.cdx.json"',
        toml_extra=SBOM_ALL,
    )
    setup.run("t/a")
    assert list(outside.iterdir()) == []
    assert setup.layers("config").is_dir() and not setup.layers("config").is_symlink()
    assert setup.layers("config", "metadata.toml").is_file()
    assert setup.layers("sbom", "launch", "t_a", "sbom.cdx.json").is_file()


def test_buildpack_dir_replaced_by_a_symlink_fails(setup: BuildSetup, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.toml").write_text("[types]\nlaunch = true\n")
    setup.bp("t/a", f'cd /\nrm -rf "$1"\nln -s "{outside}" "$1"')
    with pytest.raises(PhaseError) as info:
        setup.run("t/a")
    assert info.value.exit_code == 52 and "no longer a directory" in info.value.message
