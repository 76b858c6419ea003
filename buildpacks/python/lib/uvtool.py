"""cnb/python: uv (https://docs.astral.sh/uv/), the installer, kept in the cache-only ``uv`` layer.

uv is a standalone binary published as a PyPI wheel (``uv-<version>-py3-none-<platform>.whl``, the binary at
``uv-<version>.data/scripts/uv``). :func:`ensure` takes the binary out of that wheel once: straight from a local
``PIP_FIND_LINKS`` directory that has it (builds without the network), else from the wheel the build image's pip
downloads (``python3 -m pip download --no-deps --only-binary=:all: uv==<version>``) from wherever the build's
packages come from (PyPI, the ``PIP_INDEX_URL`` mirror). The version is ``[metadata] uv-version`` of buildpack.toml (``BP_UV_VERSION`` overrides it).
A build that reuses the venv does not need uv at all.

:func:`environment` passes the pip settings a platform gives (``PIP_INDEX_URL``, ``PIP_EXTRA_INDEX_URL``,
``PIP_FIND_LINKS``, ``PIP_NO_INDEX``, ``PIP_TRUSTED_HOST``, ``PIP_CERT``, ``PIP_PRE``) to uv under its own names;
a ``UV_*`` variable already set wins. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable

from project import Project, write_lines

PIP_TO_UV = {
    "PIP_INDEX_URL": "UV_INDEX_URL",
    "PIP_EXTRA_INDEX_URL": "UV_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST": "UV_INSECURE_HOST",
    "PIP_CERT": "SSL_CERT_FILE",
}
TRUE = ("1", "true", "yes", "on")


class UvError(Exception):
    pass


def environment(cache: str, venv: str) -> tuple[dict[str, str], list[str]]:
    """The environment uv runs in (the build's, pip settings translated, our cache, venv and byte code) and the
    options to add to every install (``--no-index``, which uv takes on the command line only)."""
    env = dict(os.environ)
    options = ["--no-index"] if env.get("PIP_NO_INDEX", "").lower() in TRUE else []
    for pip_name, uv_name in PIP_TO_UV.items():
        if env.get(pip_name) and uv_name not in env:
            env[uv_name] = env[pip_name]
    if env.get("PIP_FIND_LINKS") and "UV_FIND_LINKS" not in env:
        env["UV_FIND_LINKS"] = ",".join(env["PIP_FIND_LINKS"].split())  # pip: spaces, uv: commas
    if env.get("PIP_PRE", "").lower() in TRUE and "UV_PRERELEASE" not in env:
        env["UV_PRERELEASE"] = "allow"
    env.update(
        UV_CACHE_DIR=cache,
        UV_PROJECT_ENVIRONMENT=venv,  # uv sync: the venv layer is the project's environment
        UV_PYTHON_DOWNLOADS="never",  # the build image's Python, never one uv would download
        # Hard links from the unpacked wheels: nothing is written twice. `uv cache prune --ci` then drops the
        # cache's links, so the venv's files are its own before the layers are exported.
        UV_LINK_MODE="hardlink",
        UV_COMPILE_BYTECODE="1",  # as pip does; hash-checked .pyc (SOURCE_DATE_EPOCH), the same bytes every time
        UV_NO_PROGRESS="1",
    )
    env.setdefault("UV_SYSTEM_CERTS", "1")  # the build image's CA store (and SSL_CERT_FILE), as pip uses
    env.setdefault("SOURCE_DATE_EPOCH", "315532801")
    home = env.get("HOME", "")
    if not home or not os.access(home, os.W_OK):
        env["HOME"] = tempfile.mkdtemp(prefix="cnb-python-home-")
    return env, options


def install(
    project: Project,
    work: str | os.PathLike[str],
    *,
    uv_layer: str,
    uv_version: str,
    uv_cache: str,
    venv: str,
    say: Callable[[str], None],
) -> None:
    """Bring *venv* in line with *project* with uv (online, then once more offline from the cache layer); the uv
    binary of *uv_version* in *uv_layer* (:func:`ensure`), its cache *uv_cache*, files it needs written to *work*.
    UvError when uv cannot be had or cannot install."""
    uv = ensure(uv_layer, uv_version, say)
    python = os.path.join(venv, "bin", "python")
    env, options = environment(uv_cache, venv)
    if project.source == "uv.lock":
        args = ["sync", "--locked", "--no-dev", "--python", python, *options]
    else:
        requirements = project.requirements
        if project.source == "none":  # nothing wanted: remove what an earlier build installed
            requirements = write_lines(work, "empty.txt", [])
            args = ["pip", "sync", "--python", python, *options, requirements]
        else:
            # --upgrade: resolve as into an empty venv (the versions the venv holds are no preference), so the
            # result does not depend on what an earlier build left; unchanged distributions stay untouched.
            args = ["pip", "install", "--exact", "--upgrade", "--python", python, *options, "-r", requirements]
        if project.constraints:
            args += ["-c", project.constraints]
    say(f"uv {uv_version}: uv {' '.join(args)}")
    status = run(uv, args, env)
    if status != 0:
        say(f"uv failed (exit {status}, see above); once more offline, from the cache layer")
        status = run(uv, args, env, offline=True)
        if status != 0:
            raise UvError(
                f"uv could not install the packages of {project.source} (exit {status}, see above); a build "
                "without the network needs every package in the cache layer or a PIP_FIND_LINKS directory"
            )
    run(uv, ["cache", "prune", "--ci", "--quiet"], env)


def binary(layer: str) -> str:
    return os.path.join(layer, "bin", "uv")


def ensure(layer: str, version: str, say: Callable[[str], None]) -> str:
    """The uv binary of *version* in the *layer* directory, fetched when the layer lacks it; its path."""
    path = binary(layer)
    stamp = os.path.join(layer, "version")
    try:
        with open(stamp, encoding="utf-8") as handle:
            have = handle.read().strip()
    except OSError:
        have = ""
    if have == version and os.access(path, os.X_OK):
        return path
    shutil.rmtree(layer, ignore_errors=True)
    local = local_wheel(version)
    if local:
        say(f"uv {version} from {local}")
        extract(local, version, path)
    else:
        say(f"fetching uv {version} (python3 -m pip download uv=={version})")
        download(version, path)
    with open(stamp, "w", encoding="utf-8") as handle:
        handle.write(version + "\n")
    return path


def local_wheel(version: str) -> str:
    """The uv wheel of *version* for this machine in a local ``PIP_FIND_LINKS`` directory, when there is one.

    uv's Linux wheels are ``py3-none-manylinux_2_17_<arch>.manylinux2014_<arch>`` (glibc 2.17, older than any
    build image's); anything else (another platform, a URL, no such file) is left to pip."""
    machine = os.uname().machine
    for link in os.environ.get("PIP_FIND_LINKS", "").split():
        directory = link.removeprefix("file://")
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            prefix = f"uv-{version}-py3-none-"
            if name.startswith(prefix) and name.endswith(".whl"):
                tags = name[len(prefix) : -len(".whl")].split(".")
                if any(tag.startswith("manylinux") and tag.endswith("_" + machine) for tag in tags):
                    return os.path.join(directory, name)
    return ""


def extract(wheel: str, version: str, path: str) -> None:
    """The ``uv`` binary of the uv *wheel* at *path*."""
    member = f"uv-{version}.data/scripts/uv"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        with (
            zipfile.ZipFile(wheel) as archive,
            archive.open(member) as source,
            open(path + ".partial", "wb") as target,
        ):
            shutil.copyfileobj(source, target, 1 << 20)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise UvError(f"{os.path.basename(wheel)} has no usable {member}: {exc}") from exc
    os.chmod(path + ".partial", 0o755)
    os.replace(path + ".partial", path)


def download(version: str, path: str) -> None:
    """The uv binary of *version* at *path*, from the wheel the build image's pip downloads."""
    with tempfile.TemporaryDirectory(prefix="cnb-uv-") as tmp:
        argv = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                "--disable-pip-version-check", "--no-input", "--dest", tmp, f"uv=={version}"]  # fmt: skip
        env = dict(os.environ)
        env.setdefault("PIP_RETRIES", "1")
        done = subprocess.run(argv, env=env, check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wheels = [name for name in os.listdir(tmp) if name.endswith(".whl")]
        if done.returncode != 0 or len(wheels) != 1:
            tail = done.stdout.strip().splitlines()[-3:]
            raise UvError(
                f"could not fetch the uv {version} wheel with pip (exit {done.returncode}): {' / '.join(tail)}; a "
                "build without the network needs it in a PIP_FIND_LINKS directory"
            )
        extract(os.path.join(tmp, wheels[0]), version, path)


def run(uv: str, args: list[str], env: dict[str, str], *, offline: bool = False) -> int:
    """Run uv with *args* (its output streams to ours); its exit status."""
    sys.stdout.flush()
    argv = [uv, *args, *(["--offline"] if offline else [])]
    return subprocess.run(argv, env=env, check=False).returncode
