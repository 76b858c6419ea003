"""cnb/python without pip: the local resolver (lib/resolve.py) and wheel installer (lib/installer.py) against pip.

bin/build runs on this machine's ``/usr/bin/python3`` (Debian's, with pip 23), as in test_python.py, on wheels made
here: console and GUI entry points, ``.data/scripts`` with a ``#!python`` shebang, ``.data/data``, a platlib wheel,
a module that does not compile, extras, markers, a pre-release and a wheel for another platform. What it installs
is compared with what pip installs from the same wheels into a venv at the same path: the same files with the same
bytes and modes (byte code: the same code objects), the same RECORD entries, the same metadata, scripts that work
the same. An update in place equals a fresh install byte for byte; requirements this resolver does not handle go
to pip, which then decides. The resolver's markers are checked against ``packaging`` itself.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import marshal
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import pip
import pytest
from packaging.markers import Marker, default_environment

from tests.conftest import REPO

BUILDPACK = REPO / "buildpacks" / "python"
PYTHON = "/usr/bin/python3"  # Debian's, like the build image's
MTIME = (1980, 1, 1, 0, 0, 2)


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"cnb_python_{name}", BUILDPACK / "lib" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


resolve = load("resolve")
PK = resolve.load_packaging(os.path.dirname(pip.__file__))


def wheel(
    directory: Path,
    name: str,
    version: str,
    files: dict[str, str],
    *,
    requires: Sequence[str] = (),
    entry_points: str = "",
    tag: str = "py3-none-any",
    purelib: bool = True,
    executable: Sequence[str] = (),
    headers: Sequence[str] = (),
) -> Path:
    """A wheel of *files* (paths inside the archive) with METADATA, WHEEL, entry points and a RECORD."""
    dist = f"{name.replace('-', '_')}-{version}"
    meta = [f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", *(f"{h}\n" for h in headers)]
    meta += [f"Requires-Dist: {r}\n" for r in requires]
    members = {path: text.encode() for path, text in files.items()}
    members[f"{dist}.dist-info/METADATA"] = "".join(meta).encode()
    members[f"{dist}.dist-info/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: cnb-tests\nRoot-Is-Purelib: {str(purelib).lower()}\nTag: {tag}\n".encode()
    )
    if entry_points:
        members[f"{dist}.dist-info/entry_points.txt"] = entry_points.encode()
    rows = [
        f"{p},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},{len(d)}"
        for p, d in members.items()
    ]
    members[f"{dist}.dist-info/RECORD"] = ("\n".join([*rows, f"{dist}.dist-info/RECORD,,"]) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{tag}.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, MTIME)
            info.external_attr = (0o100755 if member in executable else 0o100644) << 16
            archive.writestr(info, data)
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheelhouse the builds find through PIP_FIND_LINKS."""
    w = tmp_path_factory.mktemp("wheels")
    wheel(w, "alpha", "1.0", {
        "alpha/__init__.py": "VERSION = '1.0'\n\ndef gui():\n    print('alpha gui')\n",
        "alpha/cli.py": "import sys\n\nfrom alpha import VERSION\n\ndef main():\n    print('alpha cli', VERSION, sys.argv[1:])\n    return 3\n",
        "alpha/sub/__init__.py": "",
        "alpha/sub/mod.py": "from .. import VERSION as V\n",
        "alpha/py2only.py": "print 'this is not python 3'\n",
        "alpha/data.json": '{"a": 1}\n',
        "alpha-1.0.data/scripts/alpha-tool": "#!python\nimport alpha\nprint('alpha tool', alpha.VERSION)\n",
        "alpha-1.0.data/scripts/alpha-sh": "#!/bin/sh\necho alpha sh\n",
        "alpha-1.0.data/scripts/alpha-plain": "#!python\nprint('not executable in the wheel')\n",
        "alpha-1.0.data/data/share/alpha/readme.txt": "read me\n",
    }, requires=["beta>=2", "gamma; extra == 'fast'", "winonly; sys_platform == 'win32'",
                 "oldpy; python_version < '3'"],
        entry_points="[console_scripts]\nalpha-cli = alpha.cli:main\n\n[gui_scripts]\nalpha-gui = alpha:gui\n",
        executable=["alpha-1.0.data/scripts/alpha-tool", "alpha-1.0.data/scripts/alpha-sh"],
        headers=["License-Expression: MIT", "Provides-Extra: fast"])  # fmt: skip
    for version in ("1.0", "2.0", "3.0rc1"):
        wheel(w, "beta", version, {"beta.py": f"VERSION = {version!r}\n"})
    wheel(w, "beta", "9.0", {"beta.py": "VERSION = '9.0'\n"}, tag="py3-none-win_amd64")
    wheel(w, "gamma", "1.0", {"gamma/__init__.py": "G = 1\n"})
    wheel(w, "delta", "4.0", {"delta/__init__.py": "D = 4\n", "delta/_speed.py": "S = 1\n"}, purelib=False)
    wheel(
        w, "epsilon", "1.0", {"epsilon.py": "E = 1\n"}, entry_points="[console_scripts]\neps = epsilon:E.bit_length\n"
    )
    wheel(w, "zeta", "1.0", {"zeta.py": "Z = 1\n"}, requires=["beta<2"])
    return w


def run_build(app: Path, layers: Path, wheels: Path) -> str:
    """bin/build on this machine, offline from *wheels*; its output."""
    home = layers.parent / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1",
           "PIP_FIND_LINKS": str(wheels), "CNB_BUILDPACK_DIR": str(BUILDPACK), "CNB_LAYERS_DIR": str(layers)}  # fmt: skip
    done = subprocess.run([str(BUILDPACK / "bin" / "build")], cwd=app, env=env, capture_output=True, text=True,
                          timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def pip_install(venv: Path, requirements: Path, wheels: Path) -> None:
    """What pip itself makes of the requirements: a venv without pip, the system pip installing into it."""
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(venv.parent), "PIP_CONFIG_FILE": os.devnull,
           "SOURCE_DATE_EPOCH": "315532801", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}  # fmt: skip
    subprocess.run([PYTHON, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--quiet",
                    "--no-index", "--find-links", str(wheels), "-r", str(requirements)],
                   check=True, env=env, timeout=120, capture_output=True)  # fmt: skip


def snapshot(root: Path) -> dict[str, tuple[str, bytes]]:
    """Relative path -> (mode or "link", content or link target) of everything under *root*."""
    found = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            found[rel] = ("link", os.readlink(path).encode())
        elif path.is_file():
            found[rel] = (oct(path.stat().st_mode & 0o777), path.read_bytes())
    return found


def record(data: bytes) -> dict[str, str]:
    """RECORD path -> hash column."""
    return {line.split(",")[0]: line.split(",")[1] for line in data.decode().splitlines()}


def installed_metadata(venv: Path) -> list[object]:
    """(name, version, requires, entry points, REQUESTED, files) of every distribution, from the venv's python."""
    code = (
        "import json, importlib.metadata as m\n"
        "print(json.dumps(sorted([d.metadata['Name'], d.version, d.requires, sorted(str(e) for e in d.entry_points),"
        " d.read_text('REQUESTED') is not None, sorted(str(f) for f in d.files)] for d in m.distributions())))"
    )
    done = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", code], capture_output=True, text=True, check=True)
    return list(json.loads(done.stdout))


def scripts_output(venv: Path) -> list[tuple[int, str]]:
    results = []
    for script in ("alpha-cli", "alpha-gui", "alpha-tool", "alpha-sh"):
        done = subprocess.run([str(venv / "bin" / script), "x"], capture_output=True, text=True, timeout=30)
        results.append((done.returncode, done.stdout + done.stderr))
    return results


def make_app(root: Path, requirements: str) -> tuple[Path, Path]:
    app, layers = root / "app", root / "layers" / "cnb_python"
    app.mkdir(parents=True, exist_ok=True)
    layers.mkdir(parents=True, exist_ok=True)
    (app / "app.py").write_text("print('hi')\n")
    (app / "requirements.txt").write_text(requirements)
    return app, layers


def test_installs_what_pip_installs(tmp_path: Path, wheels: Path) -> None:
    app, layers = make_app(tmp_path, "alpha[fast,undeclared]==1.0\ndelta==4.0\n")  # pip ignores undeclared
    venv = layers / "venv"
    pip_install(venv, app / "requirements.txt", wheels)
    by_pip, pip_metadata, pip_scripts = snapshot(venv), installed_metadata(venv), scripts_output(venv)
    shutil.rmtree(venv)

    output = run_build(app, layers, wheels)
    assert "pip resolves" not in output and "fetching" not in output
    assert "installing alpha==1.0, beta==2.0, delta==4.0, gamma==1.0" in output
    ours = snapshot(venv)
    assert installed_metadata(venv) == pip_metadata
    assert scripts_output(venv) == pip_scripts
    assert pip_scripts[0] == (3, "alpha cli 1.0 ['x']\n") and pip_scripts[2] == (0, "alpha tool 1.0\n")

    ours = {k: v for k, v in ours.items() if not k.startswith(("env/", "env.launch/"))}  # the launch env files
    assert sorted(ours) == sorted(by_pip)
    site = "lib/python3.11/site-packages/"
    assert f"{site}alpha/__pycache__/cli.cpython-311.pyc" in ours
    assert f"{site}alpha/__pycache__/py2only.cpython-311.pyc" not in ours  # does not compile, as with pip
    assert ours[f"{site}alpha/data.json"] == by_pip[f"{site}alpha/data.json"]
    assert ours["share/alpha/readme.txt"] == by_pip["share/alpha/readme.txt"]
    for rel, (mode, data) in ours.items():
        theirs_mode, theirs = by_pip[rel]
        assert mode == theirs_mode, rel
        if rel.endswith(".pyc"):  # marshal output depends on the compiling process; the code must be the same
            assert data[:16] == theirs[:16] and marshal.loads(data[16:]) == marshal.loads(theirs[16:]), rel
        elif rel.endswith("/RECORD"):
            ours_record, pip_record = record(data), record(theirs)
            assert sorted(ours_record) == sorted(pip_record), rel
            for path, digest in pip_record.items():  # our entry point scripts and INSTALLER differ from pip's
                if (
                    digest
                    and path not in ("../../../bin/alpha-cli", "../../../bin/alpha-gui")
                    and not path.endswith("/INSTALLER")
                ):
                    assert ours_record[path] == digest, (rel, path)
        elif rel in ("bin/alpha-cli", "bin/alpha-gui"):
            assert data.startswith(f"#!{venv}/bin/python\n".encode()), rel  # entry point scripts: ours
        elif not rel.endswith("/INSTALLER"):
            assert data == theirs, rel
    assert ours["bin/alpha-tool"][1].startswith(f"#!{venv}/bin/python\n".encode())
    assert ours["bin/alpha-plain"][0] == "0o644"  # a #!python script keeps the mode it has in the wheel


def test_update_in_place_equals_a_fresh_install(tmp_path: Path, wheels: Path) -> None:
    app, layers = make_app(tmp_path, "alpha[fast]==1.0\ndelta==4.0\n")
    run_build(app, layers, wheels)
    assert (layers / "venv" / "lib" / "python3.11" / "site-packages" / "gamma").is_dir()
    (app / "requirements.txt").write_text("alpha==1.0\nepsilon==1.0\n")
    output = run_build(app, layers, wheels)
    assert "updating the venv in place (requirements changed)" in output
    assert "removing delta, gamma" in output and "installing epsilon==1.0" in output
    assert "venv: 1 installed, 2 removed, 2 unchanged; 2 unused wheel(s) dropped from the cache" in output
    assert sorted(p.name for p in (layers / "wheels").iterdir()) == [
        "alpha-1.0-py3-none-any.whl", "beta-2.0-py3-none-any.whl", "epsilon-1.0-py3-none-any.whl"
    ]  # fmt: skip
    in_place = snapshot(layers)

    shutil.rmtree(layers)
    layers.mkdir()
    output = run_build(app, layers, wheels)
    assert "creating venv" in output and "venv: 3 installed, 0 removed, 0 unchanged" in output
    fresh = snapshot(layers)
    assert sorted(in_place) == sorted(fresh)
    assert {k for k in in_place if in_place[k] != fresh[k]} == set()  # byte code included
    assert not any("gamma" in k or "delta" in k for k in fresh)

    # the same requirements again: nothing runs, the SBOM comes back as it was; a changed SBOM file is remade
    assert "reusing venv (requirements unchanged)" in run_build(app, layers, wheels)
    sbom = layers / "venv.sbom.cdx.json"
    assert "SBOM: 3 distribution(s) in venv.sbom.cdx.json (restored with the venv)" in run_build(app, layers, wheels)
    good = sbom.read_bytes()
    sbom.write_text("{}")
    output = run_build(app, layers, wheels)
    assert "SBOM: 3 distribution(s) in venv.sbom.cdx.json\n" in output and sbom.read_bytes() == good


def test_requirements_it_does_not_handle_go_to_pip(tmp_path: Path, wheels: Path) -> None:
    # zeta needs beta<2: taking the highest beta first is a conflict only pip's backtracking resolves
    app, layers = make_app(tmp_path, "beta\nzeta==1.0\n")
    output = run_build(app, layers, wheels)
    assert "pip resolves the requirements (beta 2.0 conflicts with beta<2)" in output
    names = [(m[0], m[1]) for m in installed_metadata(layers / "venv")]  # type: ignore[index]
    assert names == [("beta", "1.0"), ("zeta", "1.0")]

    # an option pip understands and this resolver does not: a constraints file
    (app / "constraints.txt").write_text("beta==2.0\n")
    (app / "requirements.txt").write_text("-c constraints.txt\nalpha==1.0\n")
    output = run_build(app, layers, wheels)
    assert "pip resolves the requirements (requirements line '-c constraints.txt')" in output
    names = [(m[0], m[1]) for m in installed_metadata(layers / "venv")]  # type: ignore[index]
    assert names == [("alpha", "1.0"), ("beta", "2.0")]

    # back to plain requirements: our resolver again, on top of what pip installed
    (app / "requirements.txt").write_text("alpha==1.0\n")
    output = run_build(app, layers, wheels)
    assert "pip resolves" not in output and "venv: 0 installed, 0 removed, 2 unchanged" in output
    (app / "requirements.txt").unlink()
    output = run_build(app, layers, wheels)
    assert "no requirements" in output and "removing alpha, beta" in output
    assert installed_metadata(layers / "venv") == []


# -- the resolver on its own ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "marker",
    [
        'python_version >= "3.8"', "python_version < '3'", 'sys_platform == "win32"',
        'sys_platform != "win32" and python_version > "3.6"',
        '(os_name == "nt" or platform_system == "Linux") and implementation_name == "cpython"',
        '"linux" in sys_platform', 'platform_machine not in "arm64 aarch64"', 'python_full_version >= "3.11.0rc1"',
        'implementation_version >= "3"', 'extra == "fast"', "extra == 'Fast_Thing' or extra == 'slow'",
        'python_version == "3.11.*"', 'platform_python_implementation == "CPython" and python_version ~= "3.9"',
    ],
)  # fmt: skip
@pytest.mark.parametrize("extra", ["", "fast", "fast-thing"])
def test_markers_evaluate_as_packaging_does(marker: str, extra: str) -> None:
    env = resolve.marker_environment()
    assert env == {k: v for k, v in default_environment().items() if k in env}
    assert resolve.Marker(marker, PK).evaluate({**env, "extra": extra}) == Marker(marker).evaluate({"extra": extra})


def test_resolution_picks_what_pip_picks(wheels: Path, tmp_path: Path) -> None:
    resolver = resolve.Resolver(PK, [str(wheels)])
    chosen = resolver.resolve([resolve.parse_requirement("alpha[fast]==1.0"), resolve.parse_requirement("beta")])
    assert [(c.name, c.version, c.requested) for c in chosen] == [
        ("alpha", "1.0", True), ("beta", "2.0", True), ("gamma", "1.0", False)
    ]  # fmt: skip
    pre = resolve.Resolver(PK, [str(wheels)]).resolve([resolve.parse_requirement("beta>=3.0rc1")])
    assert [(c.name, c.version) for c in pre] == [("beta", "3.0rc1")]  # only a pre-release fits: it is taken
    with pytest.raises(resolve.Missing, match="no wheel of beta>=9"):
        resolve.Resolver(PK, [str(wheels)]).resolve([resolve.parse_requirement("beta>=9")])  # 9.0 is for Windows
    with pytest.raises(resolve.Missing, match="no wheel of nothere"):
        resolve.Resolver(PK, [str(wheels)]).resolve([resolve.parse_requirement("nothere")])

    other = tmp_path / "other"
    wheel(other, "newpy", "1.0", {"newpy.py": ""}, headers=["Requires-Python: >=4"])
    with pytest.raises(resolve.Unsupported, match="requires Python >=4"):
        resolve.Resolver(PK, [str(other)]).resolve([resolve.parse_requirement("newpy")])
    (other / "gamma-2.0.tar.gz").write_bytes(b"")
    with pytest.raises(resolve.Unsupported, match="source archive of gamma"):
        resolve.Resolver(PK, [str(wheels), str(other)]).resolve([resolve.parse_requirement("gamma")])


def test_requirement_files(tmp_path: Path) -> None:
    (tmp_path / "base.txt").write_text("# pinned\nbeta >= 2, <3 ; python_version >= '3'  # comment\n")
    (tmp_path / "requirements.txt").write_text("-r base.txt\nalpha[fast, Other_Extra] \\\n  == 1.0\nGamma (>=1)\n")
    found = resolve.read_requirements(str(tmp_path / "requirements.txt"))
    assert [(r.name, sorted(r.extras), r.specifier, r.marker) for r in found] == [
        ("beta", [], ">= 2, <3", "python_version >= '3'"),
        ("alpha", ["Other_Extra", "fast"], "== 1.0", ""),
        ("Gamma", [], ">=1", ""),
    ]
    for line in ("--index-url https://example.invalid/simple", "-e .", "alpha @ https://example.invalid/a.whl",
                 "alpha==1.0 --hash=sha256:00", "-c constraints.txt", "${ALPHA}"):  # fmt: skip
        (tmp_path / "requirements.txt").write_text(line + "\n")
        with pytest.raises(resolve.Unsupported):
            resolve.read_requirements(str(tmp_path / "requirements.txt"))
