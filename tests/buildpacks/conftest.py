"""Fixtures of the buildpack tests: bookworm build/run images with Python and Node.js, and one shared ``$CNB_HOME``.

``language_images`` builds :data:`RECIPE` (bookworm minbase; run: python3, nodejs; build: + python3-venv,
python3-pip, npm, as builders/bookworm does) with cnb's own ``create_base`` into an OCI layout under the machine's
test cache (``tests.support.bookworm.cache_root``), keyed by the recipe and the image-making code, so only the first
session on a machine pays for mmdebstrap (2 to 3 minutes); later sessions read the layout (never write into it). Building needs the Debian mirror: without it the
fixture fails with the reason, it never skips.

``bp_cnb`` is a ``cnb`` runner with a session-wide home, so the build image is unpacked once for all the tests.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnbplatform.builder.base import BaseRecipe, create_base
from cnbplatform.errors import CnbError
from cnbplatform.oci.layercache import LayerCache
from cnbplatform.oci.layout import LayoutStore
from tests.conftest import Cnb
from tests.support.bookworm import CODE, REPO, cache_root

RECIPE = """\
# Bookworm for the buildpack tests: what cnb/python and cnb/node need, and no more.
[base]
id = "io.cnb.test.bookworm-languages"
kind = "debian"
user-id = 1000
group-id = 1000
user-name = "cnb"
maintainer = "cnb tests"
description = "Debian bookworm minbase with python3 and nodejs (build: python3-venv, python3-pip, npm), for buildpack tests"

[debian]
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
variant = "minbase"
run-packages = ["python3", "nodejs"]
build-packages = ["python3-venv", "python3-pip", "npm"]
"""


@dataclass(frozen=True)
class LanguageImages:
    layout: Path

    @property
    def build(self) -> str:
        return f"oci:{self.layout}:build"

    @property
    def run(self) -> str:
        return f"oci:{self.layout}:run"


def _key() -> str:
    digest = hashlib.sha256(RECIPE.encode())
    for name in CODE:
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    return digest.hexdigest()[:20]


def _build(work: Path) -> None:
    (work / "recipe.toml").write_text(RECIPE)
    recipe = BaseRecipe.load(work / "recipe.toml")
    scratch = Path(tempfile.mkdtemp(prefix="build-", dir=work))
    try:
        images = create_base(recipe, LayerCache(scratch / "layer-cache"), scratch / "blobs", work_dir=scratch)
        store = LayoutStore(work / "layout")
        store.write(images.build, "build")
        store.write(images.run, "run")
    except CnbError as exc:
        pytest.fail(f"building the buildpack test images needs http://deb.debian.org/debian: {exc}", pytrace=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@functools.cache
def language_images() -> LanguageImages:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"bookworm-languages-{_key()}"
    with open(root / "bookworm-languages.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per machine; the others wait and reuse
        if not (entry / "layout" / "index.json").is_file():
            for stale in [*root.glob("bookworm-languages-*"), *root.glob(".bookworm-languages-*")]:
                shutil.rmtree(stale, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix=".bookworm-languages-", dir=root))
            _build(work)
            work.rename(entry)
    return LanguageImages(entry / "layout")


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
