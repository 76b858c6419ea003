"""The Go lifecycle's command line: Go ``flag`` syntax, the phase executables' flag sets, dispatch on argv[0]."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnbplatform.cli.goflags import EXECUTABLES, GoFlag, GoFlagError, parse_go_flags
from cnbplatform.cli.golifecycle import specs_for
from cnbplatform.cli.options import GO_EXECUTABLES
from tests.conftest import REPO, Cnb

FLAGS = (
    GoFlag("app", "string", "app"),
    GoFlag("cache-image", "string", "cache_image"),
    GoFlag("uid", "int", "uid"),
    GoFlag("skip-restore", "bool", "skip_restore"),
    GoFlag("tag", "list", "tag"),
    GoFlag("no-color", "bool", None),
)


def test_go_syntax_equals_space_double_dash_booleans_repeats_and_positionals() -> None:
    line = parse_go_flags(
        ["-app=/workspace", "--uid", "1000", "-skip-restore", "-tag", "r/a:1", "--tag=r/a:2", "-no-color", "r/app",
         "-tag", "x"],
        FLAGS,
    )  # fmt: skip
    assert line.values == {"app": "/workspace", "uid": 1000, "skip_restore": True, "tag": ["r/a:1", "r/a:2"]}
    assert line.ignored == ["no-color"]
    assert line.positionals == ["r/app", "-tag", "x"]  # Go stops at the first positional


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("false", False), ("1", True), ("F", False)])
def test_boolean_with_a_value(text: str, expected: bool) -> None:
    assert parse_go_flags([f"-skip-restore={text}"], FLAGS).values == {"skip_restore": expected}


def test_an_empty_value_means_unset() -> None:
    line = parse_go_flags(["-cache-image=", "-app", "", "-uid=", "-tag=", "img"], FLAGS)
    assert line.values == {}
    assert line.positionals == ["img"]


def test_double_dash_ends_the_flags() -> None:
    assert parse_go_flags(["-app=/a", "--", "-uid=1"], FLAGS).positionals == ["-uid=1"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-nope=1"], "flag provided but not defined: -nope"),
        (["-app"], "flag needs an argument: -app"),
        (["-uid=abc"], 'invalid value "abc" for flag -uid'),
        (["-skip-restore=maybe"], 'invalid boolean value "maybe" for -skip-restore'),
        (["---app=x"], "bad flag syntax: ---app=x"),
    ],
)
def test_bad_command_lines(argv: list[str], message: str) -> None:
    with pytest.raises(GoFlagError, match=message) as caught:
        parse_go_flags(argv, FLAGS)
    assert caught.value.exit_code == 3


def test_every_executable_has_its_flags_from_cnbs_option_table() -> None:
    phase, flags = specs_for("creator")
    assert phase == "create"
    by_name = {flag.name: flag for flag in flags}
    assert by_name["cache-image"].dest == "cache_image"
    assert by_name["skip-restore"].kind == "bool"
    assert by_name["tag"].kind == "list"
    assert by_name["uid"].kind == "int"
    assert by_name["launch-cache"].dest is None
    assert specs_for("rebaser")[1][-4:][0].name in {"image", "force", "previous-image", "report"}
    assert {flag.dest for flag in specs_for("rebaser")[1] if flag.name == "image"} == {"run_image"}
    for executable in EXECUTABLES:
        specs_for(executable)
    assert tuple(EXECUTABLES) == GO_EXECUTABLES  # the fast path's list of names (cli/options.py)


def test_tekton_creator_command_line_parses() -> None:
    # task/buildpacks/0.6: the create step's args with its empty parameters
    argv = ["-app=/workspace/source/", "-cache-dir=/cache", "-cache-image=", "-uid=1000", "-gid=1000",
            "-layers=/layers", "-platform=/platform", "-report=/layers/report.toml", "-process-type=web",
            "-skip-restore=false", "-previous-image=reg/app", "-run-image=", "reg/app"]  # fmt: skip
    line = parse_go_flags(argv, specs_for("creator")[1])
    assert line.values == {
        "app": "/workspace/source/", "cache_dir": "/cache", "uid": 1000, "gid": 1000, "layers": "/layers",
        "platform": "/platform", "report": "/layers/report.toml", "process_type": "web", "skip_restore": False,
        "previous_image": "reg/app",
    }  # fmt: skip
    assert line.positionals == ["reg/app"]


def _executables(tmp_path: Path) -> Path:
    """A lifecycle dir whose phase names link to one program, as in a builder's /cnb/lifecycle."""
    bin_dir = tmp_path / "lifecycle"
    bin_dir.mkdir()
    program = bin_dir / "lifecycle"
    program.write_text(
        f"#!{sys.executable} -S\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
        "from cnbplatform.cli.golifecycle import main\nmain()\n"
    )
    program.chmod(0o755)
    for name in EXECUTABLES:
        (bin_dir / name).symlink_to("lifecycle")
    return bin_dir


def _run(program: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": str(program.parent)}
    return subprocess.run([str(program), *args], env={**base, **(env or {})}, capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_dispatch_on_argv0(tmp_path: Path) -> None:
    bin_dir = _executables(tmp_path)
    done = _run(bin_dir / "detector", "-app=/nonexistent", "-unknown-flag")
    assert done.returncode == 3, done.stderr
    assert "flag provided but not defined: -unknown-flag" in done.stderr
    assert "Traceback" not in done.stderr
    done = _run(bin_dir / "analyzer", "-layers=/tmp", "-cache-image=", "-run-image=")
    assert done.returncode == 3, done.stderr  # no output image: the Go analyzer's invalid-args code
    assert "output image is required" in done.stderr
    help_text = _run(bin_dir / "exporter", "-help")
    assert help_text.returncode == 0
    assert "-launch-cache value" in help_text.stderr and "-report value" in help_text.stderr


def test_extender_says_extensions_are_not_supported(tmp_path: Path) -> None:
    bin_dir = _executables(tmp_path)
    layers = tmp_path / "layers"
    layers.mkdir()
    nothing = _run(bin_dir / "extender", f"-layers={layers}", "-kind=build", "-uid=1000", "-gid=1000")
    assert nothing.returncode == 0, nothing.stderr
    dockerfile = layers / "generated" / "build" / "my-extension" / "Dockerfile"
    dockerfile.parent.mkdir(parents=True)
    dockerfile.write_text("FROM scratch\n")
    asked = _run(bin_dir / "extender", f"-layers={layers}", "-generated", str(layers / "generated"))
    assert asked.returncode == 1
    assert "image extensions are not supported" in asked.stderr


def test_cnb_lifecycle_accepts_the_go_spelling(cnb: Cnb, tmp_path: Path) -> None:
    done = cnb("lifecycle", "create", "-app=/workspace", "-cache-image=", "-bogus=1", check=False)
    assert done.returncode == 3
    assert "flag provided but not defined: -bogus" in done.stderr
    done = cnb("lifecycle", "analyzer", f"-layers={tmp_path}", "-run-image=", check=False)
    assert done.returncode == 3
    assert "output image is required" in done.stderr
    # cnb's own phase options in Go spelling too
    done = cnb("lifecycle", "detect", "-sandbox=nope", f"-layers={tmp_path}", check=False)
    assert "nope" in done.stderr
