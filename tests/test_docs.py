"""The documentation a newcomer needs lives in the repository: every package says what it is for."""

from __future__ import annotations

import ast
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


def test_the_design_names_every_package_and_where_its_tests_are() -> None:
    design = (ROOT / "docs" / "design.md").read_text()
    packages = [p for p in (ROOT / "cnbplatform").rglob("__init__.py") if "templates" not in p.parts]
    names = sorted(
        str(p.parent.relative_to(ROOT / "cnbplatform")) for p in packages if p.parent != ROOT / "cnbplatform"
    )
    assert [n for n in names if f"`{n}/`" not in design] == []
    assert "tests/e2e/" in design and "tests/cli/" in design
