"""cnb/python: bring the venv in line with the requirements with pip, changing only what differs (CNB-SPEC §3.4).

``build.py`` hands over to this when its own resolver (``resolve.py``) cannot do the job: an option in the
requirements, an sdist, a conflict to backtrack on, pip configuration files… Run by the venv's own interpreter:
``VENV/bin/python -B sync.py PIP_DIR WHEELS REQUIREMENTS``, where PIP_DIR is the ``pip`` package directory to run
(the build image's own pip, or the cache-only ``pip`` tool layer's) and WHEELS is the cache-only wheelhouse layer.

1. Resolve the requirements against the wheelhouse alone (``pip install --dry-run --ignore-installed --report
   --no-index --find-links WHEELS``): no network. Only when that fails (a wheel is missing) are the wheels downloaded
   or built into the wheelhouse (``pip wheel``, the one step that needs the network); then resolve offline again.
2. Compare the resolution with what the venv holds: uninstall the distributions no longer wanted, install
   (``--no-deps``, from the wheelhouse) those missing or at another version, leave the rest alone. So removing one
   requirement costs one resolution and one uninstall, not a new venv.
3. Delete the wheels the resolution did not use, so the cache layer holds what the venv is made of.

Byte code is written hash-checked (``SOURCE_DATE_EPOCH``), so the same wheels give the same layer bytes.
Standard library only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from importlib import metadata
from urllib.parse import unquote, urlparse

from resolve import canonical  # this directory: one PEP 503 rule for the whole buildpack

PREFIX = "cnb/python:"


def pip_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("SOURCE_DATE_EPOCH", "315532801")
    env.update(PIP_NO_INPUT="1", PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_ROOT_USER_ACTION="ignore")
    env.setdefault("PIP_PROGRESS_BAR", "off")
    env.setdefault("PIP_RETRIES", "2")  # pip's 5 retries with backoff take ~15 s to say the network is off
    return env


def pip(pip_dir: str, *args: str, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run pip against this venv; output streams unless *quiet*.

    This interpreter runs pip's ``__pip-runner__.py`` (pip >= 22.3, what ``pip --python`` itself starts): pip is
    imported from *pip_dir* (the build image's or the tool layer's) and installs into this venv, which has no pip.
    """
    argv = [sys.executable, os.path.join(pip_dir, "__pip-runner__.py"), *args]
    if quiet:
        return subprocess.run(argv, env=pip_env(), capture_output=True, text=True, check=False)
    sys.stdout.flush()
    return subprocess.run(argv, env=pip_env(), text=True, check=False)


def resolve(pip_dir: str, wheels: str, requirements: str, report: str) -> tuple[bool, str]:
    """Resolve offline from the wheelhouse; (resolved, pip's last error line)."""
    done = pip(
        pip_dir, "install", "--dry-run", "--ignore-installed", "--quiet", "--report", report,
        "--no-index", "--find-links", wheels, "--requirement", requirements, quiet=True,
    )  # fmt: skip
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
    return done.returncode == 0, errors[-1] if errors else done.stderr.strip()[-300:]


def resolution(pip_dir: str, wheels: str, requirements: str) -> list[dict[str, str]]:
    """[{name, version, file}] of the full resolution, fetching missing wheels when needed."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "report.json")
        if any(name.endswith(".whl") for name in os.listdir(wheels)):
            ok, why = resolve(pip_dir, wheels, requirements, report)
        else:
            ok, why = False, "it is empty"
        if not ok:
            print(f"{PREFIX} the wheel cache cannot satisfy the requirements ({why}); fetching wheels", flush=True)
            fetched = pip(pip_dir, "wheel", "--no-cache-dir", "--wheel-dir", wheels, "--find-links", wheels,
                          "--requirement", requirements)  # fmt: skip
            if fetched.returncode != 0:
                raise SystemExit(
                    f"{PREFIX} error: pip could not download or build the wheels (exit {fetched.returncode}, see "
                    "above); a build without the network needs every wheel in the cache layer"
                )
            ok, why = resolve(pip_dir, wheels, requirements, report)
            if not ok:
                raise SystemExit(f"{PREFIX} error: pip could not resolve the requirements from the wheels: {why}")
        with open(report, encoding="utf-8") as handle:
            data = json.load(handle)
    wanted = []
    for item in data.get("install", []):
        meta = item["metadata"]
        url = item.get("download_info", {}).get("url", "")
        path = unquote(urlparse(url).path) if url.startswith("file:") else ""
        wanted.append({"name": meta["name"], "version": meta["version"], "file": path})
    return wanted


def installed() -> dict[str, tuple[str, str]]:
    """canonical name -> (name, version) of the distributions in this venv's site-packages."""
    paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    found = {}
    for dist in metadata.distributions(path=paths):
        name = dist.metadata["Name"]
        if name:
            found[canonical(name)] = (name, dist.version)
    return found


def prune(wheels: str, keep: set[str]) -> int:
    removed = 0
    for entry in os.scandir(wheels):
        if entry.is_file(follow_symlinks=False) and os.path.realpath(entry.path) not in keep:
            os.unlink(entry.path)
            removed += 1
    return removed


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: sync.py PIP_DIR WHEELS REQUIREMENTS", file=sys.stderr)
        return 2
    pip_dir, wheels, requirements = argv[1:]
    os.makedirs(wheels, exist_ok=True)
    wanted = resolution(pip_dir, wheels, requirements)
    have = installed()
    want = {canonical(w["name"]): w for w in wanted}
    remove = sorted(have[key][0] for key in have if key not in want)
    add = sorted(
        f"{w['name']}=={w['version']}" for key, w in want.items() if have.get(key, ("", ""))[1] != w["version"]
    )
    if remove:
        print(f"{PREFIX} removing {', '.join(remove)}", flush=True)
        if pip(pip_dir, "uninstall", "--yes", *remove).returncode != 0:
            raise SystemExit(f"{PREFIX} error: pip uninstall failed")
    if add:
        print(f"{PREFIX} installing {', '.join(add)}", flush=True)
        done = pip(pip_dir, "install", "--no-deps", "--no-index", "--find-links", wheels, *add)
        if done.returncode != 0:
            raise SystemExit(f"{PREFIX} error: pip install failed (exit {done.returncode})")
    pruned = prune(wheels, {os.path.realpath(w["file"]) for w in wanted if w["file"]})
    unchanged = len(want) - len(add)
    print(f"{PREFIX} venv: {len(add)} installed, {len(remove)} removed, {unchanged} unchanged"
          + (f"; {pruned} unused wheel(s) dropped from the cache" if pruned else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
