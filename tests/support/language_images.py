"""Debian bookworm build and run images with Python and Node.js for tests (DESIGN.md §3 decision 8), made once
per machine and shared by every session on it.

:func:`language_images` builds :data:`RECIPE` (bookworm minbase; run: python3, nodejs; build: + python3-venv,
python3-pip, npm, as builders/bookworm does) with cnb's own ``create_base`` into one OCI layout with three tags:

* ``build`` and ``run``: the recipe's build and run images;
* ``run-patched``: the run image of the same recipe with one more run package, :data:`PATCH_PACKAGE` (the recipe
  with ``extra-run-packages = ["netbase"]``), i.e. "the run image after a Debian update", for rebase tests.

All three come from the same moment of the Debian mirror (the two ``create_base`` calls run side by side), so
the patched run image differs from the run image by exactly :data:`PATCH_PACKAGE`, even after a Debian point
release: an entry made earlier is never paired with one made later.

The layout lives under ``tests.support.bookworm.cache_root()`` (``~/.cache/cnb-tests``, ``$CNB_TEST_CACHE``
overrides), keyed by the recipe and the code that decides the images' bytes, so only the first session on a
machine pays for mmdebstrap (2 to 3 minutes); later sessions read the layout and never write into it. A file
lock makes concurrent sessions wait for one builder; entries made by other code versions are removed once they are
a day old (a checkout of other code may be reading them now). Building needs the Debian mirror: without it the caller
fails with the reason, it never skips.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnbplatform.builder.base import BaseImages, BaseRecipe, create_base
from cnbplatform.errors import CnbError
from cnbplatform.oci.layercache import LayerCache
from cnbplatform.oci.layout import LayoutStore
from tests.support.bookworm import CODE, REPO, cache_root

PATCH_PACKAGE = "netbase"  # small, arch: all, no dependencies
_HEADER = """\
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
"""
RECIPE = (
    "# Bookworm for the buildpack tests: what cnb/python and cnb/node need, and no more.\n"
    + _HEADER
    + 'run-packages = ["python3", "nodejs"]\n'
    + 'build-packages = ["python3-venv", "python3-pip", "npm"]\n'
)
# The run image of RECIPE + ``extra-run-packages = [PATCH_PACKAGE]`` made alone: the run image depends only on the
# [base] table and the run include (run + extra packages), and with no build packages the build include is the same
# list, so one mmdebstrap run makes it (create_base's build image is that same root filesystem, and is dropped).
PATCHED_RECIPE = (
    "# The run image of the buildpack tests' recipe with one more package (a new run image to rebase onto).\n"
    + _HEADER
    + f'run-packages = ["python3", "nodejs", "{PATCH_PACKAGE}"]\n'
    + "build-packages = []\n"
)
_NAME = "bookworm-languages"
STALE_AFTER = 86400.0  # seconds: entries of other code versions older than this are removed


@dataclass(frozen=True)
class LanguageImages:
    """A read-only OCI layout with the tags ``build``, ``run`` and ``run-patched`` (module docstring)."""

    layout: Path

    @property
    def build(self) -> str:
        return f"oci:{self.layout}:build"

    @property
    def run(self) -> str:
        return f"oci:{self.layout}:run"

    @property
    def patched_run(self) -> str:
        """The run image with :data:`PATCH_PACKAGE` added."""
        return f"oci:{self.layout}:run-patched"


def _key() -> str:
    digest = hashlib.sha256(RECIPE.encode() + b"\0" + PATCHED_RECIPE.encode())
    for name in CODE:
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    return digest.hexdigest()[:20]


def _create(work: Path, name: str, text: str) -> BaseImages:
    (work / f"{name}.toml").write_text(text)
    scratch = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    recipe = BaseRecipe.load(work / f"{name}.toml")
    return create_base(recipe, LayerCache(scratch / "layer-cache"), scratch / "blobs", work_dir=scratch)


def _build(work: Path) -> None:
    """Both recipes side by side (one moment of the mirror), then the three tags into ``work/layout``."""
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            base = pool.submit(_create, work, "recipe", RECIPE)
            patched = pool.submit(_create, work, "patched", PATCHED_RECIPE)
            images, patched_images = base.result(), patched.result()
        store = LayoutStore(work / "layout")
        store.write(images.build, "build")
        store.write(images.run, "run")
        store.write(patched_images.run, "run-patched")
    except CnbError as exc:
        pytest.fail(
            f"building the bookworm language test images needs http://deb.debian.org/debian: {exc}", pytrace=False
        )
    finally:
        for scratch in [*work.glob("recipe-*"), *work.glob("patched-*")]:
            shutil.rmtree(scratch, ignore_errors=True)  # the root filesystems and blobs, now in the layout


@functools.cache
def language_images() -> LanguageImages:
    """The layout of the module docstring, built if this machine has no copy made by the current code."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"{_NAME}-{_key()}"
    with open(root / f"{_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per machine; the others wait and reuse
        if not (entry / "layout" / "index.json").is_file():
            for leftover in root.glob(f".{_NAME}-*"):  # of a killed build: nobody else builds while we hold the lock
                shutil.rmtree(leftover, ignore_errors=True)
            for stale in root.glob(f"{_NAME}-*"):
                if time.time() - stale.stat().st_mtime > STALE_AFTER:  # another checkout may still read it
                    shutil.rmtree(stale, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix=f".{_NAME}-", dir=root))
            try:
                _build(work)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            work.rename(entry)
        os.utime(entry)  # in use: not stale for another STALE_AFTER
    return LanguageImages(entry / "layout")
