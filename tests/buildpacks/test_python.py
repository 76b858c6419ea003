"""cnb/python end to end: ``cnb lifecycle create --sandbox bwrap`` on bookworm, uv installing.

Packages come from a find-links directory of wheels made by the test (alpha needs beta; Gamma_Pkg), plus the real
uv wheel (:func:`tests.support.wheels.uv_wheel`), in the platform dir (``PIP_FIND_LINKS=/platform/wheels``,
``PIP_NO_INDEX=1``), so the SBOM's licenses and purls are known and no build needs the network. The first build
installs and serves a page through ``cnb run``; a rebuild after a one-line code edit reuses the venv and its SBOM
without running uv and changes only the app layer; removing a requirement works with ``--no-network`` (the venv
updated in place); a requirement no wheel satisfies fails with a clear message. The project-file readers
(lib/project.py), the web process and the SBOM are also unit-tested on the host's Python.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.buildpacks.conftest import LanguageImages
from tests.buildpacks.helpers import (
    Project,
    buildpack_layer_digest,
    create,
    fetch_page,
    image_sbom,
    layer_digests,
    layer_of,
    lifecycle_metadata,
    make_project,
)
from tests.buildpacks.packages import make_wheel
from tests.conftest import REPO, Cnb
from tests.support.wheels import link_or_copy, uv_version, uv_wheel

LIB = REPO / "buildpacks" / "python" / "lib"

APP = """\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import alpha


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("python test app: " + alpha.greet() + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Page).serve_forever()
"""


WHEEL_ENV = {"PIP_FIND_LINKS": "/platform/wheels", "PIP_NO_INDEX": "1"}


@pytest.fixture(scope="module")
def first_build(
    tmp_path_factory: pytest.TempPathFactory, bp_cnb: Cnb, languages: LanguageImages
) -> tuple[Project, str]:
    project = make_project(
        tmp_path_factory.mktemp("python-project"),
        ["python", "procfile"],
        {"app.py": APP, "requirements.txt": "alpha==1.0\nGamma_Pkg==3.0\n"},
        env=WHEEL_ENV,
    )
    wheels = project.platform / "wheels"
    make_wheel(wheels, "alpha", "1.0", requires=["beta>=2"], headers=[("License-Expression", "MIT")],
               code="from beta import NAME\n\ndef greet():\n    return 'hello from alpha 1.0 and ' + NAME\n")  # fmt: skip
    make_wheel(wheels, "beta", "2.0", headers=[("Classifier", "License :: OSI Approved :: BSD License")],
               code="NAME = 'beta 2.0'\n")  # fmt: skip
    make_wheel(wheels, "Gamma_Pkg", "3.0", headers=[("License", "Apache-2.0")])
    link_or_copy(uv_wheel(), wheels)
    done = create(bp_cnb, project, languages)
    return project, done.stdout + done.stderr


@pytest.mark.integration
def test_first_build_installs_serves_and_lists_the_venv(first_build: tuple[Project, str], bp_cnb: Cnb) -> None:
    project, output = first_build
    assert "cnb/python: creating venv" in output
    assert f"cnb/python: uv {uv_version()} from /platform/wheels/uv-{uv_version()}-py3-none-manylinux" in output
    assert " + alpha==1.0\n" in output and " + beta==2.0\n" in output and " + gamma-pkg==3.0\n" in output
    assert "cnb/python: web process (python runs app.py)" in output
    metadata = lifecycle_metadata(project.layout)
    (python,) = [bp for bp in metadata["buildpacks"] if bp["key"] == "cnb/python"]
    assert set(python["layers"]) == {"venv"}  # uv and its cache are cache-only

    sbom = json.loads(image_sbom(project.layout, "launch/cnb_python/venv/sbom.cdx.json"))
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(json.dumps(sbom)) is None
    assert [(c["name"], c["version"], c["purl"], c.get("licenses")) for c in sbom["components"]] == [
        ("alpha", "1.0", "pkg:pypi/alpha@1.0", [{"license": {"id": "MIT"}}]),
        ("beta", "2.0", "pkg:pypi/beta@2.0", [{"license": {"name": "BSD License"}}]),
        ("Gamma_Pkg", "3.0", "pkg:pypi/gamma-pkg@3.0", [{"license": {"id": "Apache-2.0"}}]),
    ]

    page = fetch_page(bp_cnb, project.output)
    assert page == "python test app: hello from alpha 1.0 and beta 2.0\n"


@pytest.mark.integration
def test_rebuilds_reuse_the_venv_and_work_without_the_network(
    first_build: tuple[Project, str], bp_cnb: Cnb, languages: LanguageImages
) -> None:
    project, _ = first_build
    before = layer_digests(project.layout)
    venv_before = buildpack_layer_digest(project.layout, "cnb/python", "venv")
    sbom_before = image_sbom(project.layout, "launch/cnb_python/venv/sbom.cdx.json")

    # one line of app code changes: the venv comes back from the cache as it was, uv does not run; nor does the
    # SBOM scan: the one restored from the cache is kept
    (project.app / "app.py").write_text(APP.replace("python test app", "python test app v2"))
    done = create(bp_cnb, project, languages, "--no-network")
    output = done.stdout + done.stderr
    assert "cnb/python: reusing venv (requirements unchanged)" in output
    assert "cnb/python: uv " not in output and "Resolved" not in output
    assert "cnb/python: SBOM: 3 distribution(s) in venv.sbom.cdx.json (restored with the venv)" in output
    assert image_sbom(project.layout, "launch/cnb_python/venv/sbom.cdx.json") == sbom_before
    after = layer_digests(project.layout)
    app_layer = layer_of(project.layout, lifecycle_metadata(project.layout)["app"][0]["sha"])
    assert [new for old, new in zip(before, after, strict=True) if old != new] == [app_layer]
    assert buildpack_layer_digest(project.layout, "cnb/python", "venv") == venv_before

    # one requirement less, no network: the venv is updated in place, uv (restored from the cache) removes it
    (project.app / "requirements.txt").write_text("alpha==1.0\n")
    done = create(bp_cnb, project, languages, "--no-network")
    output = done.stdout + done.stderr
    assert "cnb/python: updating the venv in place (requirements changed)" in output
    assert "fetching uv" not in output and "from /platform/wheels/uv-" not in output
    assert " - gamma-pkg==3.0\n" in output and " + " not in output
    sbom = json.loads(image_sbom(project.layout, "launch/cnb_python/venv/sbom.cdx.json"))
    assert [c["name"] for c in sbom["components"]] == ["alpha", "beta"]
    assert buildpack_layer_digest(project.layout, "cnb/python", "venv") != venv_before

    # a requirement no wheel satisfies cannot be installed without the network, and says why
    (project.app / "requirements.txt").write_text("alpha==1.0\ndelta==4.0\n")
    done = create(bp_cnb, project, languages, "--no-network", check=False)
    assert done.returncode == 51, done.stderr
    output = done.stdout + done.stderr
    assert "cnb/python: error: uv could not install the packages of requirements.txt" in output
    assert "delta" in output


def script(name: str, *args: str, python: str = sys.executable, cwd: Path | None = None) -> str:
    done = subprocess.run([python, "-B", str(LIB / name), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          check=True)  # fmt: skip
    return done.stdout


def load_lib(name: str) -> ModuleType:
    """A module of lib/ as build.py imports it (by its name, lib/ on sys.path: project.py and projectfiles.py
    import each other); lib/ goes last on sys.path, so no installed module is shadowed."""
    if str(LIB) not in sys.path:
        sys.path.append(str(LIB))
    module = importlib.import_module(name)
    assert Path(module.__file__ or "").parent == LIB, module
    return module


project_py = load_lib("project")
projectfiles_py = load_lib("projectfiles")


def detect(app: Path, work: Path) -> Any:
    work.mkdir(exist_ok=True)
    return project_py.detect(str(app), str(work))


def test_requirements_fingerprint_covers_included_files(tmp_path: Path) -> None:
    app, work = tmp_path / "app", tmp_path / "work"
    (app / "reqs").mkdir(parents=True)
    (app / "requirements.txt").write_text("-r reqs/base.txt\nalpha==1.0\n")
    (app / "reqs" / "base.txt").write_text("--constraint=pins.txt\nbeta\n")
    (app / "reqs" / "pins.txt").write_text("beta==2.0\n")
    found = detect(app, work)
    assert (found.source, found.requirements) == ("requirements.txt", str(app / "requirements.txt"))
    (app / "app.py").write_text("print('code is not a requirement')\n")
    assert detect(app, work).fingerprint == found.fingerprint
    (app / "reqs" / "pins.txt").write_text("beta==2.1\n")
    assert detect(app, work).fingerprint != found.fingerprint
    (app / "reqs" / "pins.txt").unlink()
    with pytest.raises(project_py.ProjectError, match=r"reqs/pins.txt \(included by a requirements file\) does not"):
        detect(app, work)


def test_pyproject_dependencies_a_built_project_or_none(tmp_path: Path) -> None:
    app, work = tmp_path / "app", tmp_path / "work"
    app.mkdir()
    assert detect(app, work).source == "none"
    (app / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\ndependencies = ["alpha>=1", "beta"]\n')
    found = detect(app, work)
    assert found.source == "pyproject.toml" and Path(found.requirements).read_text() == "alpha>=1\nbeta\n"
    (app / "pyproject.toml").write_text('[project]\nname = "y"\nversion = "2"\ndependencies = ["alpha>=1", "beta"]\n')
    assert detect(app, work).fingerprint == found.fingerprint  # name and version are not requirements
    (app / "pyproject.toml").write_text('[project]\nname = "x"\ndynamic = ["dependencies"]\n')
    with pytest.raises(project_py.ProjectError, match="dynamic dependencies but no"):
        detect(app, work)
    (app / "pyproject.toml").write_text(
        '[project]\nname = "x"\nversion = "1"\nrequires-python = ">=3.11"\n'
        '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
    )
    built = detect(app, work)
    assert (built.source, Path(built.requirements).read_text(), built.requires_python) == (
        "pyproject.toml", f"-e {app}\n", ">=3.11")  # fmt: skip
    (app / "pyproject.toml").write_text("[project\n")
    with pytest.raises(project_py.ProjectError, match=re.escape("pyproject.toml is not valid TOML")):
        detect(app, work)


def test_lock_files_win_and_say_what_they_need(tmp_path: Path) -> None:
    app, work = tmp_path / "app", tmp_path / "work"
    app.mkdir()
    (app / "requirements.txt").write_text("alpha\n")
    (app / "Pipfile").write_text("[packages]\nalpha = '*'\n")
    with pytest.raises(project_py.ProjectError, match=re.escape("Pipfile without Pipfile.lock: run `pipenv lock`")):
        detect(app, work)
    (app / "Pipfile.lock").write_text(json.dumps({
        "_meta": {"requires": {"python_version": "3.11"}, "sources": [
            {"name": "pypi", "url": "https://pypi.org/simple", "verify_ssl": True},
            {"name": "mirror", "url": "https://mirror.example/simple", "verify_ssl": True}]},
        "default": {
            "requests": {"version": "==2.32.3", "hashes": ["sha256:aa", "sha256:bb"], "extras": ["socks"],
                         "markers": "python_version >= '3.8'"},
            "local": {"path": "./libs/local", "editable": True},
        },
        "develop": {"pytest": {"version": "==8.0.0"}},
    }))  # fmt: skip
    pipenv = detect(app, work)
    assert pipenv.source == "Pipfile.lock" and pipenv.requires_python == "==3.11.*"
    assert Path(pipenv.requirements).read_text().splitlines() == [
        "--index-url https://pypi.org/simple",
        "--extra-index-url https://mirror.example/simple",
        f"-e {app}/libs/local",
        "requests[socks]==2.32.3 ; python_version >= '3.8' --hash=sha256:aa --hash=sha256:bb",
    ]
    (app / "poetry.lock").write_text("")
    with pytest.raises(
        project_py.ProjectError, match=re.escape("poetry.lock needs the pyproject.toml it was made from")
    ):
        detect(app, work)
    (app / "pyproject.toml").write_text(
        '[tool.poetry]\npackage-mode = false\n[tool.poetry.dependencies]\npython = "^3.11"\n'
        'flask = "^3.0"\nrich = { version = "^13", extras = ["jupyter"], markers = "sys_platform == \'linux\'" }\n'
        'extra-only = { version = "*", optional = true }\n'
    )
    (app / "poetry.lock").write_text(
        '[[package]]\nname = "flask"\nversion = "3.1.0"\n\n[[package]]\nname = "rich"\nversion = "13.9.4"\n\n'
        '[[package]]\nname = "mine"\nversion = "0.1"\n[package.source]\ntype = "directory"\nurl = "mine"\n'
    )
    poetry = detect(app, work)
    assert poetry.source == "poetry.lock"
    assert Path(poetry.requirements).read_text() == "flask\nrich[jupyter] ; sys_platform == 'linux'\n"
    assert Path(poetry.constraints).read_text() == "flask==3.1.0\nrich==13.9.4\n"
    (app / "uv.lock").write_text("version = 1\n")
    uv = detect(app, work)
    assert uv.source == "uv.lock" and uv.requirements == ""
    (app / "uv.lock").write_text("version = 1\nrevision = 2\n")
    assert detect(app, work).fingerprint != uv.fingerprint


@pytest.mark.parametrize(
    ("python_version", "requires", "error"),
    [
        ("3.11", "", None),
        ("3.11.2\n", ">=3.10,<3.13", None),
        ("cpython-3.11", "", None),
        ("3.12", "", r".python-version asks for Python 3.12, but the build image has Python 3.11.2"),
        ("", ">=3.12", r"the project requires Python >=3.12, but the build image has Python 3.11.2"),
        ("pypy3.10", "", r"not a CPython version number"),
        ("", ">=three", r"is not a valid specifier"),
    ],
)
def test_python_version_is_checked(tmp_path: Path, python_version: str, requires: str, error: str | None) -> None:
    if python_version:
        (tmp_path / ".python-version").write_text(python_version)
    if error is None:
        projectfiles_py.check_python(str(tmp_path), requires, (3, 11, 2))
    else:
        with pytest.raises(project_py.ProjectError, match=error):
            projectfiles_py.check_python(str(tmp_path), requires, (3, 11, 2))


@pytest.mark.parametrize(
    ("files", "tools", "command"),
    [
        ({"Procfile": "worker: w\nweb: gunicorn x:y -w 2\n", "app.py": "app = 1\n"}, ["gunicorn"],
         ["/bin/sh", "-c", "gunicorn x:y -w 2", "web"]),
        ({"app.py": "from flask import Flask\napp = Flask(__name__)\n"}, ["gunicorn"],
         ["/bin/sh", "-c", 'exec gunicorn --bind "0.0.0.0:${PORT:-8080}" app:app']),
        ({"wsgi.py": "application: object = make()\n", "app.py": "app = 1\n"}, ["gunicorn"],
         ["/bin/sh", "-c", 'exec gunicorn --bind "0.0.0.0:${PORT:-8080}" wsgi:application']),
        ({"main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}, ["gunicorn", "uvicorn"],
         ["/bin/sh", "-c", 'exec uvicorn --host 0.0.0.0 --port "${PORT:-8080}" main:app']),
        ({"app.py": "from flask import Flask\napp = Flask(__name__)\n"}, [], ["python", "app.py"]),
        ({"server.py": "print(1)\n"}, ["gunicorn"], ["python", "server.py"]),
        ({"requirements.txt": "x\n"}, [], None),
    ],
)  # fmt: skip
def test_web_process(tmp_path: Path, files: dict[str, str], tools: list[str], command: list[str] | None) -> None:
    app, venv = tmp_path / "app", tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for tool in tools:
        (venv / "bin" / tool).write_text("")
    app.mkdir()
    for rel, text in files.items():
        (app / rel).write_text(text)
    launch = tomllib.loads(script("launch.py", str(app), str(venv)))
    if command is None:
        assert launch == {}
    else:
        assert launch == {"processes": [{"type": "web", "command": command, "default": True}]}


def test_sbom_of_a_venv(tmp_path: Path) -> None:
    """Run by the venv's own python: only its site-packages count; licenses from each metadata source."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    (site,) = venv.glob("lib/python*/site-packages")
    dists = {
        "Zope.Interface-6.0": "Name: zope.interface\nVersion: 6.0\nLicense: ZPL 2.1\n",
        "pkg_a-1.0": "Name: pkg_a\nVersion: 1.0\nLicense-Expression: MIT OR Apache-2.0\nLicense: ignored\n",
        "b-2.0": "Name: b\nVersion: 2.0\nLicense: UNKNOWN\nClassifier: License :: OSI Approved :: MIT License\n"
        "Classifier: License :: OSI Approved :: BSD License\nClassifier: Programming Language :: Python\n",
        "c-1.0+local": "Name: c\nVersion: 1.0+local\nLicense: Copyright (c) someone\n  all the text of a license\n",
    }
    for dist, meta in dists.items():
        (site / f"{dist}.dist-info").mkdir()
        (site / f"{dist}.dist-info" / "METADATA").write_text(f"Metadata-Version: 2.1\n{meta}")
    text = script("sbom.py", "1.2.3", python=str(venv / "bin" / "python"))
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    assert script("sbom.py", "1.2.3", python=str(venv / "bin" / "python")) == text  # no timestamp, no serial
    doc = json.loads(text)
    assert doc["metadata"]["tools"]["components"][0]["version"] == "1.2.3"
    assert [(c["name"], c["purl"], c.get("licenses")) for c in doc["components"]] == [
        ("b", "pkg:pypi/b@2.0", [{"license": {"id": "MIT"}}, {"license": {"name": "BSD License"}}]),
        ("c", "pkg:pypi/c@1.0%2Blocal", None),
        ("pkg_a", "pkg:pypi/pkg-a@1.0", [{"expression": "MIT OR Apache-2.0"}]),
        ("zope.interface", "pkg:pypi/zope-interface@6.0", [{"license": {"name": "ZPL 2.1"}}]),
    ]


def run_build_script(app: Path, layers: Path, wheels: Path) -> subprocess.CompletedProcess[str]:
    """bin/build on this machine's Debian python3 (the build image's), offline: uv from *wheels* too."""
    home = layers.parent / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(wheels), "CNB_BUILDPACK_DIR": str(LIB.parent), "CNB_LAYERS_DIR": str(layers)}  # fmt: skip
    return subprocess.run([str(LIB.parent / "bin" / "build")], cwd=app, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


def test_requirements_txt_options_on_the_host(tmp_path: Path) -> None:
    """-r, -c, extras, markers, a local wheel path, --find-links in the file, and hashes, as uv reads them."""
    wheels, vendor, app = tmp_path / "wheels", tmp_path / "app" / "vendor", tmp_path / "app"
    link_or_copy(uv_wheel(), wheels)
    make_wheel(wheels, "alpha", "1.0", requires=["beta>=2", "gamma ; extra == 'fast'", "winonly ; sys_platform == 'win32'"],
               headers=[("Provides-Extra", "fast")])  # fmt: skip
    for version in ("2.0", "2.5"):
        make_wheel(vendor, "beta", version)  # only in the directory the requirements file names
    make_wheel(wheels, "gamma", "1.0")
    local = make_wheel(vendor, "delta", "4.0")
    (app / "requirements.txt").write_text(
        "--find-links ./vendor\n-r base.txt\n-c pins.txt\nalpha[fast]==1.0 ; python_version >= '3.8'\n"
        "./vendor/delta-4.0-py3-none-any.whl\nepsilon==1.0 ; python_version < '3'\n"
    )
    (app / "base.txt").write_text("beta\n")
    (app / "pins.txt").write_text("beta==2.0\n")
    layers = tmp_path / "layers" / "cnb_python"
    layers.mkdir(parents=True)
    done = run_build_script(app, layers, wheels)
    assert done.returncode == 0, done.stdout + done.stderr
    sbom = json.loads((layers / "venv.sbom.cdx.json").read_text())
    assert [(c["name"], c["version"]) for c in sbom["components"]] == [
        ("alpha", "1.0"), ("beta", "2.0"), ("delta", "4.0"), ("gamma", "1.0")
    ]  # fmt: skip

    # hashes: the right one installs, a wrong one stops the build with uv's reason
    right = hashlib.sha256(local.read_bytes()).hexdigest()
    (app / "requirements.txt").write_text(f"delta==4.0 --hash=sha256:{right}\n--find-links ./vendor\n")
    done = run_build_script(app, layers, wheels)
    assert done.returncode == 0, done.stdout + done.stderr
    assert " - alpha==1.0" in done.stderr + done.stdout
    # (checked where a file is installed, as pip does: a distribution the restored venv holds is kept)
    (app / "requirements.txt").write_text(f"delta==4.0 --hash=sha256:{'0' * 64}\n--find-links ./vendor\n")
    fresh = tmp_path / "fresh" / "cnb_python"
    fresh.mkdir(parents=True)
    shutil.copytree(layers / "uv", fresh / "uv")
    done = run_build_script(app, fresh, wheels)
    assert done.returncode == 1
    assert "Hash mismatch" in done.stderr
    assert "cnb/python: error: uv could not install the packages of requirements.txt" in done.stderr
