"""Fixtures of the buildpack tests: bookworm build/run images with Python and Node.js, and one shared ``$CNB_HOME``.

``languages`` is :func:`tests.support.bookworm.language_images` (bookworm minbase; run: python3, nodejs;
build: + python3-venv, python3-pip, npm, gcc, python3-dev, as builders/bookworm does), built with cnb's own
``create_base`` once per machine into the test cache and read (never written) by later sessions. Building needs the Debian mirror: without it
the fixture fails with the reason, it never skips.

``bp_cnb`` is a ``cnb`` runner with a session-wide home, so the build image is unpacked once for all the tests.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import Cnb
from tests.support.bookworm import REPO, LanguageImages, language_images

__all__ = ["LanguageImages", "bp_cnb", "languages"]


@pytest.fixture(scope="session")
def languages() -> LanguageImages:
    """Bookworm build and run images with python3 and nodejs (build image: python3-venv, npm too)."""
    return language_images()


@pytest.fixture(scope="session")
def bp_cnb(tmp_path_factory: pytest.TempPathFactory) -> Cnb:
    """A ``cnb`` runner whose home lives for the session (unpacked images are shared by every test here)."""
    home = tmp_path_factory.mktemp("buildpacks-home")
    docker_config = tmp_path_factory.mktemp("buildpacks-docker-config")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CNB_", "DOCKER_")) and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")
    }
    env.update(CNB_HOME=str(home), DOCKER_CONFIG=str(docker_config), PYTHONPATH=str(REPO))
    return Cnb(home, env)
