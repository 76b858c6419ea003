"""``cnb sbom`` command line: help renders, bad options are one-line usage errors (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnbplatform", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"CNB_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        check=False,
    )


@pytest.mark.parametrize("command", ["download", "export", "diff"])
def test_help_renders(command: str, tmp_path: Path) -> None:
    done = run("sbom", command, "--help", home=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("export", "x", "--format", "xml"), "--format must be one of cyclonedx, spdx, html"),
        (("export", "x", "--serial", "sometimes"), "--serial takes digest or random"),
        (("download", "local:x", "--remote"), "--remote"),
    ],
)
def test_usage_errors(args: tuple[str, ...], needle: str, tmp_path: Path) -> None:
    done = run("sbom", *args, home=tmp_path)
    assert done.returncode == 2, done.stderr
    assert needle in done.stderr
    assert "Traceback" not in done.stderr


def test_missing_image_is_one_line(tmp_path: Path) -> None:
    done = run("sbom", "export", "nothing-here", home=tmp_path)
    assert done.returncode == 1
    assert "not found in the local store" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
