"""DESIGN.md §2: an arrow means "may import"; nothing imports upward or sideways across concerns."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "cnbplatform"

# rank: a package may import packages of a strictly lower rank, and itself.
RANKS = {
    "oci": 0,
    "files": 1,
    "buildpack": 2,
    "launcher": 2,
    "sbom": 2,
    "sandbox": 2,
    "lifecycle": 3,
    "builder": 3,
    "platform": 4,
    "imagebuilders": 5,
    "resolve": 6,
    "k8s": 6,
    "cli": 7,
}
# top-level modules importable from anywhere (they import nothing of cnbplatform themselves)
LEAVES = {"errors", "__init__"}
# entry points may import anything
ENTRIES = {"__main__"}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    package_parts = path.relative_to(ROOT.parent).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - node.level + 1])
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            out.append((node.lineno, name))
    return [(line, name) for line, name in out if name.split(".")[0] == "cnbplatform"]


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_rank() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert packages <= set(RANKS), f"packages without a layer in DESIGN.md: {packages - set(RANKS)}"


def test_imports_follow_the_layering() -> None:
    violations = []
    for path in ROOT.rglob("*.py"):
        source_pkg = package_of(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        for line, module in imported_modules(path):
            target = package_of(module)
            if target in LEAVES or source_pkg in ENTRIES:
                continue
            if source_pkg in LEAVES:
                violations.append(f"{path}:{line} leaf module imports {module}")
                continue
            if target == source_pkg:
                continue
            if RANKS[target] >= RANKS[source_pkg]:
                violations.append(f"{path}:{line} {source_pkg} (rank {RANKS[source_pkg]}) imports {module}")
    assert not violations, "\n".join(violations)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    bad = ROOT / "oci" / "_layering_probe.py"
    bad.write_text("from cnbplatform.platform import context\n")
    try:
        found = [m for _, m in imported_modules(bad)]
        assert found == ["cnbplatform.platform"]
        assert RANKS[package_of(found[0])] > RANKS["oci"]
    finally:
        bad.unlink()


def test_no_environment_reads_below_platform() -> None:
    """DESIGN.md §4: no environment reads below platform/ (values are passed in explicitly)."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        pkg = package_of(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        if pkg in ("platform", "cli"):
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(path))
    assert not offenders, offenders
