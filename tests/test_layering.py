"""docs/design.md §2: an arrow means "may import"; nothing imports upward or sideways across concerns, and the
"what it never does" column holds as forbidden imports and calls."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "cnbplatform"

# rank: a package may import packages of a strictly lower rank, and itself. files and oci are both at the bottom
# and neither imports the other (spec files are plain data; the image model knows nothing about buildpacks).
RANKS = {
    "oci": 0,
    "files": 0,
    "buildpack": 1,
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

# docs/design.md §2 "what it never does", as imports: package -> (module it never imports, why)
NEVER: dict[str, tuple[tuple[str, str], ...]] = {
    "oci": tuple((f"cnbplatform.{p}", "knows nothing about buildpacks") for p in RANKS if p != "oci"),
    "files": (
        ("cnbplatform.oci", "spec files are plain data"),
        ("subprocess", "no I/O beyond its own file"),
        ("httpx", "no I/O beyond its own file"),
        ("docker", "no I/O beyond its own file"),
    ),
    "buildpack": (("subprocess", "runs nothing"), ("cnbplatform.sandbox", "runs nothing")),
    "sandbox": (
        ("cnbplatform.lifecycle", "does not decide what to run"),
        ("cnbplatform.buildpack", "does not decide what to run"),
        ("cnbplatform.files", "does not decide what to run"),
    ),
    "lifecycle": (
        ("cnbplatform.platform", "the platform calls the lifecycle, never the reverse"),
        ("cnbplatform.cli", "never prints or exits"),
        ("typer", "never prints or exits"),
        ("click", "never prints or exits"),
    ),
    "platform": (
        ("cnbplatform.cli", "never parses argv"),
        ("argparse", "never parses argv"),
        ("typer", "never parses argv"),
        ("click", "never parses argv"),
    ),
    "imagebuilders": (
        ("yaml", "knows nothing about YAML"),
        ("cnbplatform.resolve", "knows nothing about YAML"),
        ("cnbplatform.k8s", "knows nothing about YAML"),
    ),
    "resolve": (("kubernetes", "never talks to a cluster"),),
    "k8s": (
        ("kubernetes", "never talks to a cluster"),
        ("subprocess", "never talks to a cluster (no kubectl)"),
        ("httpx", "never talks to a cluster"),
        ("requests", "never talks to a cluster"),
        ("socket", "never talks to a cluster"),
        ("cnbplatform.oci.store.stores", "never talks to a registry or cluster"),
    ),
}
# calls a package never makes (docs/design.md §2: the lifecycle never prints or exits)
NEVER_CALLS = {"lifecycle": ("print", "exit", "sys.exit", "os._exit")}


def all_imports(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """Every module *path* imports, absolute (relative imports resolved against its package under *root*)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[tuple[int, str]] = []
    package_parts = path.relative_to(root.parent).with_suffix("").parts[:-1]
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
    return out


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    return [(line, name) for line, name in all_imports(path, root) if name.split(".")[0] == "cnbplatform"]


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _source_package(path: Path, root: Path) -> str:
    return package_of(".".join(path.relative_to(root.parent).with_suffix("").parts))


def _called_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return f"{func.value.id}.{func.attr}"
    return ""


def layering_violations(root: Path = ROOT) -> list[str]:
    """Every import that goes upward or sideways, every 'never' import and call, under the package *root*."""
    violations = []
    for path in sorted(root.rglob("*.py")):
        source_pkg = _source_package(path, root)
        if source_pkg in ENTRIES:
            continue
        for line, module in all_imports(path, root):
            for forbidden, why in NEVER.get(source_pkg, ()):
                if module == forbidden or module.startswith(forbidden + "."):
                    violations.append(f"{path}:{line} {source_pkg} imports {module}: {source_pkg} {why}")
            if module.split(".")[0] != "cnbplatform":
                continue
            target = package_of(module)
            if target in LEAVES or target == source_pkg:
                continue
            if source_pkg in LEAVES:
                violations.append(f"{path}:{line} leaf module imports {module}")
            elif RANKS[target] >= RANKS[source_pkg]:
                violations.append(f"{path}:{line} {source_pkg} (rank {RANKS[source_pkg]}) imports {module}")
        calls = NEVER_CALLS.get(source_pkg, ())
        if calls:
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Call) and _called_name(node) in calls:
                    violations.append(f"{path}:{node.lineno} {source_pkg} calls {_called_name(node)}")
                if isinstance(node, ast.Raise) and "SystemExit" in ast.unparse(node):
                    violations.append(f"{path}:{node.lineno} {source_pkg} raises SystemExit")
    return violations


def test_every_package_has_a_rank() -> None:
    packages = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith("__")}
    assert packages <= set(RANKS), f"packages without a layer in docs/design.md §2: {packages - set(RANKS)}"
    assert set(NEVER) | set(NEVER_CALLS) <= set(RANKS)


def test_every_package_is_named_in_the_design() -> None:
    design = (ROOT.parent / "docs" / "design.md").read_text()
    assert [p for p in RANKS if f"`{p}/`" not in design] == []


def test_imports_follow_the_layering() -> None:
    violations = layering_violations()
    assert not violations, "\n".join(violations)


def _fake_tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """A package named cnbplatform under *tmp_path* holding *files* (path relative to the package -> source)."""
    root = tmp_path / "cnbplatform"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"oci/probe.py": "from cnbplatform.platform import context\n"}, "oci (rank 0) imports cnbplatform.platform"),
        ({"files/probe.py": "from cnbplatform.oci.reference import parse_reference\n"}, "spec files are plain data"),
        ({"files/probe.py": "from ..oci import reference\n"}, "files imports cnbplatform.oci"),
        ({"oci/probe.py": "import cnbplatform.files.group\n"}, "oci knows nothing about buildpacks"),
        ({"lifecycle/probe.py": "from cnbplatform.platform.build import run_build\n"}, "lifecycle imports"),
        ({"lifecycle/probe.py": "def f() -> None:\n    print('hi')\n"}, "lifecycle calls print"),
        ({"lifecycle/probe.py": "import sys\nsys.exit(3)\n"}, "lifecycle calls sys.exit"),
        ({"lifecycle/probe.py": "raise SystemExit(3)\n"}, "lifecycle raises SystemExit"),
        ({"sandbox/probe.py": "from cnbplatform.lifecycle import build\n"}, "does not decide what to run"),
        ({"platform/probe.py": "import argparse\n"}, "never parses argv"),
        ({"imagebuilders/probe.py": "import yaml\n"}, "knows nothing about YAML"),
        ({"k8s/probe.py": "import kubernetes.client\n"}, "never talks to a cluster"),
        ({"resolve/probe.py": "from kubernetes import config\n"}, "never talks to a cluster"),
        ({"k8s/probe.py": "import subprocess\n"}, "no kubectl"),
        ({"errors.py": "from cnbplatform.oci import digest\n"}, "leaf module imports"),
        ({"buildpack/probe.py": "import subprocess\n"}, "buildpack runs nothing"),
        ({"files/probe.py": "import httpx\n"}, "no I/O beyond its own file"),
    ],
)
def test_the_check_catches_a_forbidden_arrow(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    """A test of the test: a synthetic package under tmp_path with one forbidden arrow fails the check."""
    root = _fake_tree(tmp_path, files)
    violations = layering_violations(root)
    assert violations and all(v.startswith(str(root)) for v in violations), violations
    assert any(expected in v for v in violations), violations


def test_the_check_passes_allowed_arrows(tmp_path: Path) -> None:
    root = _fake_tree(
        tmp_path,
        {
            "platform/ok.py": "from cnbplatform.lifecycle import build\nfrom cnbplatform.errors import CnbError\n",
            "lifecycle/ok.py": "from cnbplatform.files import group\nfrom cnbplatform.oci import image\n",
            "files/ok.py": "from . import common\nfrom cnbplatform.files.common import Table\n",
            "__main__.py": "from cnbplatform.cli import main\n",
        },
    )
    assert layering_violations(root) == []


def environment_reads(root: Path = ROOT) -> list[str]:
    """The modules under *root* below platform/ that read the process environment."""
    offenders = []
    for path in sorted(root.rglob("*.py")):
        if _source_package(path, root) in ("platform", "cli"):
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(path))
    return offenders


def test_no_environment_reads_below_platform() -> None:
    """docs/design.md §2: no environment reads below platform/ (values are passed in explicitly)."""
    offenders = environment_reads()
    assert not offenders, offenders


def test_the_check_catches_an_environment_read(tmp_path: Path) -> None:
    """A test of the test: the lifecycle reading a variable is reported; the platform doing so is not."""
    root = _fake_tree(
        tmp_path,
        {
            "lifecycle/probe.py": "import os\nHOME = os.environ['HOME']\n",
            "platform/ok.py": "import os\nos.getenv('X')\n",
        },
    )
    assert environment_reads(root) == [str(root / "lifecycle" / "probe.py")]
