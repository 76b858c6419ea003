"""Debian build and run images for tests (docs/design.md decision 8), built once per machine: the one cached
Debian test-image helper.

Three sets, each one cache entry under :func:`cache_root` (``~/.cache/cnb-tests/``, ``$CNB_TEST_CACHE`` overrides)
made by :func:`cached`, keyed by its recipe and the source of the code that decides the images' bytes
(:data:`CODE`), so later sessions on the same machine reuse it. A file lock makes concurrent sessions wait for one
builder; entries made by other code versions are removed once unused for a day (another checkout may be reading
them). Entries are shared between sessions: read them, never write into them.

* :func:`bookworm_images` (fixtures ``bookworm`` and ``bookworm_patched``): ``cnb base create`` on
  :data:`TEST_RECIPE` (minbase + python3, one mmdebstrap run) into an OCI layout with the tags ``build`` and
  ``run``. ``bookworm_images(("netbase",))`` is "the same recipe with one more package": a new run image for
  rebase tests (its build image is made by a second, independent mmdebstrap run, which the reproducibility test
  compares).
* :func:`language_images`, for the buildpack tests: :data:`RECIPE` (run: python3, nodejs; build: + python3-venv,
  python3-pip, npm, as builders/bookworm does) made with cnb's own ``create_base`` into one layout with the tags
  ``build``, ``run`` and ``run-patched`` (the run image with :data:`PATCH_PACKAGE` added, "the run image after a
  Debian update"). Both recipes are built side by side, from one moment of the mirror, so the patched run image
  differs from the run image by exactly :data:`PATCH_PACKAGE`.
* :func:`trixie_images`, for the Go tests: :data:`TRIXIE_RECIPE` (trixie minbase; run: ca-certificates, tzdata;
  build: + golang-go, as builders/trixie does, with ``static-run-image = true``) made with ``create_base`` into one
  layout with the tags ``build``, ``run`` and ``static``.

Building needs the Debian mirror (``deb.debian.org``); if it cannot be reached the caller FAILS with the reason,
it never skips. Use the session fixtures by importing them into a test module (or a conftest)::

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
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnbplatform.builder.base import BaseImages, BaseRecipe, create_base
from cnbplatform.errors import CnbError
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.store.layout import LayoutStore

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
EXTRA_PACKAGE = "netbase"  # small, arch: all, no dependencies
#: Seconds after its last use when an entry made by another version of :data:`CODE` is removed (several
#: checkouts of different versions share the cache; deleting an entry another one reads would break its run).
STALE_AFTER = 86400.0
STATUS = "var/lib/dpkg/status"
#: The code whose changes change the images' bytes (part of the cache key).
CODE = (
    "cnbplatform/builder/base.py",
    "cnbplatform/builder/debian.py",
    "cnbplatform/oci/layers/spec.py",
    "cnbplatform/oci/layers/tarlayer.py",
    "cnbplatform/oci/layers/tarformat.py",
    "cnbplatform/oci/layers/stream.py",
    "cnbplatform/oci/layers/compress.py",
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


def cached(variant: str, key: str, build: Callable[[Path], None], done: str) -> tuple[Path, bool]:
    """The cache entry ``<cache_root>/<variant>-<key>``, made by ``build(work_dir)`` if this machine has none
    (*done*, a path inside the entry, marks a complete one); and whether this call made it. One builder per machine
    (a file lock; the others wait and reuse). Before building, a killed session's work dirs of *variant* are
    removed, and its entries of other code unused for :data:`STALE_AFTER` (another checkout may still read a
    younger one)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    entry = root / f"{variant}-{key}"
    with open(root / f"{variant}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        fresh = not (entry / done).is_file()
        if fresh:
            for stale in root.iterdir():
                leftover = stale.name.startswith(".")
                if _ours(stale, variant) and (leftover or time.time() - stale.stat().st_mtime > STALE_AFTER):
                    shutil.rmtree(stale, ignore_errors=True)
            work = Path(tempfile.mkdtemp(prefix=f".{variant}-tmp-", dir=root))
            try:
                build(work)
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            work.rename(entry)
        os.utime(entry)  # in use: not stale for another STALE_AFTER
    return entry, fresh


@functools.cache
def bookworm_images(extra_run_packages: tuple[str, ...] = ()) -> BookwormImages:
    """The test images (see the module docstring), built if this machine has no cached copy."""
    variant = "test-bookworm" + "".join(f"+{name}" for name in extra_run_packages)

    def build(work: Path) -> None:
        (work / "recipe.toml").write_text(TEST_RECIPE)
        info = _build(work, extra_run_packages)
        (work / "info.json").write_text(json.dumps(info, indent=2))

    entry, fresh = cached(variant, cache_key(extra_run_packages), build, "info.json")
    info = json.loads((entry / "info.json").read_text())
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


# -- the language images: python3 and nodejs, and a patched run image -----------------------------------------

PATCH_PACKAGE = EXTRA_PACKAGE
_HEADER = """\
[base]
id = "io.cnb.test.bookworm-languages"
kind = "debian"
user-id = 1000
group-id = 1000
user-name = "cnb"
maintainer = "cnb tests"
description = "Debian bookworm minbase with python3 and nodejs (build: venv, pip, npm, a C compiler), for buildpack tests"

[debian]
suite = "bookworm"
mirror = "http://deb.debian.org/debian"
variant = "minbase"
"""
RECIPE = (
    "# Bookworm for the buildpack tests: what cnb/python and cnb/node need, and a C compiler with Python's headers\n"
    "# (the part of builders/bookworm's build-essential + python3-dev that sdists with C extensions use).\n"
    + _HEADER
    + 'run-packages = ["python3", "nodejs"]\n'
    + 'build-packages = ["python3-venv", "python3-pip", "npm", "gcc", "libc6-dev", "python3-dev"]\n'
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


@dataclass(frozen=True)
class _LayoutImages:
    """A read-only OCI layout made from a recipe, with at least the tags ``build`` and ``run``."""

    layout: Path

    @property
    def build(self) -> str:
        return f"oci:{self.layout}:build"

    @property
    def run(self) -> str:
        return f"oci:{self.layout}:run"


def _recipes_key(*recipes: str) -> str:
    """The cache key of images made from *recipes* by this checkout's image code (:data:`CODE`)."""
    digest = hashlib.sha256(b"\0".join(recipe.encode() for recipe in recipes))
    for name in CODE:
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    return digest.hexdigest()[:20]


@dataclass(frozen=True)
class LanguageImages(_LayoutImages):
    """A read-only OCI layout with the tags ``build``, ``run`` and ``run-patched`` (module docstring)."""

    @property
    def patched_run(self) -> str:
        """The run image with :data:`PATCH_PACKAGE` added."""
        return f"oci:{self.layout}:run-patched"


def _create(work: Path, name: str, text: str) -> BaseImages:
    (work / f"{name}.toml").write_text(text)
    scratch = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    recipe = BaseRecipe.load(work / f"{name}.toml")
    return create_base(recipe, LayerCache(scratch / "layer-cache"), scratch / "blobs", work_dir=scratch)


def _build_languages(work: Path) -> None:
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
    """The language images (see the module docstring), built if this machine has no copy made by the current code."""
    entry, _ = cached(_NAME, _recipes_key(RECIPE, PATCHED_RECIPE), _build_languages, "layout/index.json")
    return LanguageImages(entry / "layout")


# -- the trixie images: Go in the build image, a static run image for its binaries ----------------------------

TRIXIE_RECIPE = """\
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


@dataclass(frozen=True)
class TrixieImages(_LayoutImages):
    """A read-only OCI layout with the tags ``build``, ``run`` and ``static`` (module docstring)."""

    @property
    def static(self) -> str:
        return f"oci:{self.layout}:static"


def _build_trixie(work: Path) -> None:
    try:
        images = _create(work, "recipe", TRIXIE_RECIPE)
        assert images.static is not None
        store = LayoutStore(work / "layout")
        store.write(images.build, "build")
        store.write(images.run, "run")
        store.write(images.static, "static")
    except CnbError as exc:
        pytest.fail(f"building the trixie test images needs http://deb.debian.org/debian: {exc}", pytrace=False)
    finally:
        for scratch in work.glob("recipe-*"):
            shutil.rmtree(scratch, ignore_errors=True)  # the root filesystem and blobs, now in the layout


@functools.cache
def trixie_images() -> TrixieImages:
    """The trixie images (see the module docstring), built if this machine has no copy made by the current code."""
    entry, _ = cached("trixie-go", _recipes_key(TRIXIE_RECIPE), _build_trixie, "layout/index.json")
    return TrixieImages(entry / "layout")
