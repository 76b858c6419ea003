"""cnb/python build (Buildpack API 0.12: https://github.com/buildpacks/spec/blob/main/buildpack.md, layer tomls,
launch.toml, SBOM files, env files), in one run of the build image's ``python3`` (``bin/build`` execs it). Standard
library only. What the app's project files mean is :mod:`project` (and :mod:`projectfiles`); uv installs
(:mod:`uvtool`).

Layers of ``<layers>/cnb_python``:

- ``venv/`` (launch, build, cache): the app's virtualenv; metadata = fingerprint of the project files + python.
  Same fingerprint: reused as restored and nothing runs, not even uv ("reusing venv"); the SBOM restored with it
  (``venv.sbom.cdx.json``) is kept when its sha256 is the one recorded in the metadata. Changed: uv brings the venv
  in line in place (``uv pip install --exact --upgrade`` or ``uv sync --locked``: resolved as for an empty venv,
  then only what differs is installed or removed), never rebuilt from scratch while the python is the same.
- ``uv/`` (cache): the uv binary (:func:`uvtool.ensure`), fetched once from the build's package index.
- ``uv-cache/`` (cache): uv's cache, pruned to what a build cannot fetch cheaply (``uv cache prune --ci``: index
  metadata, wheels built from sdists). When the index cannot be reached, uv runs again ``--offline`` from it, so a
  requirement removed, or one whose wheels were built here, needs no network.
- ``venv.sbom.cdx.json``: CycloneDX list of the venv's distributions (``sbom.py``).
"""

from __future__ import annotations

import os
import sys

try:  # CPython's own sha256 (3.11 and older): hashlib would load OpenSSL first, a few ms of every build
    from _sha256 import sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:
    from hashlib import sha256

# Only what a build that reuses the venv needs is imported here; the rest is imported where it is used.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import launch
import project as projects

PREFIX = "cnb/python:"
UV_VERSION = "0.13.10"  # the uv this buildpack is tested with; BP_UV_VERSION overrides it


def say(message: str) -> None:
    print(f"{PREFIX} {message}", flush=True)


def fail(message: str) -> SystemExit:
    return SystemExit(f"{PREFIX} error: {message}")


def toml_values(path: str) -> dict[str, str]:
    """``key = "value"`` lines of a (restored) layer toml: the basic strings this buildpack writes."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except FileNotFoundError:
        return {}
    return dict(item for item in map(string_setting, text.split("\n")) if item is not None)


def string_setting(line: str) -> tuple[str, str] | None:
    """(key, value) of a ``key = "value"`` line whose value has no escapes, else None."""
    key, equals, value = line.partition("=")
    key, value = key.strip(), value.strip()
    if not equals or not key or not key.replace("-", "").replace("_", "").isalnum() or not key.isascii():
        return None
    if len(value) < 2 or value[0] != '"' or value[-1] != '"' or '"' in value[1:-1] or "\\" in value:
        return None
    return key, value[1:-1]


def write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def write_if_changed(path: str, text: str) -> None:
    """Leave a file with the same content untouched: a new mtime would make the exporter hash the layer again."""
    try:
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return
    except OSError:
        pass
    write(path, text)


def rmtree(path: str) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def sha256_file(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return str(sha256(handle.read()).hexdigest())
    except FileNotFoundError:
        return ""


class Work:
    """The run's scratch directory (files written for uv), made when first used as a path (``os.path.join``): a
    build that reuses the venv of a ``requirements.txt`` or ``uv.lock`` app needs none, and ``tempfile`` alone
    costs a few ms of imports."""

    def __init__(self) -> None:
        self.path = ""

    def __fspath__(self) -> str:
        if not self.path:
            import tempfile

            self.path = tempfile.mkdtemp(prefix="cnb-python-")
        return self.path


class Build:
    def __init__(self) -> None:
        self.bp_dir = os.environ.get("CNB_BUILDPACK_DIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        layers = os.environ.get("CNB_LAYERS_DIR")
        if not layers:
            raise fail("CNB_LAYERS_DIR is not set")
        self.layers = layers
        self.app = os.getcwd()
        self.venv = os.path.join(layers, "venv")
        self.python = os.path.join(self.venv, "bin", "python")
        self.uv_layer = os.path.join(layers, "uv")
        self.uv_cache = os.path.join(layers, "uv-cache")
        version = sys.version_info
        self.version = (version[0], version[1], version[2])
        self.python_id = f"{version[0]}.{version[1]}.{version[2]}:{os.path.realpath(sys.executable)}"
        self.bp_version = toml_values(os.path.join(self.bp_dir, "buildpack.toml")).get("version", "unknown")
        self.uv_version = os.environ.get("BP_UV_VERSION") or UV_VERSION

    def create_venv(self) -> None:
        import venv as venvlib

        rmtree(self.venv)
        try:
            venvlib.EnvBuilder(symlinks=True, with_pip=False).create(self.venv)
        except OSError as exc:
            raise fail(f"python3 -m venv --without-pip {self.venv} failed: {exc}") from exc

    def site_packages(self) -> list[str]:
        """The venv's ``lib*/python*/site-packages`` directories (lib64 is a symlink to lib: listed once)."""
        found = []
        for lib in ("lib", "lib64"):
            base = os.path.join(self.venv, lib)
            for name in sorted(os.listdir(base)) if os.path.isdir(base) and not os.path.islink(base) else []:
                site = os.path.join(base, name, "site-packages")
                if name.startswith("python") and os.path.isdir(site):
                    found.append(site)
        return found

    def has_distributions(self) -> bool:
        return any(entry.endswith(".dist-info") for site in self.site_packages() for entry in os.listdir(site))

    def install(self, project: projects.Project, work: Work) -> None:
        """Bring the venv in line with *project* with uv (:func:`uvtool.install`, imported only to install)."""
        import uvtool

        try:
            uvtool.install(project, work, uv_layer=self.uv_layer, uv_version=self.uv_version, uv_cache=self.uv_cache,
                           venv=self.venv, say=say)  # fmt: skip
        except uvtool.UvError as exc:
            raise fail(str(exc)) from exc

    # -- the build ---------------------------------------------------------------------------------------------------

    def run(self) -> None:
        say(f"python {self.python_id.split(':', 1)[0]} ({self.python_id.split(':', 1)[1]})")
        work = Work()
        try:
            self.build(work)
        except projects.ProjectError as exc:
            raise fail(str(exc)) from exc
        finally:
            if work.path:
                rmtree(work.path)

    def build(self, work: Work) -> None:
        project = projects.detect(self.app, work)
        if project.source == "none":
            say("no requirements (uv.lock, poetry.lock, Pipfile.lock, requirements.txt or pyproject.toml)")
        else:
            say(f"requirements from {project.source} (sha256 {project.fingerprint})")
        old = toml_values(os.path.join(self.layers, "venv.toml"))
        have_venv = os.access(self.python, os.X_OK)
        same_python = have_venv and old.get("python") == self.python_id
        reused = same_python and old.get("requirements-sha256") == project.fingerprint
        if reused:
            say("reusing venv (requirements unchanged)")
        else:
            import projectfiles

            projectfiles.check_python(self.app, project.requires_python, self.version)
            if same_python:
                say("updating the venv in place (requirements changed)")
            else:
                if os.path.lexists(self.venv):
                    say("the cached venv was made by another python; making a new one")
                say("creating venv")
                self.create_venv()
            if project.source != "none" or self.has_distributions():
                self.install(project, work)

        # Launch env: the venv's bin/ is on PATH by the spec (a launch layer's bin/); these make it a proper venv.
        for directory, name, value in (("env", "VIRTUAL_ENV.override", self.venv),
                                       ("env.launch", "PYTHONUNBUFFERED.default", "1")):  # fmt: skip
            os.makedirs(os.path.join(self.venv, directory), exist_ok=True)
            write_if_changed(os.path.join(self.venv, directory, name), value)

        sbom_path = os.path.join(self.layers, "venv.sbom.cdx.json")
        sbom_sha = sha256_file(sbom_path) if reused and old.get("buildpack-version") == self.bp_version else ""
        if sbom_sha and sbom_sha == old.get("sbom-sha256"):
            with open(sbom_path, encoding="utf-8") as handle:
                count = handle.read().count('"purl"')
            say(f"SBOM: {count} distribution(s) in venv.sbom.cdx.json (restored with the venv)")
        else:
            import sbom

            text = sbom.render(self.bp_version, self.site_packages())
            write(sbom_path, text)
            sbom_sha = sha256(text.encode()).hexdigest()
            count = text.count('"purl"')
            say(f"SBOM: {count} distribution(s) in venv.sbom.cdx.json")

        metadata = {
            "requirements-source": project.source,
            "requirements-sha256": project.fingerprint,
            "python": self.python_id,
            "buildpack-version": self.bp_version,
            "sbom-sha256": sbom_sha,
        }
        lines = ["[types]", "launch = true", "build = true", "cache = true", "", "[metadata]"]
        lines += [f"{key} = {launch.quoted(value)}" for key, value in metadata.items()]
        write(os.path.join(self.layers, "venv.toml"), "\n".join(lines) + "\n")
        # The uv binary and its cache are declared again every build, or the lifecycle would drop them.
        for layer in (self.uv_layer, self.uv_cache):
            if os.path.isdir(layer):
                write(layer + ".toml", "[types]\ncache = true\n")

        text, message = launch.render(self.app, self.venv)
        print(message, file=sys.stderr, flush=True)
        write(os.path.join(self.layers, "launch.toml"), text)


if __name__ == "__main__":
    Build().run()
