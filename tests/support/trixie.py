"""Debian trixie images for the Go tests (issue 11 items 4, 5), made once per machine and shared by every session.

:func:`trixie_images` builds :data:`RECIPE` (trixie minbase; run: ca-certificates, tzdata; build: + golang-go, as
builders/trixie does, with ``static-run-image = true``) with cnb's own ``create_base`` into one OCI layout with the
tags ``build``, ``run`` and ``static``. It is kept under ``tests.support.bookworm.cache_root()`` keyed by the recipe
and the code that decides the images' bytes, like :mod:`tests.support.language_images`: only the first session on a
machine pays for mmdebstrap. Building needs the Debian mirror: without it the caller fails with the reason.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnbplatform.builder.base import BaseRecipe, create_base
from cnbplatform.errors import CnbError
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.store.layout import LayoutStore
from tests.support.bookworm import CODE, REPO, cache_root

RECIPE = """\
# Trixie for the Go tests: Go in the build image, a static run image for its binaries.
[base]
id = "io.cnb.test.trixie"
kind = "debian"
user-id = 1000
group-id = 1000
user-name = "cnb"
maintainer = "cnb tests"
description = "Debian trixie minbase with Go (build) and a static run image, for buildpack tests"

[debian]
suite = "trixie"
mirror = "http://deb.debian.org/debian"
variant = "minbase"
run-packages = ["ca-certificates", "tzdata"]
build-packages = ["golang-go"]
static-run-image = true
"""
_NAME = "trixie-go"
STALE_AFTER = 86400.0


@dataclass(frozen=True)
class TrixieImages:
    layout: Path

    @property
    def build(self) -> str:
        return f"oci:{self.layout}:build"

    @property
    def run(self) -> str:
        return f"oci:{self.layout}:run"

    @property
    def static(self) -> str:
        return f"oci:{self.layout}:static"


def _key() -> str:
    digest = hashlib.sha256(RECIPE.encode())
    for name in CODE:
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    return digest.hexdigest()[:20]


def _build(work: Path) -> None:
    (work / "recipe.toml").write_text(RECIPE)
    scratch = Path(tempfile.mkdtemp(prefix="scratch-", dir=work))
    try:
        images = create_base(
            BaseRecipe.load(work / "recipe.toml"), LayerCache(scratch / "layer-cache"), scratch / "blobs",
            work_dir=scratch,
        )  # fmt: skip
        assert images.static is not None
        store = LayoutStore(work / "layout")
        store.write(images.build, "build")
        store.write(images.run, "run")
        store.write(images.static, "static")
    except CnbError as exc:
        pytest.fail(f"building the trixie test images needs http://deb.debian.org/debian: {exc}", pytrace=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@functools.cache
def trixie_images() -> TrixieImages:
    """The layout of the module docstring, built if this machine has no copy made by the current code."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"{_NAME}-{_key()}"
    with open(root / f"{_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (entry / "layout" / "index.json").is_file():
            for leftover in root.glob(f".{_NAME}-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            for stale in root.glob(f"{_NAME}-*"):
                if time.time() - stale.stat().st_mtime > STALE_AFTER:
                    shutil.rmtree(stale, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix=f".{_NAME}-", dir=root))
            try:
                _build(work)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            work.rename(entry)
        os.utime(entry)  # in use: not stale for another STALE_AFTER
    return TrixieImages(entry / "layout")
