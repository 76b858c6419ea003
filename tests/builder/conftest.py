"""Fixtures of the builder tests: the busybox base images made once per session, copied into each test's home."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cnb
from tests.support.builders import make_tiny_bases


@pytest.fixture(scope="session")
def tiny_bases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNB_HOME with cnb/tiny-build and cnb/tiny-run (builders/tiny/base.toml)."""
    home = tmp_path_factory.mktemp("tiny-bases")
    make_tiny_bases(home)
    return home


@pytest.fixture
def tiny_home(cnb: Cnb, tiny_bases: Path) -> Cnb:
    """The ``cnb`` runner with the tiny base images already in its local store."""
    subprocess.run(["cp", "-a", str(tiny_bases), str(cnb.home)], check=True)
    return cnb
