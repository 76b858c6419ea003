"""A buildpacks-built app image in the session registry (the tiny builder, examples/shell), for manifests tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.builders import BUILDER, REPO, run_cnb
from tests.support.registry import RunningRegistry


@dataclass(frozen=True)
class BuiltApp:
    home: Path
    image: str


@pytest.fixture(scope="session")
def tiny_home(tiny_builder_home: Path) -> Path:
    return tiny_builder_home


@pytest.fixture(scope="session")
def shell_app(tiny_home: Path, registry: RunningRegistry) -> BuiltApp:
    image = f"{registry.host}/k8s/shell-app:1"
    run_cnb(tiny_home, "-q", "build", image, "--builder", BUILDER, "--path", str(REPO / "examples" / "shell"),
            "--publish")  # fmt: skip
    return BuiltApp(tiny_home, image)
