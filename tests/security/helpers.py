"""What the threat tests share: a private copy of the session's tiny-builder ``CNB_HOME`` per module, and ``cnb``
run in it as a user would (a minimal PATH, nothing of this environment's CNB_* variables)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.builders import REPO


def copy_of_home(tiny_builder_home: Path, tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A copy of the session's CNB_HOME with the tiny builder, for one module's builds."""
    path = tmp_path_factory.mktemp(name) / "home"
    shutil.copytree(tiny_builder_home, path, symlinks=True)
    return path


def cnb(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"CNB_HOME": str(home), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "cnbplatform", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
