"""The fast argv path of ``cnb`` (cnbplatform/cli/entry.py) against the typer commands it mirrors."""

from __future__ import annotations

import inspect
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer.models
from typer.testing import CliRunner

from cnbplatform.cli import build, commands, entry, image, lifecycle, rebase, resolve, run
from cnbplatform.cli.main import app
from tests.conftest import REPO

KINDS = {
    "str": "str", "str | None": "str", "Path": "path", "Path | None": "path", "int | None": "int", "float": "float", "int": "int",
    "float | None": "float", "bool": "flag", "bool | None": "flag", "list[str]": "list", "list[Path]": "listpath",
}  # fmt: skip


def spec_of(command: Callable[..., Any]) -> tuple[entry.Positionals, entry.Options]:
    """The fast parser's table for a typer command, read from its signature."""
    positionals: list[tuple[str, str, bool]] = []
    options: entry.Options = {}
    for name, param in inspect.signature(command).parameters.items():
        info = param.default
        kind = KINDS[str(param.annotation)]
        if isinstance(info, typer.models.ArgumentInfo):
            positionals.append((name, kind, info.default is ...))
        else:
            assert isinstance(info, typer.models.OptionInfo)
            default = str(info.default) if isinstance(info.default, Path) else info.default
            options[name] = (tuple(info.param_decls or ()), kind, default)
    return tuple(positionals), options


@pytest.mark.parametrize(
    ("table", "command"),
    [
        (entry.BUILD, build.build),
        (entry.REBASE, rebase.rebase),
        (entry.RUN, run.run),
        (entry.COPY, image.copy),
        (entry.PHASE, lifecycle._make("detect")),
        (entry.RESOLVE, resolve.resolve),
    ],
    ids=["build", "rebase", "run", "image copy", "lifecycle phase", "resolve"],
)
def test_table_matches_the_typer_signature(table: tuple[entry.Positionals, entry.Options], command: Any) -> None:
    positionals, options = spec_of(command)
    assert table[0] == positionals
    assert table[1] == options


def test_every_lifecycle_phase_is_on_the_fast_path() -> None:
    assert set(entry.PHASES) == set(lifecycle.HELP)


CASES = [
    ["build", "app", "--builder", "b", "--path", "/src", "-t", "x", "--tag=y", "--publish", "--env", "A=1", "-e", "B"],
    ["build", "--creation-time", "now", "app", "--detect-timeout", "2.5", "--env-file", "f", "--env-file", "g"],
    ["build", "app", "-B", "b", "--network", "none", "--volume", "/a:/b:ro", "--sandbox", "host", "--clear-cache"],
    ["rebase", "app", "--run-image", "r", "--force", "--report-output-dir", "out", "--insecure-registry", "h:5000"],
    ["rebase", "app", "--publish", "--previous-image", "old", "-t", "t1", "--creation-time", "10"],
    ["run", "app", "-p", "worker", "--env", "A=1", "--", "--port", "8080", "-x"],
    ["run", "app", "extra", "--network", "none"],
    ["image", "copy", "oci:/tmp/a:b", "local:c", "--platform", "linux/arm64"],
    ["lifecycle", "export", "img", "t2", "--layers", "/l", "--app", "/w", "--uid", "1000", "--no-skip-layers"],
    ["lifecycle", "detect", "--skip-restore", "--network", "--log-level", "debug", "--build-timeout", "3"],
    ["lifecycle", "create", "img", "--tag", "t", "--daemon", "--no-network", "--sandbox", "bwrap"],
    ["resolve", "-f", "a.yml", "--file=dir", "-f", "-", "-o", "out.yml", "--parallel", "4", "--lock-output", "l"],
    ["resolve", "--imgpkg-lock-output", "i.yml", "-f", "x", "--insecure-registry", "h:5000"],
]


def typer_kwargs(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The keyword arguments the typer command passes to the command body for *argv*."""
    seen: dict[str, Any] = {}

    def capture(*args: Any, **kwargs: Any) -> int:
        if args:  # phase_command(phase, flags, images, tag, insecure)
            phase, flags, images, tag, insecure = args
            seen.update(phase=phase, flags=flags, images=images, tag=tag, insecure=insecure)
        seen.update(kwargs)
        return 0

    for module, name in (
        (build, "build_command"),
        (rebase, "rebase_command"),
        (run, "run_command"),
        (image, "copy_command"),
        (lifecycle, "phase_command"),
        (resolve, "resolve_command"),
    ):
        monkeypatch.setattr(module, name, capture)
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    return seen


def fast_kwargs(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def capture(*args: Any, **kwargs: Any) -> int:
        if args:
            phase, flags, images, tag, insecure = args
            seen.update(phase=phase, flags=flags, images=images, tag=tag, insecure=insecure)
        seen.update(kwargs)
        return 0

    for name in ("build_command", "rebase_command", "run_command", "copy_command", "phase_command", "resolve_command"):
        monkeypatch.setattr(commands, name, capture)
    command = entry.fast_command(argv)
    assert command is not None, f"{argv} was not taken by the fast path"
    assert command() == 0
    return seen


def normal(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normal(v) for v in value]
    return value


@pytest.mark.parametrize("argv", CASES, ids=[" ".join(c[:2]) + f" #{i}" for i, c in enumerate(CASES)])
def test_fast_path_passes_what_typer_passes(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert normal(fast_kwargs(argv, monkeypatch)) == normal(typer_kwargs(argv, monkeypatch))


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--version"],
        ["build", "--help"],
        ["build"],  # the image is missing: typer says so
        ["build", "a", "b"],  # one positional too many
        ["build", "app", "--no-such-flag"],
        ["build", "app", "--builder"],  # no value
        ["build", "app", "-Bb"],  # glued short option: typer's business
        ["build", "app", "--publish=yes"],
        ["build", "app", "--detect-timeout", "soon"],
        ["lifecycle", "detect", "--uid", "root"],
        ["lifecycle"],
        ["image", "ls"],
        ["inspect", "app"],
        ["sbom", "export", "app"],
    ],
)
def test_anything_unusual_goes_to_typer(argv: list[str]) -> None:
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
    assert "cnbplatform.cli.commands" in modules
    assert not {m for m in modules if m.split(".")[0] in ("typer", "rich", "click", "pydantic")}


def test_usage_errors_still_come_from_typer(tmp_path: Path) -> None:
    done = run_cnb("build", "app", "--no-such-flag", tmp_path=tmp_path)
    assert done.returncode == 2
    assert "No such option" in done.stderr
    assert "typer" in imported(done.stderr)
