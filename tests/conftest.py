"""Session-wide real parts: a plain-HTTP docker-registry, a Docker engine (started only when a test asks),
and a helper to run the ``cnb`` command as a user would (a subprocess with its own ``$CNB_HOME``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.dockerd import RunningDockerd, start_dockerd
from tests.support.registry import RunningRegistry, start_registry

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """A plain-HTTP registry on 127.0.0.1 shared by the session (use a unique repository per test)."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDockerd]:
    """A real Docker engine for the session; failing to start it is a failure, not a skip."""
    engine = start_dockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        yield engine
    finally:
        engine.stop()


@pytest.fixture(scope="session")
def tiny_builder_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CNB_HOME holding the tiny builder (``cnb/tiny-builder``, busybox bases), made once per session."""
    from tests.support.builders import make_tiny_builder

    home = tmp_path_factory.mktemp("tiny-builder-home")
    make_tiny_builder(home)
    return home


@dataclass
class Cnb:
    """Runs ``cnb`` in a subprocess with an isolated home, like a user in a terminal would."""

    home: Path
    env: dict[str, str]

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 300, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **(extra_env or {})}
        done = subprocess.run(
            [sys.executable, "-m", "cnbplatform", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=REPO,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"cnb {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    def popen(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "cnbplatform", *args],
            env={**self.env, **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )


@pytest.fixture
def cnb(tmp_path: Path) -> Cnb:
    home = tmp_path / "cnb-home"
    docker_config = tmp_path / "docker-config"
    docker_config.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CNB_", "DOCKER_")) and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")
    }
    env.update(CNB_HOME=str(home), DOCKER_CONFIG=str(docker_config), PYTHONPATH=str(REPO))
    return Cnb(home, env)
