"""The sh launcher run by real shells (dash and busybox sh) against a fake image (docs/spec-notes.md §9, §3.8, §3.11,
§3.12; checklist §16 items 61-67)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cnbplatform.launcher import (
    LAUNCHER_SCRIPT,
    LaunchBuildpack,
    LaunchLayer,
    compile_launch_env,
    launch,
    write_launch_env,
)
from cnbplatform.launcher import script as launcher_module
from tests.launcher.fakeimage import BASE_PATH, SHELLS, FakeImage, parse_env0, process

ENV0 = ("env", "-0")
PRINT = ("printf", "[%s]")


# --- §9.1 process selection and arguments ---


def test_argv0_symlink_selects_the_process_type(image: FakeImage) -> None:
    """§16 item 61: argv0 /cnb/process/<type> runs that process (and not another one)."""
    image.export(process("web", "echo", args=("web",)), process("worker", "echo", args=("worker",)))
    assert image.run("web").stdout == b"web\n"
    assert image.run("worker").stdout == b"worker\n"


def test_user_args_replace_process_args_for_buildpack_api_0_9_and_later(image: FakeImage) -> None:
    """§16 item 61: extra args replace ``args`` (buildpack API 0.12); no extra args keep them."""
    image.export(process("web", *PRINT, args=("a", "b"), buildpack_api="0.12"))
    assert image.run("web").stdout == b"[a][b]"
    assert image.run("web", "x y", "$HOME").stdout == b"[x y][$HOME]"


def test_user_args_are_appended_for_buildpack_api_below_0_9(image: FakeImage) -> None:
    """§9.1: a buildpack API 0.8 process gets user args after its own args."""
    image.export(process("web", "printf", args=("[%s]", "a"), buildpack_api="0.8"))
    assert image.run("web", "b").stdout == b"[a][b]"


def test_array_command_keeps_its_fixed_args(image: FakeImage) -> None:
    """§9.1: command[1:] always stays; user args (if any) take the place of ``args``."""
    image.export(process("web", *PRINT, "fixed", args=("dflt",)))
    assert image.run("web").stdout == b"[fixed][dflt]"
    assert image.run("web", "u1", "u2").stdout == b"[fixed][u1][u2]"


def test_platform_below_0_10_always_appends(image: FakeImage) -> None:
    """§9.1: for Platform < 0.10 user args are appended even for buildpack API 0.12."""
    image.export(process("web", "printf", args=("[%s]", "a")), platform_api="0.9")
    assert image.run("web", "b").stdout == b"[a][b]"


def test_launcher_double_dash_execs_directly_without_profiles(image: FakeImage) -> None:
    """§16 item 62: ``launcher -- cmd a b`` execs cmd directly: no profile.d, no .profile, args untouched."""
    image.file(image.layer("bp/a", "l") / "profile.d" / "p.sh", "export PROF=sourced\n")
    image.file(image.app / ".profile", "export APPPROF=sourced\n")
    image.export()
    result = image.run("launcher", "--", "sh", "-c", 'printf "%s|%s|%s" "${PROF-unset}" "${APPPROF-unset}" "$0"', "$X")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"unset|unset|$X"


def test_launcher_command_runs_in_a_shell_with_profiles(image: FakeImage) -> None:
    """§16 item 62: ``launcher 'cmd'`` runs via a shell that sourced profile.d and <app>/.profile, in order."""
    image.file(image.layer("bp/a", "l") / "profile.d" / "p.sh", "export ORDER=profile.d\n")
    image.file(image.app / ".profile", 'export ORDER="$ORDER,.profile"\n')
    image.export()
    result = image.run("launcher", 'echo "$ORDER"; exit 3')
    assert (result.returncode, result.stdout) == (3, b"profile.d,.profile\n")


def test_launcher_command_with_args_expands_each_token(image: FakeImage) -> None:
    """§9.2 step 7: with args, each token is expanded (variables) but not split, then run."""
    image.file(image.layer("bp/a", "l") / "profile.d" / "p.sh", "export GREETING='hello world'\n")
    image.export()
    result = image.run("launcher", "printf", "[%s]", "$GREETING", "b c")
    assert result.stdout == b"[hello world][b c]"


def test_app_profile_that_is_a_directory_is_not_sourced(image: FakeImage) -> None:
    """§3.12: <app>/.profile is sourced only if it is a regular file."""
    (image.app / ".profile").mkdir(parents=True)
    image.export()
    result = image.run("launcher", "echo ok")
    assert (result.returncode, result.stdout) == (0, b"ok\n")


def test_shell_process_of_an_old_buildpack_sources_typed_profiles(image: FakeImage) -> None:
    """§3.12 and §9.2 step 7: a direct=false process (API 0.8) sources profile.d and profile.d/<type>."""
    layer = image.layer("bp/a", "l")
    image.file(layer / "profile.d" / "a.sh", "export P=generic\n")
    image.file(layer / "profile.d" / "web" / "b.sh", 'export P="$P+web"\n')
    image.file(layer / "profile.d" / "worker" / "c.sh", 'export P="$P+worker"\n')
    image.export(process("web", 'echo "$P"', direct=False, buildpack_api="0.8"))
    assert image.run("web").stdout == b"generic+web\n"


def test_direct_process_does_not_source_profiles(image: FakeImage) -> None:
    """§9.2 step 6: a direct process never sees profile.d."""
    image.file(image.layer("bp/a", "l") / "profile.d" / "a.sh", "export P=sourced\n")
    image.export(process("web", "sh", "-c", 'echo "${P-unset}"'))
    assert image.run("web").stdout == b"unset\n"


def test_no_command_and_no_default_process_is_82(image: FakeImage) -> None:
    """§9.1: the launcher without args (and without a process argv0) fails with 82."""
    image.export(process("web", "true"))
    result = image.run("launcher")
    assert result.returncode == 82
    assert b"when there is no default process a command is required" in result.stderr
    assert image.run("launcher", "--").returncode == 82


def test_unknown_process_type_is_82(image: FakeImage) -> None:
    """§9.1: /cnb/process/<type> for a type that was not exported fails with 82."""
    image.export(process("web", "true"))
    (image.root / "cnb" / "process" / "nope").symlink_to("../lifecycle/launcher")
    result = image.run("nope")
    assert result.returncode == 82
    assert b"process type nope was not found" in result.stderr


def test_process_not_eligible_for_the_exec_env_is_not_found(image: FakeImage) -> None:
    """§9.1 (Platform 0.15): a process whose exec-env excludes CNB_EXEC_ENV (default production) is not found."""
    image.export(process("web", "echo", "ran", exec_env=("test",)))
    assert image.run("web").returncode == 82
    assert image.run("web", env=image.base_env(CNB_EXEC_ENV="test")).stdout == b"ran\n"


def test_missing_executable_is_82(image: FakeImage) -> None:
    """§9.2 step 6: a failed PATH lookup is a launcher error (82)."""
    image.export(process("web", "no-such-command-cnb"))
    result = image.run("web")
    assert result.returncode == 82
    assert b"no-such-command-cnb" in result.stderr


# --- §9.2 environment ---


def test_launcher_variables_are_removed_and_path_is_cleaned(image: FakeImage) -> None:
    """§16 item 63: CNB_LAYERS_DIR, CNB_APP_DIR, CNB_PLATFORM_API, CNB_PROCESS_TYPE (and CNB_DEPRECATION_MODE) are
    absent from the process env; /cnb/process and /cnb/lifecycle leave PATH, other entries keep their order."""
    image.export(process("web", *ENV0))
    env = image.env_of("web", env=image.base_env(CNB_PROCESS_TYPE="web", KEEP="1"))
    for name in (b"CNB_LAYERS_DIR", b"CNB_APP_DIR", b"CNB_PLATFORM_API", b"CNB_PROCESS_TYPE", b"CNB_DEPRECATION_MODE"):
        assert name not in env
    assert env[b"PATH"] == b"/usr/local/bin:/usr/bin:/bin"
    assert env[b"KEEP"] == b"1"


def test_cnb_process_type_warns(image: FakeImage) -> None:
    """§2.9: CNB_PROCESS_TYPE is not honoured, only warned about."""
    image.export(process("web", "echo", "web"), process("worker", "echo", "worker"))
    result = image.run("web", env=image.base_env(CNB_PROCESS_TYPE="worker"))
    assert result.stdout == b"web\n"
    assert b"CNB_PROCESS_TYPE" in result.stderr


def test_layer_bin_and_lib_later_buildpacks_first(image: FakeImage) -> None:
    """§16 item 64: launch layers' bin is on PATH, later buildpacks first (lib likewise on LD_LIBRARY_PATH)."""
    first = image.layer("bp/first", "tools")
    second = image.layer("bp/second", "tools")
    for layer in (first, second):
        (layer / "bin").mkdir()
        (layer / "lib").mkdir()
    image.layer("bp/second", "nobin")
    image.script("bp/first", "tools", "bin/hello", "echo from-first\n")
    image.script("bp/second", "tools", "bin/hello", "echo from-second\n")
    image.export(process("web", *ENV0), process("hello", "hello"))
    env = image.env_of("web", env=image.base_env(LD_LIBRARY_PATH="/usr/lib"))
    assert env[b"PATH"] == f"{second}/bin:{first}/bin:/usr/local/bin:/usr/bin:/bin".encode()
    assert env[b"LD_LIBRARY_PATH"] == f"{second}/lib:{first}/lib:/usr/lib".encode()
    assert image.run("hello").stdout == b"from-second\n"


def test_env_dirs_applied_for_launch_only(image: FakeImage) -> None:
    """§16 item 64: env/, env.launch/ and env.launch/<type>/ apply; env.build/ and other types' dirs do not."""
    image.env_file("bp/a", "l", "env/FROM_ENV", "1")
    image.env_file("bp/a", "l", "env.launch/FROM_LAUNCH", "2")
    image.env_file("bp/a", "l", "env.launch/web/FROM_TYPED", "3")
    image.env_file("bp/a", "l", "env.launch/worker/FROM_OTHER", "4")
    image.env_file("bp/a", "l", "env.build/FROM_BUILD", "5")
    image.export(process("web", *ENV0))
    env = image.env_of("web")
    assert (env[b"FROM_ENV"], env[b"FROM_LAUNCH"], env[b"FROM_TYPED"]) == (b"1", b"2", b"3")
    assert b"FROM_OTHER" not in env and b"FROM_BUILD" not in env
    direct = image.env_of("launcher", "--", *ENV0)
    assert direct[b"FROM_ENV"] == b"1" and b"FROM_TYPED" not in direct


def test_env_file_suffixes(image: FakeImage) -> None:
    """§3.8 / §16 item 64: every suffix, in buildpack and layer order."""
    files = {
        ("bp/a", "l", "env/OVR"): "a",
        ("bp/b", "l", "env/OVR.override"): "b",  # later buildpack wins
        ("bp/a", "l", "env/DFLT.default"): "first",
        ("bp/b", "l", "env/DFLT.default"): "second",  # earlier wins
        ("bp/a", "l", "env/PRE.prepend"): "a",
        ("bp/a", "l", "env/PRE.delim"): ",",
        ("bp/b", "l", "env/PRE.prepend"): "b",
        ("bp/b", "l", "env/PRE.delim"): ";",
        ("bp/a", "l", "env/APP.append"): "a",
        ("bp/a", "l", "env/APP.delim"): ",",
        ("bp/b", "l", "env/APP.append"): "b",  # no APP.delim in this dir: plain concatenation
        ("bp/a", "l", "env/EXISTING.append"): "a",
        ("bp/a", "l", "env/EXISTING.delim"): ",",
        ("bp/a", "l", "env/EMPTY.prepend"): "x",
        ("bp/a", "l", "env/EMPTY.delim"): ":",
        ("bp/a", "l", "env/SETDFLT.default"): "ignored",
        ("bp/a", "l", "env/BLANKDFLT.default"): "used",
        ("bp/a", "l", "env/COLON."): "/p",
        ("bp/a", "l", "env/UNKNOWN.frobnicate"): "x",
    }
    for (bp, layer, rel), value in files.items():
        image.env_file(bp, layer, rel, value)
    image.export(process("web", *ENV0))
    env = image.env_of("web", env=image.base_env(SETDFLT="kept", BLANKDFLT="", EMPTY="", COLON="/q", EXISTING="x"))
    assert env[b"OVR"] == b"b"
    assert env[b"DFLT"] == b"first"
    assert env[b"PRE"] == b"b;a"
    assert env[b"APP"] == b"ab"
    assert env[b"EXISTING"] == b"x,a"
    assert env[b"EMPTY"] == b"x"
    assert env[b"SETDFLT"] == b"kept"
    assert env[b"BLANKDFLT"] == b"used"
    assert env[b"COLON"] == b"/p:/q"
    assert b"UNKNOWN" not in env


def test_values_are_exact_bytes(image: FakeImage) -> None:
    """§3.8: contents verbatim: trailing newline, quotes, $, backticks, backslashes, spaces, non-UTF-8 bytes."""
    value = b'it\'s "q" $HOME `id` $(id) \\n\\\\ \t end\n\xff\n'
    image.env_file("bp/a", "l", "env.launch/TRICKY", value)
    image.env_file("bp/a", "l", "env.launch/APPENDED.append", b"'x'\n")
    image.export(process("web", *ENV0))
    env = image.env_of("web", env=image.base_env(APPENDED="start"))
    assert env[b"TRICKY"] == value
    assert env[b"APPENDED"] == b"start'x'\n"


# --- exec.d (§3.11) ---


def test_exec_d_output_is_applied_before_profiles(image: FakeImage) -> None:
    """§16 item 65: exec.d output via fd 3 is in the process env, and exec.d runs before profile scripts."""
    image.env_file("bp/a", "l", "env.launch/BASE", "base")
    image.script("bp/a", "l", "exec.d/a", 'echo "exec.d stdout"; printf "FROM_EXECD = \\"%s+x\\"\\n" "$BASE" >&3\n')
    image.file(image.layer("bp/a", "l") / "profile.d" / "p.sh", 'export SEEN="profile saw $FROM_EXECD"\n')
    image.export(process("web", *ENV0))
    result = image.run("launcher", 'echo "$SEEN"')
    assert result.stdout == b"exec.d stdout\nprofile saw base+x\n"
    assert image.run("launcher", "--", *ENV0).stdout.count(b"FROM_EXECD=base+x\0") == 1


def test_exec_d_runs_in_order_and_sees_earlier_output(image: FakeImage) -> None:
    """§9.2 step 4: per buildpack, per layer: exec.d/* then exec.d/<type>/*; each sees what earlier ones set."""
    body = 'printf "TRAIL = \\"%s\\"\\n" "${TRAIL-}@" >&3\n'
    image.script("bp/a", "l1", "exec.d/1", body.replace("@", ",a-l1"))
    image.script("bp/a", "l1", "exec.d/web/2", body.replace("@", ",a-l1-web"))
    image.script("bp/a", "l1", "exec.d/worker/x", body.replace("@", ",never"))
    image.script("bp/a", "l2", "exec.d/3", body.replace("@", ",a-l2"))
    image.script("bp/b", "l0", "exec.d/4", body.replace("@", ",b-l0"))
    image.export(process("web", *ENV0))
    assert image.env_of("web")[b"TRAIL"] == b",a-l1,a-l1-web,a-l2,b-l0"
    assert image.env_of("launcher", "--", *ENV0)[b"TRAIL"] == b",a-l1,a-l2,b-l0"


def test_exec_d_toml_strings(image: FakeImage) -> None:
    """§3.11: bare keys, basic strings with escapes, literal strings, comments, blank lines, CRLF."""
    toml = (
        "# comment\r\n"
        "\n"
        'PLAIN = "a b"\r\n'
        '  ESC="q\\"\\\\\\n\\t\\u00e9\\U0001F600" # trailing comment\n'
        "LIT = 'C:\\path'\n"
        'bad-name = "skipped"\n'
    )
    image.script("bp/a", "l", "exec.d/t", f"cat >&3 <<'EOF'\n{toml}EOF\n")
    image.export(process("web", *ENV0))
    result = image.run("web")
    env = parse_env0(result.stdout)
    assert env[b"PLAIN"] == b"a b"
    assert env[b"ESC"] == 'q"\\\n\t\u00e9\U0001f600'.encode()
    assert env[b"LIT"] == b"C:\\path"
    assert b"bad-name" in result.stderr


@pytest.mark.parametrize("output", ['X = "unterminated\n', "X = bare\n", '"quoted" = "x"\n', 'X = "\\q"\n'])
def test_exec_d_bad_toml_is_82(image: FakeImage, output: str) -> None:
    """§3.11: output that is not the TOML subset fails the launch with 82."""
    image.script("bp/a", "l", "exec.d/t", f"printf '%s' '{output}' >&3\n")
    image.export(process("web", "echo", "not reached"))
    result = image.run("web")
    assert (result.returncode, result.stdout) == (82, b"")
    assert b"failed to decode output from exec.d" in result.stderr


def test_failing_exec_d_is_82(image: FakeImage) -> None:
    """§16 item 65: a non-zero exec.d exit fails the launch with 82 and names the program."""
    image.script("bp/a", "l", "exec.d/fail", "echo 'X = \"1\"' >&3; exit 4\n")
    image.export(process("web", "echo", "not reached"))
    result = image.run("web")
    assert (result.returncode, result.stdout) == (82, b"")
    assert b"exec.d/fail" in result.stderr


# --- working dir, exit code ---


def test_working_dir_is_honoured(image: FakeImage) -> None:
    """§16 item 66: process working-dir is honoured (relative = below the app dir); default is <app>."""
    (image.app / "sub").mkdir(parents=True)
    image.export(
        process("web", "pwd"),
        process("abs", "pwd", working_dir=str(image.root)),
        process("rel", "pwd", working_dir="sub"),
        process("shell", "pwd", direct=False, working_dir="sub", buildpack_api="0.8"),
    )
    assert image.run("web").stdout == f"{image.app}\n".encode()
    assert image.run("abs").stdout == f"{image.root}\n".encode()
    assert image.run("rel").stdout == f"{image.app}/sub\n".encode()
    assert image.run("shell").stdout == f"{image.app}/sub\n".encode()
    assert image.run("launcher", "--", "pwd").stdout == f"{image.app}\n".encode()


def test_exit_code_is_the_process_exit_code(image: FakeImage) -> None:
    """§16 item 67: the launcher's exit code is the process's own, for direct and shell processes."""
    image.export(process("web", "sh", "-c", "exit 7"), process("old", "exit 9", direct=False, buildpack_api="0.8"))
    assert image.run("web").returncode == 7
    assert image.run("old").returncode == 9
    assert image.run("launcher", "--", "sh", "-c", "exit 5").returncode == 5


def test_python_entry_point_runs_the_same_script(image: FakeImage) -> None:
    """pyrun.launch: argv[0] picks the process, the exit code comes back (§9.1, §16 item 67)."""
    image.export(process("web", "sh", "-c", "exit 7"))
    env = {"PATH": BASE_PATH}
    assert launch(["/cnb/process/web"], env, image.layers, image.app, shell=image.shell) == 7
    assert launch(["launcher"], env, image.layers, image.app, shell=image.shell) == 82


# --- an image with only busybox (no bash): shell processes fall back to /bin/sh ---


@pytest.mark.integration
def test_busybox_only_image_in_a_sandbox(tmp_path: Path) -> None:
    """§16 items 61, 62, 65: the launcher in a busybox rootfs (no /bin/bash) run by bwrap at image paths."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "usr" / "bin" / "busybox")
    # --install -s links every applet to the busybox binary's real path, /usr/bin/busybox
    subprocess.run(["/bin/busybox", "--install", "-s", str(root / "bin")], check=True)
    assert not (root / "bin" / "bash").exists()
    staging = FakeImage(tmp_path / "staging", SHELLS["busybox"])
    staging.file(staging.layer("bp/a", "l") / "profile.d" / "p.sh", "export PROF=yes\n")
    staging.script("bp/a", "l", "exec.d/e", "echo 'EXECD = \"ok\"' >&3\n")
    # compiled with the image paths /layers and /workspace
    layer = LaunchLayer("l", staging.layer("bp/a", "l"))
    files = compile_launch_env(
        [LaunchBuildpack("bp/a", (layer,))],
        [process("web", "sh", "-c", 'echo "$EXECD ${PROF-noprofile} $0"', "arg0")],
    )
    shutil.copytree(staging.layers, root / "layers", symlinks=True)
    write_launch_env(root / "layers", files)
    (root / "workspace").mkdir()
    (root / "cnb" / "lifecycle").mkdir(parents=True)
    (root / "cnb" / "process").mkdir()
    (root / "cnb" / "lifecycle" / "launcher").write_bytes(LAUNCHER_SCRIPT)
    (root / "cnb" / "lifecycle" / "launcher").chmod(0o755)
    (root / "cnb" / "process" / "web").symlink_to("/cnb/lifecycle/launcher")

    bwrap = shutil.which("bwrap")
    assert bwrap, "bwrap missing: install bubblewrap"

    def run(*argv: str) -> subprocess.CompletedProcess[bytes]:
        sandbox = [bwrap, "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all"]
        env = {"PATH": "/cnb/process:/cnb/lifecycle:/bin", "CNB_PLATFORM_API": "0.15"}
        return subprocess.run([*sandbox, *argv], env=env, capture_output=True, timeout=30, check=False)

    web = run("/cnb/process/web")
    assert web.stdout == b"ok noprofile arg0\n", web.stderr
    shell = run("/cnb/lifecycle/launcher", 'echo "$EXECD $PROF $0"')
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout == b"ok yes /bin/sh\n"
    tokens = run("/cnb/lifecycle/launcher", "printf", "[%s]", "$PROF", "a b")
    assert (tokens.returncode, tokens.stdout) == (0, b"[yes][a b]"), tokens.stderr


def test_the_launcher_source_is_a_shellcheck_clean_sh_file(tmp_path: Path) -> None:
    """launcher.sh is a real file, packaged as data; it and the script as shipped pass shellcheck as POSIX sh."""
    source = Path(launcher_module.__file__).parent / "launcher.sh"
    shipped = tmp_path / "launcher"
    shipped.write_bytes(LAUNCHER_SCRIPT)
    placeholders = (b"@TAB@", b"@CR@", b"@KEYCHARS@", b"@TYPECHARS@", b"@TOKENS@")
    assert source.read_bytes().startswith(b"#!/bin/sh\n") and all(p in source.read_bytes() for p in placeholders)
    assert not any(p in LAUNCHER_SCRIPT for p in placeholders)
    done = subprocess.run(["shellcheck", "-s", "sh", str(source), str(shipped)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_launcher_is_packaged_as_data() -> None:
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"cnbplatform.launcher" = ["launcher.sh"]' in pyproject
