"""The documentation a newcomer needs lives in the repository: every package says what it is for."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_has_a_docstring() -> None:
    packages = sorted((ROOT / "cnbplatform").rglob("__init__.py"))
    assert len(packages) > 10
    missing = [str(p.relative_to(ROOT)) for p in packages if not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    return [ROOT / n.decode() for n in names if n and (ROOT / n.decode()).is_file()]


def test_no_tracked_file_names_documents_outside_the_repository() -> None:
    """The design and spec notes live in docs/; nothing points at files a person who clones the repo lacks."""
    forbidden = ["../" + "shared", "DESIGN" + ".md", "CNB" + "-SPEC"]
    files = _tracked_text_files()
    assert len(files) > 100
    offenders = []
    for path in files:
        data = path.read_bytes()
        offenders += [f"{path.relative_to(ROOT)}: {word}" for word in forbidden if word.encode() in data]
    assert offenders == []


def unnamed_packages(design: str, package_root: Path) -> list[str]:
    """The packages and sub-packages under *package_root* (``oci``, ``oci/layers``) *design* does not name as
    `` `oci/` `` or `` `oci/layers/` ``."""
    packages = [p.parent for p in package_root.rglob("__init__.py") if "templates" not in p.parts]
    names = sorted(str(p.relative_to(package_root)) for p in packages if p != package_root)
    return [n for n in names if f"`{n}/`" not in design]


def unnamed_folders(design: str, root: Path) -> list[str]:
    """The top-level folders of the tree *root* and the folders of its ``tests/`` that *design* does not name (a
    folder of tests/ named after a package of cnbplatform/ is named by the package's row)."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True).stdout.split(b"\0")
    parts = [Path(n.decode()).parts for n in tracked if n]
    top = sorted({p[0] for p in parts if len(p) > 1 and not p[0].startswith(".")} - {"cnbplatform"})
    tests = sorted({p[1] for p in parts if len(p) > 2 and p[0] == "tests"})
    missing = [f"{name}/" for name in top if f"`{name}/`" not in design]
    packages = {p.name for p in (root / "cnbplatform").iterdir() if (p / "__init__.py").is_file()}
    return missing + [f"tests/{n}/" for n in tests if n not in packages and f"`tests/{n}/`" not in design]


def test_the_design_names_every_package_and_where_its_tests_are() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    assert unnamed_packages(design, ROOT / "cnbplatform") == []
    assert unnamed_folders(design, ROOT) == []
    assert "tests/e2e/" in design and "tests/cli/" in design


def test_the_check_catches_a_package_the_design_does_not_name(tmp_path: Path) -> None:
    """A test of the test: a package and a sub-package the design text leaves out are reported."""
    for name in ("oci", "oci/layers", "oci/extra", "newpkg"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "__init__.py").write_text('"""x"""\n')
    design = "| `oci/` | … | `oci/layers/` …"
    assert unnamed_packages(design, tmp_path) == ["newpkg", "oci/extra"]


_PATH = re.compile(r"`([A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*/?)`")


def stale_paths(text: str, root: Path) -> list[str]:
    """The paths in backquotes in *text* that start with a folder of *root* or a package of cnbplatform/
    (``cnbplatform/oci/model.py``, ``tests/e2e/``, ``cli/options.py``) and name nothing in the tree."""
    tops = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    packages = {p.name for p in (root / "cnbplatform").iterdir() if (p / "__init__.py").is_file()}
    stale = []
    for match in _PATH.finditer(text):
        path = match.group(1)
        first = path.split("/", 1)[0]
        if "/" not in path or first in ("bin", "launch", "build", "cache"):  # buildpack and layer paths, not ours
            continue
        if re.search(r"/v\d", path):  # a tag of the spec repository: platform/v0.7
            continue
        if first in tops and (root / path).exists():
            continue
        if first in packages and (root / "cnbplatform" / path).exists():
            continue
        if first in tops or first in packages:
            stale.append(path)
    return stale


def test_the_docs_name_only_files_that_exist() -> None:
    docs = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    stale = [f"{doc.relative_to(ROOT)}: {path}" for doc in docs for path in stale_paths(doc.read_text(), ROOT)]
    assert stale == []


def test_the_check_catches_a_stale_path(tmp_path: Path) -> None:
    """A test of the test: a moved module named in the docs is reported; what exists is not."""
    (tmp_path / "cnbplatform" / "oci" / "rootfs").mkdir(parents=True)
    (tmp_path / "cnbplatform" / "oci" / "__init__.py").write_text("")
    (tmp_path / "cnbplatform" / "oci" / "rootfs" / "unpack.py").write_text("")
    text = "`cnbplatform/oci/unpack.py`, `cnbplatform/oci/rootfs/unpack.py`, `oci/rootfs/`, `oci/gone.py`, `bin/detect`"
    assert stale_paths(text, tmp_path) == ["cnbplatform/oci/unpack.py", "oci/gone.py"]
