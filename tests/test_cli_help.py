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
