"""Small Debian bookworm build and run images for tests (DESIGN.md §3 decision 8), built once per machine.

``bookworm_images()`` runs ``cnb base create`` on :data:`TEST_RECIPE` (minbase + python3: one mmdebstrap run,
20-30 s here) into an OCI image layout with the tags ``build`` and ``run``, and keeps it under
``~/.cache/cnb-tests/`` (``$CNB_TEST_CACHE`` overrides) as ``test-bookworm-<key>``, keyed by the recipe and
the source of the code that decides the images' bytes (:data:`CODE`), so later sessions on the same machine
reuse it. ``bookworm_images(extra_run_packages=("netbase",))`` is "the same recipe with one more package":
a new run image for rebase tests (its build image is made by a second, independent mmdebstrap run, which the
reproducibility test compares). The layouts are shared between sessions: read them, never write into them.

Building needs the Debian mirror (``deb.debian.org``); if it cannot be reached the fixture FAILS with the
reason, it never skips. Use the session fixtures by importing them into a test module (or a conftest)::

    from tests.support.bookworm import BookwormImages, bookworm, bookworm_patched  # noqa: F401
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnbplatform.oci.layout import LayoutStore

REPO = Path(__file__).resolve().parents[2]
TEST_RECIPE = """\
# The bookworm recipe kept small for tests: minbase + python3.
[base]
id = "io.cnb.test.bookworm"
kind = "debian"
user-id = 1000
group-id = 1000
user-name = "cnb"
maintainer = "cnb tests"
description = "Debian bookworm minbase with python3, for tests"

[debian]
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
variant = "minbase"
run-packages = ["python3"]
"""
EXTRA_PACKAGE = "netbase"
#: Seconds after its last use when an entry made by another version of :data:`CODE` is removed (several
#: checkouts of different versions share the cache; deleting an entry another one reads would break its run).
STALE_AFTER = 86400.0
STATUS = "var/lib/dpkg/status"
#: The code whose changes change the images' bytes (part of the cache key).
CODE = (
    "cnbplatform/builder/base.py",
    "cnbplatform/builder/debian.py",
    "cnbplatform/oci/layerspec.py",
    "cnbplatform/oci/tarlayer.py",
    "cnbplatform/oci/tarformat.py",
    "cnbplatform/oci/layerstream.py",
    "cnbplatform/oci/compress.py",
    "cnbplatform/oci/model.py",
)


@dataclass(frozen=True)
class BookwormImages:
    """A read-only OCI layout with the tags ``build`` and ``run``, and what the tests compare against."""

    layout: Path
    recipe: Path
    extra_run_packages: tuple[str, ...]
    build_digest: str
    run_digest: str
    build_status_sha256: str  # of the build image's /var/lib/dpkg/status
    run_status_sha256: str  # of the run image's /var/lib/dpkg/status
    fresh: bool  # built by this process (False: reused from an earlier session)
    seconds: float  # how long building took (when it was built)

    @property
    def build(self) -> str:
        return f"oci:{self.layout}:build"

    @property
    def run(self) -> str:
        return f"oci:{self.layout}:run"


def cache_root() -> Path:
    return Path(os.environ.get("CNB_TEST_CACHE") or "~/.cache/cnb-tests").expanduser()


def cache_key(extra_run_packages: Sequence[str]) -> str:
    digest = hashlib.sha256(TEST_RECIPE.encode())
    digest.update(json.dumps(list(extra_run_packages)).encode())
    for name in CODE:
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    return digest.hexdigest()[:20]


def layer_member(layout: Path, tag: str, member: str) -> bytes:
    """The bytes of *member* in the (single) layer of the image *tag* in *layout*, read with tarfile."""
    index = json.loads((layout / "index.json").read_text())
    (manifest_desc,) = [
        m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    ]
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / manifest_desc["digest"].split(":")[1]).read_text())
    for layer in manifest["layers"]:
        with tarfile.open(blobs / layer["digest"].split(":")[1], "r:gz") as tar:
            try:
                extracted = tar.extractfile(member)
            except KeyError:
                continue
            if extracted is not None:
                return extracted.read()
    raise AssertionError(f"{member} is not in the image {layout}:{tag}")


def _build(target: Path, extra: tuple[str, ...]) -> dict[str, object]:
    """Run ``cnb base create`` (the command a user runs) with a throw-away home into ``target/layout``."""
    home = Path(tempfile.mkdtemp(prefix="home-", dir=target))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNB_", "DOCKER_"))}
    env.update(CNB_HOME=str(home), PYTHONPATH=str(REPO))
    layout = target / "layout"
    command = [sys.executable, "-m", "cnbplatform", "base", "create", "--config", str(target / "recipe.toml")]
    command += ["--build-image", f"oci:{layout}:build", "--run-image", f"oci:{layout}:run"]
    for name in extra:
        command += ["--extra-run-package", name]
    started = time.monotonic()
    try:
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        pytest.fail(
            "building the bookworm test images (cnb base create) needs the Debian mirror "
            f"http://deb.debian.org/debian; it failed: {done.stderr.strip()}",
            pytrace=False,
        )
    seconds = round(time.monotonic() - started, 1)
    index = LayoutStore(layout, create=False)
    return {
        "build_digest": index.resolve("build").digest,
        "run_digest": index.resolve("run").digest,
        "run_status_sha256": hashlib.sha256(layer_member(layout, "run", STATUS)).hexdigest(),
        "build_status_sha256": hashlib.sha256(layer_member(layout, "build", STATUS)).hexdigest(),
        "seconds": seconds,
    }


def _ours(path: Path, variant: str) -> bool:
    """Whether *path* in the cache is an entry or a leftover work dir of *variant* (never another fixture's)."""
    return re.fullmatch(rf"\.?{re.escape(variant)}-([0-9a-f]{{20}}|tmp-.*)", path.name) is not None


@functools.cache
def bookworm_images(extra_run_packages: tuple[str, ...] = ()) -> BookwormImages:
    """The test images (see the module docstring), built if this machine has no cached copy."""
    root = cache_root()
    variant = "test-bookworm" + "".join(f"+{name}" for name in extra_run_packages)
    entry = root / f"{variant}-{cache_key(extra_run_packages)}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{variant}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one builder per machine; the others wait and reuse
        fresh = not (entry / "info.json").is_file()
        if fresh:
            for stale in root.iterdir():
                # A killed session's work dir (nobody builds while we hold the lock), or an entry of other code
                # unused for STALE_AFTER (another checkout may still read a younger one).
                leftover = stale.name.startswith(".")
                if _ours(stale, variant) and (leftover or time.time() - stale.stat().st_mtime > STALE_AFTER):
                    shutil.rmtree(stale, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix=f".{variant}-tmp-", dir=root))
            (work / "recipe.toml").write_text(TEST_RECIPE)
            info = _build(work, extra_run_packages)
            (work / "info.json").write_text(json.dumps(info, indent=2))
            work.rename(entry)
        info = json.loads((entry / "info.json").read_text())
        os.utime(entry)  # in use: not stale for another STALE_AFTER
    return BookwormImages(
        layout=entry / "layout",
        recipe=entry / "recipe.toml",
        extra_run_packages=extra_run_packages,
        build_digest=info["build_digest"],
        run_digest=info["run_digest"],
        build_status_sha256=info["build_status_sha256"],
        run_status_sha256=info["run_status_sha256"],
        fresh=fresh,
        seconds=float(info["seconds"]),
    )


@pytest.fixture(scope="session")
def bookworm() -> BookwormImages:
    """Bookworm minbase + python3 build and run images (uid/gid 1000, user ``cnb``)."""
    return bookworm_images()


@pytest.fixture(scope="session")
def bookworm_patched() -> BookwormImages:
    """The same recipe with one more run package (:data:`EXTRA_PACKAGE`): a new run image to rebase onto."""
    return bookworm_images((EXTRA_PACKAGE,))
