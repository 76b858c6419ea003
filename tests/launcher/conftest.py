"""Fixtures for launcher tests: every script test runs under dash and under busybox sh."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.launcher.fakeimage import SHELLS, FakeImage


@pytest.fixture(params=sorted(SHELLS))
def shell(request: pytest.FixtureRequest) -> tuple[str, ...]:
    path = SHELLS[request.param][0]
    assert os.access(path, os.X_OK), f"{path} missing: install busybox-static"
    return SHELLS[request.param]


@pytest.fixture
def image(tmp_path: Path, shell: Sequence[str]) -> FakeImage:
    return FakeImage(tmp_path, tuple(shell))
