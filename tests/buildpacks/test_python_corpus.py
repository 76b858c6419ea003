"""cnb/python on a corpus of real requirement sets (issue 11 "must show"): what uv installs is what pip installs,
and everything installed imports inside the image.

The sets are :data:`tests.buildpacks.python_corpus.SETS`; their wheels come from a mirror fetched once per machine
(:func:`tests.support.wheels.wheel_mirror`), handed to the builds as a find-links directory in the platform dir
(``PIP_FIND_LINKS=/platform/wheels``, ``PIP_NO_INDEX=1``, with the uv wheel the buildpack fetches), so no build
needs the network. One project builds every set in turn with ``cnb lifecycle create --sandbox bwrap`` and one
build cache, as a platform rebuilding an app would: each build is its own resolution (uv ``--exact --upgrade``,
as for an empty venv) and updates the restored venv in place.

For each set:

- the distributions and versions in the image's venv (``importlib.metadata``, run in the image) equal those of
  ``pip install --dry-run --report`` with the build image's Python (Debian's ``/usr/bin/python3``, 3.11.2, and its
  pip) from the same mirror;
- every top-level import name of every installed distribution (its RECORD: top-level modules, packages and
  extension modules) imports in the image: ``cnb run IMAGE -- -- python -c …``. The image has no default process,
  so the launcher runs the given command, and its own ``--`` makes that a direct exec with no shell evaluating the
  script (platform spec: https://github.com/buildpacks/spec/blob/main/platform.md#launcher).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.buildpacks.conftest import LanguageImages
from tests.buildpacks.helpers import Project, create, make_project, unpacked_for_this_run
from tests.buildpacks.python_corpus import SETS
from tests.conftest import Cnb
from tests.support.wheels import link_or_copy, uv_wheel, wheel_mirror

PYTHON = "/usr/bin/python3"  # Debian's, like the build image's
MARKER = "CORPUS-RESULT "
CHECK = r"""
import importlib, json, os, sys
from importlib import metadata
venv = os.environ["VIRTUAL_ENV"]
site = [p for p in sys.path if p.startswith(venv) and p.endswith("site-packages")]
dists, names = {}, set()
for dist in metadata.distributions(path=site):
    dists[dist.metadata["Name"]] = dist.version
    for file in dist.files or []:
        parts = file.parts
        top = parts[0]
        if top in ("..", "__pycache__") or top.endswith((".dist-info", ".data", ".libs", ".pth")):
            continue
        if len(parts) == 1 and top.endswith(".py"):
            names.add(top[:-3])
        elif len(parts) == 1 and top.endswith(".so"):
            names.add(top.split(".")[0])
        elif len(parts) > 1 and top.isidentifier() and parts[-1].endswith((".py", ".so")):
            names.add(top)
failures = {}
for name in sorted(names):
    try:
        importlib.import_module(name)
    except BaseException as exc:
        failures[name] = f"{type(exc).__name__}: {exc}"
print("CORPUS-RESULT " + json.dumps({"dists": dists, "names": sorted(names), "failures": failures}))
"""
# Top-level modules that import a distribution their own does not require (an extra, or a host package they plug
# into), with what they need: not installed by the sets here, as pip would not install it either.
NEEDS_MORE = {"blackd": "black[d] (aiohttp)", "matplotlib_inline": "matplotlib, which matplotlib-inline plugs into"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pip_resolution(mirror: Path, requirements: str, work: Path) -> dict[str, str]:
    """canonical name -> version of what pip installs for *requirements* from *mirror* (a dry run)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "requirements.txt").write_text(requirements)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(work), "PIP_CONFIG_FILE": os.devnull,
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip
    done = subprocess.run(
        [PYTHON, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report", "-",
         "--no-index", "--find-links", str(mirror), "--requirement", str(work / "requirements.txt")],
        env=env, capture_output=True, text=True, timeout=600, check=True,
    )  # fmt: skip
    report = json.loads(done.stdout)
    return {canonical(item["metadata"]["name"]): item["metadata"]["version"] for item in report["install"]}


@pytest.fixture(scope="module")
def mirror() -> Path:
    return wheel_mirror("corpus", list(SETS.values()))


@pytest.fixture(scope="module")
def pip_results(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[dict[str, str]]]:
    """pip's resolution of every set, computed on the side while the builds run."""
    work = tmp_path_factory.mktemp("pip")
    pool = ThreadPoolExecutor(max_workers=1)
    return {name: pool.submit(pip_resolution, mirror, text, work / name) for name, text in SETS.items()}


@pytest.fixture(scope="module")
def project(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Project:
    made = make_project(tmp_path_factory.mktemp("corpus"), ["python"], {"requirements.txt": ""},
                        env={"PIP_FIND_LINKS": "/platform/wheels", "PIP_NO_INDEX": "1"})  # fmt: skip
    for wheel in [*mirror.glob("*.whl"), uv_wheel()]:
        link_or_copy(wheel, made.platform / "wheels")
    return made


def test_the_corpus_is_big_enough(mirror: Path) -> None:
    assert len(SETS) >= 30
    assert len(list(mirror.glob("*.whl"))) > 150


@pytest.mark.integration
@pytest.mark.parametrize("name", list(SETS))
def test_installs_what_pip_installs_and_all_of_it_imports(
    name: str,
    project: Project,
    pip_results: dict[str, Future[dict[str, str]]],
    bp_cnb: Cnb,
    languages: LanguageImages,
) -> None:
    (project.app / "requirements.txt").write_text(SETS[name])
    done = create(bp_cnb, project, languages, "--no-network")
    assert "cnb/python: requirements from requirements.txt" in done.stdout + done.stderr
    with unpacked_for_this_run(bp_cnb):
        run = bp_cnb("run", project.output, "--network", "none", "--", "--", "python", "-c", CHECK, timeout=600)
    (line,) = [line for line in run.stdout.splitlines() if line.startswith(MARKER)]
    result = json.loads(line[len(MARKER) :])

    installed = {canonical(dist): version for dist, version in result["dists"].items()}
    assert installed == pip_results[name].result()
    assert result["names"], "no top-level import names found"
    failures = {module: why for module, why in result["failures"].items() if module not in NEEDS_MORE}
    assert failures == {}


def test_at_least_ten_sets_have_over_fifteen_distributions(
    pip_results: dict[str, Future[dict[str, str]]],
) -> None:
    sizes = {name: len(future.result()) for name, future in pip_results.items()}
    assert len([name for name, size in sizes.items() if size > 15]) >= 10, sizes
