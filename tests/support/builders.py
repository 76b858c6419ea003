"""The tiny builder for tests that need one (docs/spec-notes.md §10.2): busybox base images from
``builders/tiny/base.toml`` and the builder from ``builders/tiny/builder.toml``, made in a ``$CNB_HOME`` with the real
``cnb`` command.

    home = tmp_path_factory.mktemp("tiny")
    make_tiny_builder(home)                  # cnb/tiny-build, cnb/tiny-run, cnb/tiny-builder in home's local store
    rootfs = builder_rootfs(home)            # the builder unpacked: rootfs / "cnb" / "order.toml", …
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cnbplatform.oci.image import as_image
from cnbplatform.oci.rootfs.cache import rootfs_for
from cnbplatform.oci.store.local import LocalStore

REPO = Path(__file__).resolve().parent.parent.parent
TINY = REPO / "builders" / "tiny"
BUILD_IMAGE = "cnb/tiny-build"
RUN_IMAGE = "cnb/tiny-run"
BUILDER = "cnb/tiny-builder"


def run_cnb(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", *args],
        env={"CNB_HOME": str(home), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO)},
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"cnb {' '.join(args)} failed ({done.returncode}): {done.stderr}")
    return done


def make_tiny_bases(home: Path) -> None:
    """``cnb/tiny-build`` and ``cnb/tiny-run`` in *home*'s local store."""
    run_cnb(home, "-q", "base", "create", "--config", str(TINY / "base.toml"),
            "--build-image", BUILD_IMAGE, "--run-image", RUN_IMAGE)  # fmt: skip


def make_tiny_builder(home: Path, name: str = BUILDER) -> str:
    """The base images and the tiny builder (``cnb/procfile``) in *home*; returns the builder's name."""
    make_tiny_bases(home)
    run_cnb(home, "-q", "builder", "create", name, "--config", str(TINY / "builder.toml"))
    return name


def builder_rootfs(home: Path, name: str = BUILDER) -> Path:
    """The builder image unpacked (once per digest) under ``<home>/rootfs``."""
    image = as_image(LocalStore(home).read(name))
    return rootfs_for(image, home / "rootfs")
