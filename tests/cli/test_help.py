"""Every command's --help renders (help text is rich markup: a stray [..] breaks it)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

COMMANDS = [
    [],
    ["image"],
    ["image", "copy"],
    ["image", "ls"],
    ["image", "inspect"],
    ["image", "rm"],
    ["image", "tag"],
    ["run"],
    ["prune"],
    ["inspect"],
    ["build"],
    ["rebase"],
    ["resolve"],
    ["k8s"],
    ["k8s", "pull-secret"],
    ["k8s", "manifests"],
    ["deploy"],
    ["builder"],
    ["buildpack"],
    ["builder", "create"],
    ["builder", "inspect"],
    ["buildpack", "package"],
    ["buildpack", "new"],
    ["config", "default-builder"],
    ["sbom"],
    ["sbom", "download"],
    ["sbom", "export"],
    ["sbom", "diff"],
    ["config"],
    ["base"],
    ["base", "create"],
    ["lifecycle"],
    *[
        ["lifecycle", phase]
        for phase in ("analyze", "detect", "restore", "build", "export", "create", "launch", "rebase")
    ],
]


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) or "cnb" for c in COMMANDS])
def test_help_renders(command: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", *command, "--help"], capture_output=True, text=True, cwd=REPO, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout


def help_of(*command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", *command, "--help"], capture_output=True, text=True, cwd=REPO, check=True
    )
    return done.stdout


def test_help_follows_clicks_conventions() -> None:
    root = help_of()
    assert "-q, --quiet    No progress output." in root  # a flag shows no value placeholder
    assert "<bool>" not in root and "<int>" not in root
    rebase = help_of("rebase")
    assert "Usage: cnb rebase [OPTIONS] IMAGE\n" in rebase  # not {image}
    assert "--run-image IMAGE " in rebase and "--publish " in rebase and "<str>" not in rebase
    build = help_of("build")
    assert "--pull-policy POLICY" in build and "[default: bwrap]" in build
    create = help_of("lifecycle", "create")
    assert "Usage: cnb lifecycle create [OPTIONS] [IMAGE]...\n" in create
    assert "CNB_CACHE_IMAGE" in create and "--skip-layers / --no-skip-layers" in create
    new = help_of("buildpack", "new")  # a command declared with typer
    assert "Usage: cnb buildpack new [OPTIONS] ID\n" in new and "{" not in new
