"""cnb/python end to end (issue 4 item 4, item 7 "must show"): ``cnb lifecycle create --sandbox bwrap`` on bookworm.

Packages come from a PyPI simple index on 127.0.0.1 made by the test (alpha needs beta; Gamma_Pkg), so the SBOM's
licenses and purls are known. The first build installs and serves a page through ``cnb run``; a rebuild after a
one-line code edit reuses the venv and its SBOM without pip (index untouched) and changes only the app layer;
removing a requirement works with ``--no-network`` (wheels from the cache layer, the venv updated in place); a new
requirement without the network fails with a clear message. The helper scripts are also unit-tested on the host's
Python; test_python_install.py compares what the buildpack installs without pip with what pip installs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

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
from tests.buildpacks.packages import PyIndex, make_wheel
from tests.conftest import REPO, Cnb

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


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PyIndex]:
    wheels = tmp_path_factory.mktemp("wheels")
    server = PyIndex(tmp_path_factory.mktemp("index"))
    server.add(make_wheel(wheels, "alpha", "1.0", requires=["beta>=2"], headers=[("License-Expression", "MIT")],
                          code="from beta import NAME\n\ndef greet():\n    return 'hello from alpha 1.0 and ' + NAME\n"))  # fmt: skip
    server.add(make_wheel(wheels, "beta", "2.0", headers=[("Classifier", "License :: OSI Approved :: BSD License")],
                          code="NAME = 'beta 2.0'\n"))  # fmt: skip
    server.add(make_wheel(wheels, "Gamma_Pkg", "3.0", headers=[("License", "Apache-2.0")]))
    server.add(make_wheel(wheels, "delta", "4.0"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def first_build(
    tmp_path_factory: pytest.TempPathFactory, bp_cnb: Cnb, languages: LanguageImages, index: PyIndex
) -> tuple[Project, str]:
    project = make_project(
        tmp_path_factory.mktemp("python-project"),
        ["python", "procfile"],
        {"app.py": APP, "requirements.txt": "alpha==1.0\nGamma_Pkg==3.0\n"},
        env={"PIP_INDEX_URL": index.index_url},
    )
    done = create(bp_cnb, project, languages)
    return project, done.stdout + done.stderr


@pytest.mark.integration
def test_first_build_installs_serves_and_lists_the_venv(first_build: tuple[Project, str], bp_cnb: Cnb) -> None:
    project, output = first_build
    assert "cnb/python: creating venv" in output
    assert "cnb/python: installing Gamma_Pkg==3.0, alpha==1.0, beta==2.0" in output
    assert "cnb/python: web process (python runs app.py)" in output
    metadata = lifecycle_metadata(project.layout)
    (python,) = [bp for bp in metadata["buildpacks"] if bp["key"] == "cnb/python"]
    assert set(python["layers"]) == {"venv"}  # wheels and pip are cache-only

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
    first_build: tuple[Project, str], bp_cnb: Cnb, languages: LanguageImages, index: PyIndex
) -> None:
    project, _ = first_build
    before = layer_digests(project.layout)
    venv_before = buildpack_layer_digest(project.layout, "cnb/python", "venv")
    asked = len(index.requests)
    sbom_before = image_sbom(project.layout, "launch/cnb_python/venv/sbom.cdx.json")

    # one line of app code changes: the venv comes back from the cache as it was, pip does not run; nor does the
    # SBOM scan: the one restored from the cache is kept
    (project.app / "app.py").write_text(APP.replace("python test app", "python test app v2"))
    done = create(bp_cnb, project, languages)
    output = done.stdout + done.stderr
    assert "cnb/python: reusing venv (requirements unchanged)" in output
    assert "installing" not in output and "removing" not in output
    assert "cnb/python: SBOM: 3 distribution(s) in venv.sbom.cdx.json (restored with the venv)" in output
    assert image_sbom(project.layout, "launch/cnb_python/venv/sbom.cdx.json") == sbom_before
    assert len(index.requests) == asked
    after = layer_digests(project.layout)
    app_layer = layer_of(project.layout, lifecycle_metadata(project.layout)["app"][0]["sha"])
    assert [new for old, new in zip(before, after, strict=True) if old != new] == [app_layer]
    assert buildpack_layer_digest(project.layout, "cnb/python", "venv") == venv_before

    # one requirement less, no network: the venv is updated in place from the cached wheels
    (project.app / "requirements.txt").write_text("alpha==1.0\n")
    done = create(bp_cnb, project, languages, "--no-network")
    output = done.stdout + done.stderr
    assert "cnb/python: updating the venv in place (requirements changed)" in output
    assert "cnb/python: removing Gamma_Pkg" in output
    assert "cnb/python: venv: 0 installed, 1 removed, 2 unchanged" in output
    assert len(index.requests) == asked
    sbom = json.loads(image_sbom(project.layout, "launch/cnb_python/venv/sbom.cdx.json"))
    assert [c["name"] for c in sbom["components"]] == ["alpha", "beta"]
    assert buildpack_layer_digest(project.layout, "cnb/python", "venv") != venv_before

    # a requirement the cache has never seen cannot be installed without the network, and says why
    (project.app / "requirements.txt").write_text("alpha==1.0\ndelta==4.0\n")
    done = create(bp_cnb, project, languages, "--no-network", check=False)
    assert done.returncode == 51, done.stderr
    assert "a build without the network needs every wheel in the cache layer" in done.stdout + done.stderr


def script(name: str, *args: str, python: str = sys.executable, cwd: Path | None = None) -> str:
    done = subprocess.run([python, "-B", str(LIB / name), *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          check=True)  # fmt: skip
    return done.stdout


def test_requirements_fingerprint_covers_included_files(tmp_path: Path) -> None:
    app, work = tmp_path / "app", tmp_path / "work"
    (app / "reqs").mkdir(parents=True)
    work.mkdir()
    (app / "requirements.txt").write_text("-r reqs/base.txt\nalpha==1.0\n")
    (app / "reqs" / "base.txt").write_text("--constraint=pins.txt\nbeta\n")
    (app / "reqs" / "pins.txt").write_text("beta==2.0\n")
    source, sha, path = script("requirements.py", str(app), str(work)).split()
    assert (source, path) == ("requirements.txt", str(app / "requirements.txt"))
    (app / "app.py").write_text("print('code is not a requirement')\n")
    assert script("requirements.py", str(app), str(work)).split()[1] == sha
    (app / "reqs" / "pins.txt").write_text("beta==2.1\n")
    assert script("requirements.py", str(app), str(work)).split()[1] != sha


def test_requirements_from_pyproject_or_none(tmp_path: Path) -> None:
    app, work = tmp_path / "app", tmp_path / "work"
    app.mkdir()
    work.mkdir()
    assert script("requirements.py", str(app), str(work)).split() == ["none", "-", "-"]
    (app / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\ndependencies = ["alpha>=1", "beta"]\n')
    source, sha, path = script("requirements.py", str(app), str(work)).split()
    assert source == "pyproject.toml" and Path(path).read_text() == "alpha>=1\nbeta\n"
    (app / "pyproject.toml").write_text('[project]\nname = "y"\nversion = "2"\ndependencies = ["alpha>=1", "beta"]\n')
    assert script("requirements.py", str(app), str(work)).split()[1] == sha  # name and version are not requirements
    (app / "pyproject.toml").write_text('[project]\nname = "x"\ndynamic = ["dependencies"]\n')
    assert script("requirements.py", str(app), str(work)).split()[0] == "none"


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


def host_env(tmp_path: Path, index: PyIndex, **extra: str) -> dict[str, str]:
    """What bin/build and lib/sync.py see when run on this machine: no pip config of the host, the test index."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "PIP_CONFIG_FILE": os.devnull,
            "PIP_INDEX_URL": index.index_url, **extra}  # fmt: skip


def tree(root: Path, old: bytes, new: bytes) -> dict[str, bytes]:
    """Relative path -> content (symlink target) of every file under *root*, with *old* path bytes renamed *new*."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(root))] = os.readlink(path).encode()
        elif path.is_file():
            found[str(path.relative_to(root))] = path.read_bytes().replace(old, new)
    return found


def test_sync_updates_in_place_to_exactly_a_fresh_install(tmp_path: Path, index: PyIndex) -> None:
    pip_dir = subprocess.run(["/usr/bin/python3", "-c", "import os, pip; print(os.path.dirname(pip.__file__))"],
                             capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    wheels = tmp_path / "wheels"
    (tmp_path / "two.txt").write_text("alpha==1.0\nGamma_Pkg==3.0\n")
    (tmp_path / "one.txt").write_text("alpha==1.0\n")
    env = host_env(tmp_path, index)

    def sync(venv: Path, requirements: str) -> str:
        if not venv.exists():
            venv.parent.mkdir()
            subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
        done = subprocess.run([str(venv / "bin" / "python"), "-B", str(LIB / "sync.py"), pip_dir, str(wheels),
                               str(tmp_path / requirements)], capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    first = sync(tmp_path / "a" / "venv", "two.txt")
    assert "fetching wheels" in first and "venv: 3 installed, 0 removed, 0 unchanged" in first
    assert sorted(p.name for p in wheels.iterdir()) == [
        "Gamma_Pkg-3.0-py3-none-any.whl", "alpha-1.0-py3-none-any.whl", "beta-2.0-py3-none-any.whl"
    ]  # fmt: skip
    second = sync(tmp_path / "a" / "venv", "one.txt")
    assert "fetching" not in second
    assert "removing Gamma_Pkg" in second and "venv: 0 installed, 1 removed, 2 unchanged" in second
    assert "1 unused wheel(s) dropped from the cache" in second
    asked = len(index.requests)
    fresh = sync(tmp_path / "b" / "venv", "one.txt")
    assert "fetching" not in fresh and len(index.requests) == asked
    in_place = tree(tmp_path / "a" / "venv", b"/a/venv", b"/b/venv")
    assert in_place == tree(tmp_path / "b" / "venv", b"", b"")
    assert any(name.endswith(".pyc") for name in in_place)


def test_build_script_without_a_pip_in_the_image(tmp_path: Path, index: PyIndex) -> None:
    """bin/build run by this machine's dash: a python3 without pip makes the pip layer once, then reuses it."""
    shim = tmp_path / "shim"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(tmp_path / "nopip")], check=True)
    shim.mkdir()
    (shim / "python3").write_text(f'#!/bin/sh\nexec {tmp_path}/nopip/bin/python "$@"\n')
    (shim / "python3").chmod(0o755)
    app, layers = tmp_path / "app", tmp_path / "layers" / "cnb_python"
    app.mkdir()
    layers.mkdir(parents=True)
    (app / "main.py").write_text("print('hi')\n")
    (app / "requirements.txt").write_text("alpha==1.0\n")
    env = host_env(tmp_path, index, PATH=f"{shim}:/usr/bin:/bin", CNB_BUILDPACK_DIR=str(LIB.parent),
                   CNB_LAYERS_DIR=str(layers))  # fmt: skip

    def build() -> str:
        done = subprocess.run([str(LIB.parent / "bin" / "build")], cwd=app, env=env, capture_output=True, text=True,
                              timeout=180)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + done.stderr

    first = build()
    assert "creating the pip tool layer" in first and "creating venv" in first
    assert f"from {layers}/pip/lib/" in first
    assert tomllib.loads((layers / "pip.toml").read_text())["types"] == {"cache": True}
    assert tomllib.loads((layers / "wheels.toml").read_text())["types"] == {"cache": True}
    venv_toml = tomllib.loads((layers / "venv.toml").read_text())
    assert venv_toml["types"] == {"launch": True, "build": True, "cache": True}
    assert venv_toml["metadata"]["requirements-source"] == "requirements.txt"
    assert (layers / "venv" / "env" / "VIRTUAL_ENV.override").read_text() == str(layers / "venv")
    assert tomllib.loads((layers / "launch.toml").read_text())["processes"][0]["command"] == ["python", "main.py"]
    assert "reusing venv (requirements unchanged)" in build()
    (app / "requirements.txt").write_text("alpha==1.0\nGamma_Pkg==3.0\n")
    third = build()
    assert "updating the venv in place" in third and "creating the pip tool layer" not in third
    assert "venv: 1 installed, 0 removed, 2 unchanged" in third
