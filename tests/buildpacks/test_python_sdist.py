"""An sdist with a C extension builds in the bookworm build image and runs on its run image (issue 11 item 2).

The build image carries a compiler and Python's headers (``build-essential``, ``python3-dev`` in
``builders/bookworm/base.toml``); the run image has neither. The sdist is made here (a ``setuptools`` project whose
module is one C file), offered with a real ``setuptools`` wheel from PyPI (fetched once into the test cache) in a
``PIP_FIND_LINKS`` directory, with the index off: uv builds it in an isolated build environment, the venv gets the
compiled module, and ``cnb run`` imports it and calls into C on the run image.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.buildpacks.conftest import LanguageImages
from tests.buildpacks.helpers import create, image_sbom, make_project
from tests.conftest import Cnb
from tests.support.wheels import link_or_copy, uv_wheel, wheel_mirror

C_SOURCE = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *mul(PyObject *self, PyObject *args) {
    long a, b;
    if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
    return PyLong_FromLong(a * b);
}

static PyMethodDef methods[] = {{"mul", mul, METH_VARARGS, "a * b, in C"}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "cnbcext", NULL, -1, methods};
PyMODINIT_FUNC PyInit_cnbcext(void) { return PyModule_Create(&module); }
"""
FILES = {
    "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
    '[project]\nname = "cnbcext"\nversion = "1.0"\n',
    "setup.py": 'from setuptools import Extension, setup\n\nsetup(ext_modules=[Extension("cnbcext", ["cnbcext.c"])])\n',
    "cnbcext.c": C_SOURCE,
    "PKG-INFO": "Metadata-Version: 2.1\nName: cnbcext\nVersion: 1.0\n",
}


def make_sdist(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "cnbcext-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in FILES.items():
            data = text.encode()
            info = tarfile.TarInfo(f"cnbcext-1.0/{name}")
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.integration
def test_an_sdist_with_a_c_extension_compiles_in_the_build_image_and_runs_on_the_run_image(
    tmp_path: Path, bp_cnb: Cnb, languages: LanguageImages
) -> None:
    project = make_project(
        tmp_path, ["python"], {"requirements.txt": "cnbcext==1.0\n"},
        env={"PIP_FIND_LINKS": "/platform/wheels", "PIP_NO_INDEX": "1"},
    )  # fmt: skip
    wheels = project.platform / "wheels"
    make_sdist(wheels)
    for wheel in wheel_mirror("setuptools", ["setuptools>=61\n"]).glob("*.whl"):
        link_or_copy(wheel, wheels)
    link_or_copy(uv_wheel(), wheels)
    assert not list(wheels.glob("cnbcext*.whl"))  # only the source is offered

    done = create(bp_cnb, project, languages, "--no-network")
    assert " + cnbcext==1.0\n" in done.stdout + done.stderr

    sbom = json.loads(image_sbom(project.layout, "launch/cnb_python/venv/sbom.cdx.json"))
    assert [(c["name"], c["version"], c["purl"]) for c in sbom["components"]] == [
        ("cnbcext", "1.0", "pkg:pypi/cnbcext@1.0")
    ]

    program = "import cnbcext; print('product', cnbcext.mul(6, 7), cnbcext.__file__.rsplit('.', 2)[-2])"
    # no process of its own: ``--`` then the command, run by the launcher as given (as the corpus test does)
    run = bp_cnb("run", project.output, "--network", "none", "--", "--", "python", "-c", program, timeout=300)
    assert "product 42 cpython-311-x86_64-linux-gnu" in run.stdout
