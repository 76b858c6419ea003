"""The Python examples of each package manager, built by cnb/python and served (issue 11 "must show").

``examples/python-uv`` (uv.lock), ``python-poetry`` (poetry.lock), ``python-pipenv`` (Pipfile.lock) and
``python-pyproject`` (a PEP 517 project built and installed editable) are built with ``cnb lifecycle create
--sandbox bwrap`` on bookworm, from PyPI (this machine's CA bundle, which trusts its TLS-intercepting proxy, is in
the platform dir and named by ``SSL_CERT_FILE``/``PIP_CERT``). Each image serves its page through ``cnb run`` and
its SBOM lists exactly the locked distributions (the lock's main/default group, for Linux) with ``pkg:pypi``
purls; development groups are not installed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.buildpacks.conftest import LanguageImages
from tests.buildpacks.helpers import create, fetch_page, image_sbom, make_project
from tests.conftest import REPO, Cnb

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
FLASK = {"blinker": "1.9.0", "click": "8.5.1", "flask": "3.1.3", "gunicorn": "23.0.0", "itsdangerous": "2.2.0",
         "jinja2": "3.1.6", "markupsafe": "3.0.4", "packaging": "26.4", "werkzeug": "3.1.9"}  # fmt: skip
STARLETTE = {"anyio": "4.16.0", "click": "8.5.1", "h11": "0.16.0", "idna": "3.21", "starlette": "0.47.3",
             "typing-extensions": "4.16.0", "uvicorn": "0.35.0"}  # fmt: skip
BOTTLE = {"bottle": "0.13.4", "gunicorn": "23.0.0", "packaging": "26.4"}
CASES: dict[str, tuple[str, dict[str, str | None], str | None]] = {
    "python-uv": ("uv.lock", FLASK, "gunicorn serves app:app"),
    "python-poetry": ("poetry.lock", STARLETTE, "uvicorn serves main:app"),
    "python-pipenv": ("Pipfile.lock", BOTTLE, "gunicorn serves app:app"),
    "python-pyproject": ("pyproject.toml", {"hello-pyproject": "0.1.0", "jinja2": "3.1.6", "markupsafe": None}, None),
}


@pytest.mark.integration
@pytest.mark.parametrize("example", sorted(CASES))
def test_example_builds_serves_and_lists_its_locked_dependencies(
    example: str, tmp_path: Path, bp_cnb: Cnb, languages: LanguageImages
) -> None:
    source, expected, process = CASES[example]
    project = make_project(tmp_path, ["python", "procfile"], {},
                           env={"SSL_CERT_FILE": "/platform/ca.pem", "PIP_CERT": "/platform/ca.pem"})  # fmt: skip
    shutil.copytree(REPO / "examples" / example, project.app, dirs_exist_ok=True)
    shutil.copyfile(HOST_CA, project.platform / "ca.pem")
    done = create(bp_cnb, project, languages)
    output = done.stdout + done.stderr
    assert f"cnb/python: requirements from {source}" in output
    if process is not None:
        assert f"cnb/python: web process ({process})" in output
    # the development group is not installed; pytest's own tmp dirs (/tmp/pytest-of-root/pytest-3/…) don't count
    assert re.search(r"(?<![\w/-])pytest(?![\w-])", output) is None, output

    sbom = json.loads(image_sbom(project.layout, "launch/cnb_python/venv/sbom.cdx.json"))
    components = {c["name"].lower().replace("_", "-"): c for c in sbom["components"]}
    assert sorted(components) == sorted(expected)
    for name, version in expected.items():
        component = components[name]
        if version is not None:
            assert component["version"] == version, name
        assert component["purl"] == f"pkg:pypi/{name}@{component['version']}"

    page = fetch_page(bp_cnb, project.output)
    assert f"Hello from cnb! ({example})" in page
