"""Compiling launch environments at export time (docs/spec-notes.md §9.1, §9.2, §3.8, §3.11, §3.12; docs/design.md §3
decision 3)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnbplatform.buildpack.envdir import apply_env_ops, read_env_dir
from cnbplatform.files.metadata import BuildMetadata, BuildpackRef, ProcessEntry
from cnbplatform.launcher import (
    LaunchBuildpack,
    LaunchCompileError,
    LaunchLayer,
    LaunchProcess,
    compile_launch_env,
    has_exec_d,
    launch_processes,
    static_launch_env,
    write_launch_env,
)
from tests.launcher.fakeimage import SHELLS, FakeImage, process


def one_layer(tmp_path: Path, name: str = "l", bp: str = "bp/a") -> tuple[Path, LaunchBuildpack]:
    layer = tmp_path / "layers" / bp.replace("/", "_") / name
    layer.mkdir(parents=True)
    return layer, LaunchBuildpack(bp, (LaunchLayer(name, layer),))


def compiled(
    buildpacks: list[LaunchBuildpack], *processes: LaunchProcess, **kw: object
) -> tuple[dict[str, bytes], list[str]]:
    warnings: list[str] = []
    files = compile_launch_env(buildpacks, processes, warn=warnings.append, **kw)  # type: ignore[arg-type]
    return files, warnings


def line(files: dict[str, bytes], name: str, key: bytes) -> bytes:
    """The value text of ``key=...`` in compiled file *name*."""
    for raw in files[name].splitlines():
        if raw.startswith(key + b"="):
            return raw[len(key) + 1 :]
    raise AssertionError(f"{key!r} not in {name}")


def test_one_file_per_process_type_plus_direct(tmp_path: Path) -> None:
    """§9.1: a compiled file for each process type, and one for user-provided commands."""
    _, bp = one_layer(tmp_path)
    files, _ = compiled([bp], process("web", "a"), process("worker.v2", "b"))
    assert sorted(files) == ["direct.sh", "process/web.sh", "process/worker.v2.sh"]


@pytest.mark.parametrize("bad", ["a/b", "..", ".", "", "sp ace", "x;y"])
def test_process_type_must_be_a_safe_name(tmp_path: Path, bad: str) -> None:
    """§3.5: process types are letters, digits, '.', '_' and '-'; anything else is an export error."""
    with pytest.raises(LaunchCompileError, match="process type"):
        compiled([], process(bad, "cmd"))


def test_empty_command_or_nul_argument_is_an_error() -> None:
    """A command must have an executable; NUL cannot be in an argument."""
    with pytest.raises(LaunchCompileError, match="empty"):
        compiled([], LaunchProcess("web", ()))
    with pytest.raises(LaunchCompileError, match="NUL"):
        compiled([], process("web", "echo", args=("a\0b",)))
    with pytest.raises(LaunchCompileError, match="bp/x"):
        compiled([], process("web", "echo", buildpack_api="zero", buildpack_id="bp/x"))


@pytest.mark.parametrize(
    ("platform", "api", "command", "expected"),
    [
        ("0.15", "0.12", ("cmd",), b"replace"),
        ("0.15", "0.9", ("cmd",), b"replace"),
        ("0.15", "0.8", ("cmd",), b"append"),
        ("0.15", "0.8", ("cmd", "fixed"), b"replace"),
        ("0.9", "0.12", ("cmd",), b"append"),
    ],
)
def test_user_args_policy(platform: str, api: str, command: tuple[str, ...], expected: bytes) -> None:
    """§9.1: user args replace process args (API >= 0.9 or array command), else are appended (or Platform < 0.10)."""
    files, _ = compiled([], LaunchProcess("web", command, buildpack_api=api), platform_api=platform)
    assert line(files, "process/web.sh", b"_cnb_user_args") == expected


@pytest.mark.parametrize(
    ("working_dir", "expected"), [("", b"'/app'"), ("sub/dir", b"'/app/sub/dir'"), ("/srv", b"'/srv'")]
)
def test_working_dir(working_dir: str, expected: bytes) -> None:
    """§9.2 step 5: working-dir, relative to the app dir, defaulting to it."""
    files, _ = compiled([], process("web", "cmd", working_dir=working_dir), app_dir="/app")
    assert line(files, "process/web.sh", b"_cnb_workdir") == expected


def test_values_that_sh_cannot_hold_are_skipped_with_a_warning(tmp_path: Path) -> None:
    """§3.8: NUL cannot be in an environment; names sh cannot export are skipped (both warned about)."""
    layer, bp = one_layer(tmp_path)
    (layer / "env").mkdir()
    (layer / "env" / "HAS_NUL").write_bytes(b"a\0b")
    (layer / "env" / "BAD-NAME").write_bytes(b"x")
    (layer / "env" / "_cnb_direct").write_bytes(b"x")
    (layer / "env" / "GOOD").write_bytes(b"ok")
    files, warnings = compiled([bp], process("web", "cmd"), process("worker", "cmd"))
    assert len(warnings) == 3  # once each, not once per process type
    assert any("HAS_NUL" in w and "NUL" in w for w in warnings)
    text = files["process/web.sh"]
    assert b"GOOD='ok'" in text
    assert b"HAS_NUL" not in text and b"BAD-NAME" not in text and b"_cnb_direct=x" not in text


def test_bin_and_lib_only_when_present_and_env_build_ignored(tmp_path: Path) -> None:
    """§9.2 step 3: <layer>/bin and <layer>/lib are added only if they exist; env.build/ is never read."""
    with_bin, bp = one_layer(tmp_path, "a")
    (with_bin / "bin").mkdir()
    without = tmp_path / "layers" / "bp_a" / "b"
    (without / "env.build").mkdir(parents=True)
    (without / "env.build" / "BUILD_ONLY").write_bytes(b"1")
    bp = LaunchBuildpack("bp/a", (*bp.layers, LaunchLayer("b", without)))
    files, _ = compiled([bp], layers_dir="/L")
    text = files["direct.sh"]
    assert b"'/L/bp_a/a/bin'" in text
    assert b"/L/bp_a/b/bin" not in text and b"LD_LIBRARY_PATH" not in text and b"BUILD_ONLY" not in text


def test_exec_d_and_profile_d_order(tmp_path: Path) -> None:
    """§9.2 item 8: per buildpack, per layer (by name): exec.d/* then exec.d/<type>/*; same for profile.d."""
    a = tmp_path / "a"
    b = tmp_path / "b"
    for path in ("exec.d/2", "exec.d/1", "exec.d/web/w", "exec.d/other/o", "profile.d/p.sh", "profile.d/web/q.sh"):
        (a / path).parent.mkdir(parents=True, exist_ok=True)
        (a / path).write_text("")
    (b / "exec.d").mkdir(parents=True)
    (b / "exec.d" / "link").symlink_to("/nowhere")
    (b / "exec.d" / "subdir").mkdir()
    bp = LaunchBuildpack("bp", (LaunchLayer("zz", b), LaunchLayer("aa", a)))
    files, _ = compiled([bp], process("web", "cmd"), layers_dir="/L")
    text = files["process/web.sh"]
    order = [ln.split(b"'")[1] for ln in text.splitlines() if ln.startswith(b"\t_cnb_x ")]
    assert order == [b"/L/bp/aa/exec.d/1", b"/L/bp/aa/exec.d/2", b"/L/bp/aa/exec.d/web/w", b"/L/bp/zz/exec.d/link"]
    profiles = text[text.index(b"_cnb_profiles=") : text.index(b"_cnb_env()")]  # one multi-line sh word
    assert profiles.index(b"/L/bp/aa/profile.d/p.sh") < profiles.index(b"/L/bp/aa/profile.d/web/q.sh")
    assert b"web/q.sh" not in files["direct.sh"]


def test_launch_processes_take_the_api_of_their_buildpack() -> None:
    """§9.1: the arg rules depend on the API of the buildpack that declared the process."""
    md = BuildMetadata(
        buildpacks=(BuildpackRef("old", "1", api="0.8"), BuildpackRef("new", "1", api="0.12")),
        processes=(
            ProcessEntry("a", ("x",), buildpack_id="old", direct=False),
            ProcessEntry("b", ("y", "z"), args=("q",), buildpack_id="new", working_dir="/w", exec_env=("test",)),
        ),
    )
    old, new = launch_processes(md)
    assert (old.type, old.buildpack_api, old.direct) == ("a", "0.8", False)
    assert (new.command, new.args, new.buildpack_api, new.working_dir, new.exec_env) == (
        ("y", "z"),
        ("q",),
        "0.12",
        "/w",
        ("test",),
    )


def test_write_launch_env_replaces_stale_files(tmp_path: Path) -> None:
    """Compiled files of a previous export (a removed process type) do not survive."""
    write_launch_env(tmp_path, {"process/old.sh": b"x", "direct.sh": b"y"})
    target = write_launch_env(tmp_path, {"direct.sh": b"z"})
    assert target == tmp_path / "config" / "launch"
    assert sorted(p.name for p in target.rglob("*") if p.is_file()) == ["direct.sh"]
    assert (target / "direct.sh").read_bytes() == b"z"


# --- the compiled shell code means what buildpack/envdir.py means (§3.8) ---

SUFFIXES = ["", ".override", ".default", ".prepend", ".append", ".delim", ".", ".bogus"]
VALUES = st.binary(max_size=5).map(lambda b: b.replace(b"\0", b"")) | st.sampled_from([b"", b"'", b"a\n", b":"])
LAYER = st.dictionaries(st.sampled_from(SUFFIXES), VALUES, max_size=4)


@settings(max_examples=60, deadline=None)
@given(
    layers=st.lists(LAYER, min_size=1, max_size=4),
    initial=st.none() | st.text(alphabet="ab:' \n", max_size=4),
    shell=st.sampled_from(sorted(SHELLS)),
)
def test_compiled_env_matches_the_reference_semantics(
    layers: list[dict[str, bytes]], initial: str | None, shell: str
) -> None:
    """§3.8, §16 item 64: for any sequence of env files, the sh launcher ends with the value EnvOp.apply gives."""
    with tempfile.TemporaryDirectory() as tmp:
        image = FakeImage(Path(tmp), SHELLS[shell])
        expected: dict[str, str] = {} if initial is None else {"V": initial}
        for index, files in enumerate(layers):
            env_dir = image.layer("bp/a", f"l{index}") / "env"
            env_dir.mkdir()
            for suffix, value in files.items():
                (env_dir / f"V{suffix}").write_bytes(value)
            apply_env_ops(expected, read_env_dir(env_dir))
        image.export(process("dump", "env", "-0"))
        env = image.base_env() if initial is None else image.base_env(V=initial)
        actual = image.env_of("dump", env=env)
        assert actual.get(b"V") == (os.fsencode(expected["V"]) if "V" in expected else None)


def test_static_env_equals_what_the_sh_launcher_builds(image: FakeImage) -> None:
    """docs/design.md §3 decision 3 (no /bin/sh): the precomputed env of a process is the launcher's (§9.2 steps 1, 3)."""
    (image.layer("bp/a", "l") / "bin").mkdir()
    (image.layer("bp/b", "m") / "lib").mkdir()
    image.env_file("bp/a", "l", "env/A.append", "a\n'")
    image.env_file("bp/a", "l", "env/A.delim", ":")
    image.env_file("bp/b", "m", "env.launch/web/B.default", "typed")
    image.env_file("bp/b", "m", "env.build/C", "build only")
    image.export(process("web", "env", "-0"))
    buildpacks = [
        LaunchBuildpack(bp, (LaunchLayer(name, image.layer(bp, name)),)) for bp, name in (("bp/a", "l"), ("bp/b", "m"))
    ]
    base = image.base_env(A="start", CNB_PROCESS_TYPE="x")
    for entry, process_type, args in (("web", "web", ()), ("launcher", "", ("--", "env", "-0"))):
        expected = static_launch_env(buildpacks, process_type, base, layers_dir=str(image.layers))
        actual = image.env_of(entry, *args, env=base)
        assert actual.pop(b"PWD") == os.fsencode(image.app)  # set by the shell's cd, as in any shell
        actual.pop(b"SHLVL", None)  # busybox ash exports it, as bash does
        assert actual == {os.fsencode(k): os.fsencode(v) for k, v in expected.items()}
        assert expected["A"] == "start:a\n'"
    assert not has_exec_d(buildpacks, "web")
    image.script("bp/b", "m", "exec.d/web/x", "")
    assert has_exec_d(buildpacks, "web") and not has_exec_d(buildpacks, "")
