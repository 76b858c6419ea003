"""Real wheels from PyPI for the Python buildpack tests, fetched once per machine into the test cache.

:func:`wheel_mirror` runs ``pip download`` (wheels only, for the build images' CPython 3.11 on manylinux x86-64)
for each requirement set, run by Debian's ``/usr/bin/python3`` (bookworm's 3.11.2, the build image's: markers on
``python_full_version`` decide, e.g. redis needs async-timeout before 3.11.3) into ``~/.cache/cnb-tests/pypi-<name>-<key>/`` (``$CNB_TEST_CACHE`` overrides the root),
keyed by the sets and the download options; later sessions read it and never write into it. A file lock makes
concurrent sessions wait for one downloader; a failed download leaves nothing behind and fails with pip's reason.
The host's pip configuration is ignored (``PIP_CONFIG_FILE=/dev/null``): only PyPI is asked.

:func:`uv_wheel` is the uv wheel the Python buildpack fetches with pip (its ``UV_VERSION``), for builds whose
``PIP_FIND_LINKS`` directory must hold everything.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.support.bookworm import REPO, cache_root

PLATFORM = [
    "--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11", "--abi", "cp311",
    "--platform", "manylinux_2_36_x86_64", "--platform", "manylinux_2_28_x86_64",
    "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
]  # fmt: skip
PYPI = "https://pypi.org/simple"
PYTHON = "/usr/bin/python3"  # Debian's, the build image's version


def uv_version() -> str:
    found = re.search(r'^UV_VERSION = "([^"]+)"', (REPO / "buildpacks/python/lib/build.py").read_text(), re.M)
    assert found, "buildpacks/python/lib/build.py has no UV_VERSION"
    return found.group(1)


def pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return env


def wheel_mirror(name: str, requirement_sets: Sequence[str]) -> Path:
    """A directory with the wheels of every set of *requirement_sets* (requirements.txt texts)."""
    key = hashlib.sha256(json.dumps([list(requirement_sets), PLATFORM, PYPI, PYTHON]).encode()).hexdigest()[:16]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"pypi-{name}-{key}"
    if (target / ".complete").exists():
        return target
    with open(root / f"pypi-{name}.lock", "a+b") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        if (target / ".complete").exists():
            return target
        staging = Path(tempfile.mkdtemp(prefix=f".pypi-{name}-", dir=root))
        try:
            for index, text in enumerate(requirement_sets):
                requirements = staging / f".set-{index}.txt"
                requirements.write_text(text)
                done = subprocess.run(
                    [PYTHON, "-m", "pip", "download", "--quiet", "--index-url", PYPI, *PLATFORM,
                     "--dest", str(staging), "--requirement", str(requirements)],
                    env=pip_env(), capture_output=True, text=True, timeout=900, check=False,
                )  # fmt: skip
                if done.returncode != 0:
                    raise AssertionError(f"pip download of {text!r} from {PYPI} failed: {done.stderr[-2000:]}")
                requirements.unlink()
            (staging / ".complete").write_text("")
            shutil.rmtree(target, ignore_errors=True)
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target


def uv_wheel() -> Path:
    """The uv wheel of the buildpack's ``UV_VERSION``."""
    version = uv_version()
    (wheel,) = wheel_mirror(f"uv-{version}", [f"uv=={version}\n"]).glob("uv-*.whl")
    return wheel


def link_or_copy(source: Path, directory: Path) -> Path:
    """*source* in *directory* as a hard link (a copy across filesystems)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / source.name
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
    return target
