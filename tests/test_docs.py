"""The documentation a newcomer needs lives in the repository: every package says what it is for."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_has_a_docstring() -> None:
    packages = sorted((ROOT / "cnbplatform").rglob("__init__.py"))
    assert len(packages) > 10
    missing = [str(p.relative_to(ROOT)) for p in packages if not ast.get_docstring(ast.parse(p.read_text()))]
    assert missing == []
