"""The option table (cnbplatform/cli/options.py) and its two parsers: the fast argv path of ``cnb``
(cnbplatform/cli/entry.py) and the typer commands generated from it (cnbplatform/cli/params.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cnbplatform.cli import commands, entry, options
from cnbplatform.cli.main import app
from tests.conftest import REPO

CLI = REPO / "cnbplatform" / "cli"


def test_each_long_option_is_spelled_only_in_the_table() -> None:
    names = {option.name for option in options.OPTIONS} | {o.off for o in options.OPTIONS if o.off}
    assert "--cache-image" in names and "--insecure-registry" in names
    found: dict[str, list[str]] = {}
    for path in sorted(CLI.glob("*.py")):
        if path.name == "options.py":
            continue
        text = path.read_text()
        for name in names:
            if re.search(re.escape(name) + r"(?![A-Za-z0-9-])", text):
                found.setdefault(name, []).append(path.name)
    assert found == {}


def test_the_table_declares_each_option_of_a_command_once() -> None:
    for command in {c for o in options.OPTIONS for c in o.commands}:
        spelled = [n for o in options.options_of(command) for n in (o.name, *o.aliases, *([o.off] if o.off else []))]
        assert len(spelled) == len(set(spelled)), command
        dests = [o.dest for o in options.options_of(command)] + [a.dest for a in options.arguments_of(command)]
        assert len(dests) == len(set(dests)), command


def test_every_lifecycle_phase_is_a_table_command_with_its_variables() -> None:
    for phase in ("analyze", "detect", "restore", "build", "export", "create", "rebase", "launch"):
        command = options.command_named(("lifecycle", phase))
        assert command is not None and command.fixed == (("phase", phase),)
    layers = options.option("lifecycle detect", "layers")
    assert (layers.env, layers.env_default) == ("CNB_LAYERS_DIR", "/layers")
    assert options.option("lifecycle export", "cache_image").env == "CNB_CACHE_IMAGE"


CASES = [
    ["build", "app", "--builder", "b", "--path", "/src", "-t", "x", "--tag=y", "--publish", "--env", "A=1", "-e", "B"],
    ["build", "--creation-time", "now", "app", "--detect-timeout", "2.5", "--env-file", "f", "--env-file", "g"],
    ["build", "app", "-B", "b", "--network", "none", "--volume", "/a:/b:ro", "--sandbox", "host", "--clear-cache"],
    [
        "build",
        "app",
        "--keep-workspace",
        "--using",
        "dockerfile",
        "--dockerfile",
        "Dockerfile",
        "--pull-policy",
        "never",
    ],
    ["rebase", "app", "--run-image", "r", "--force", "--report-output-dir", "out", "--insecure-registry", "h:5000"],
    ["rebase", "app", "--publish", "--previous-image", "old", "-t", "t1", "--creation-time", "10"],
    ["run", "app", "-p", "worker", "--env", "A=1", "--", "--port", "8080", "-x"],
    ["run", "app", "extra", "--network", "none"],
    ["image", "copy", "oci:/tmp/a:b", "local:c", "--platform", "linux/arm64"],
    ["lifecycle", "export", "img", "t2", "--layers", "/l", "--app", "/w", "--uid", "1000", "--no-skip-layers"],
    ["lifecycle", "detect", "--skip-restore", "--network", "--log-level", "debug", "--build-timeout", "3"],
    ["lifecycle", "create", "img", "--tag", "t", "--daemon", "--no-network", "--sandbox", "bwrap"],
    ["lifecycle", "launch"],
    ["resolve", "-f", "a.yml", "--file=dir", "-f", "-", "-o", "out.yml", "--parallel", "4", "--lock-output", "l"],
    ["resolve", "--imgpkg-lock-output", "i.yml", "-f", "x", "--insecure-registry", "h:5000"],
]


def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace every table command's body with one that records its keywords."""
    seen: dict[str, Any] = {}

    def capture(**kwargs: Any) -> int:
        seen.update(kwargs)
        return 0

    for command in options.COMMANDS:
        monkeypatch.setattr(commands, command.body, capture)
    return seen


def typer_kwargs(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen = captured(monkeypatch)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    return dict(seen)


def fast_kwargs(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen = captured(monkeypatch)
    command = entry.fast_command(argv)
    assert command is not None, f"{argv} was not taken by the fast path"
    assert command() == 0
    return dict(seen)


def normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normal(v) for v in value]
    return value


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c[:2]) + f" #{i}" for i, c in enumerate(CASES)])
def test_fast_path_passes_what_typer_passes(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    fast = fast_kwargs(argv, monkeypatch)
    assert normal(fast) == normal(typer_kwargs(argv, monkeypatch))


def test_parsed_values_have_the_table_types(monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = fast_kwargs(CASES[1], monkeypatch)
    assert kwargs["image"] == "app" and kwargs["creation_time"] == "now" and kwargs["detect_timeout"] == 2.5
    assert kwargs["env_file"] == [Path("f"), Path("g")] and kwargs["path"] == Path(".")
    assert kwargs["network"] == "private" and kwargs["publish"] is False and kwargs["tag"] == []
    phase = fast_kwargs(CASES[9], monkeypatch)
    assert phase["phase"] == "export" and phase["images"] == ["img", "t2"] and phase["uid"] == 1000
    assert phase["skip_layers"] is False and phase["skip_restore"] is None and phase["layers"] == "/l"
    launch = fast_kwargs(["lifecycle", "launch"], monkeypatch)
    assert launch["images"] is None and launch["daemon"] is None


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--version"],
        ["build", "--help"],
        ["build"],  # the image is missing: click says so
        ["build", "a", "b"],  # one positional too many
        ["build", "app", "--no-such-flag"],
        ["build", "app", "--builder"],  # no value
        ["build", "app", "-Bb"],  # glued short option: click's business
        ["build", "app", "--publish=yes"],
        ["build", "app", "--detect-timeout", "soon"],
        ["lifecycle", "detect", "--uid", "root"],
        ["lifecycle"],
        ["image", "ls"],
        ["inspect", "app"],
        ["sbom", "export", "app"],
    ],
)
def test_anything_unusual_goes_to_click(argv: list[str]) -> None:
    assert entry.fast_command(argv) is None


def test_help_after_double_dash_belongs_to_the_app() -> None:
    assert entry.fast_command(["run", "app", "--", "--help"]) is not None


def test_root_options_before_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from cnbplatform.cli.output import OPTIONS

    monkeypatch.setattr(OPTIONS, "quiet", False)
    kwargs = fast_kwargs(["-q", "rebase", "app"], monkeypatch)
    assert kwargs["image"] == "app"
    assert OPTIONS.quiet is True


def run_cnb(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {"CNB_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cnbplatform", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
    )


def imported(stderr: str) -> set[str]:
    return {line.split("|")[-1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_fast_path_imports_neither_typer_nor_rich(tmp_path: Path) -> None:
    done = run_cnb("rebase", "no-such-app", tmp_path=tmp_path)
    assert done.returncode == 72  # the spec's rebase failure code
    errors = [line for line in done.stderr.splitlines() if not line.startswith("import time:")]
    assert len(errors) == 1 and errors[0].startswith("error: ") and "no-such-app" in errors[0], errors
    modules = imported(done.stderr)
    assert "cnbplatform.cli.options" in modules and "cnbplatform.cli.commands" in modules
    assert not {m for m in modules if m.split(".")[0] in ("typer", "rich", "click", "pydantic")}


def test_a_phase_spelled_cnbs_way_loads_no_go_flag_tables(tmp_path: Path) -> None:
    """``cnb lifecycle <phase> --flag`` is told from the Go spelling without the Go flag tables (cli/goflags.py)."""
    done = run_cnb("lifecycle", "detect", "--app", str(tmp_path / "no-such-app"), tmp_path=tmp_path)
    modules = imported(done.stderr)
    assert "cnbplatform.cli.commands" in modules
    assert not {"cnbplatform.cli.goflags", "cnbplatform.cli.golifecycle"} & modules


def test_usage_errors_still_come_from_click(tmp_path: Path) -> None:
    done = run_cnb("build", "app", "--no-such-flag", tmp_path=tmp_path)
    assert done.returncode == 2
    assert "No such option" in done.stderr
    assert "typer" in imported(done.stderr)
