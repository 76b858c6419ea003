"""run.toml, legacy stack.toml and system.toml (docs/spec-notes.md §2.1, §4.1, §5.2)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cnbplatform.files.common import SpecFileError
from cnbplatform.files.order import GroupEntry, Order, OrderGroup
from cnbplatform.files.run_toml import RunConfig, RunImage
from cnbplatform.files.system import SystemConfig


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


RUN = """
[[images]]
  image = "registry.example/run:jammy"
  mirrors = ["mirror.example/run:jammy", "localhost:5000/run:jammy"]
[[images]]
  image = "registry.example/run-alt:1"
"""


# --- run.toml / stack.toml ----------------------------------------------------------------------------------------


def test_run_toml_is_read(tmp_path: Path) -> None:
    run = RunConfig.load(write(tmp_path / "run.toml", RUN))
    assert run.images == (
        RunImage("registry.example/run:jammy", ("mirror.example/run:jammy", "localhost:5000/run:jammy")),
        RunImage("registry.example/run-alt:1"),
    )


def test_run_toml_round_trip(tmp_path: Path) -> None:
    run = RunConfig.parse(RUN)
    run.dump(tmp_path / "cnb" / "run.toml")
    assert RunConfig.load(tmp_path / "cnb" / "run.toml") == run
    raw = tomllib.loads((tmp_path / "cnb" / "run.toml").read_text())
    assert "mirrors" not in raw["images"][1]


def test_missing_run_and_stack_files_are_empty(tmp_path: Path) -> None:
    assert RunConfig.load(tmp_path / "run.toml") == RunConfig()
    assert RunConfig.load_stack(tmp_path / "stack.toml") == RunConfig()


def test_legacy_stack_toml_reads_into_the_same_type(tmp_path: Path) -> None:
    text = '[run-image]\nimage = "registry.example/run:bionic"\nmirrors = ["mirror.example/run:bionic"]\n'
    run = RunConfig.load_stack(write(tmp_path / "stack.toml", text))
    assert run == RunConfig((RunImage("registry.example/run:bionic", ("mirror.example/run:bionic",)),))
    assert RunConfig.parse_stack("[run-image]\n") == RunConfig()


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[images]]\nmirrors = ["a/b:c"]\n', "images[0].mirrors"),
        ("[[images]]\nimage = 1\n", "images[0].image"),
        ('[[images]]\nimage = "a"\nmirrors = "b"\n', "images[0].mirrors"),
        ('[[images]]\nimage = "a"\nmirrors = ["b", 2]\n', "images[0].mirrors[1]"),
        ('images = "x"\n', "images"),
    ],
)
def test_run_toml_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "run.toml", text)
    with pytest.raises(SpecFileError) as err:
        RunConfig.load(path)
    assert str(path) in str(err.value) and f"key {key!r}" in str(err.value)


def test_stack_toml_errors_name_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "stack.toml", '[run-image]\nmirrors = ["a/b:c"]\n')
    with pytest.raises(SpecFileError) as err:
        RunConfig.load_stack(path)
    assert str(path) in str(err.value) and "key 'run-image.mirrors'" in str(err.value)


# --- system.toml --------------------------------------------------------------------------------------------------

SYSTEM = """
[system]
  [system.pre]
    [[system.pre.buildpacks]]
      id = "example/certs"
      version = "1.0.0"
    [[system.pre.buildpacks]]
      id = "example/node"
      version = "9.9.9"
      optional = true
  [system.post]
    [[system.post.buildpacks]]
      id = "example/scan"
      version = "0.1.0"
"""


def test_system_toml_is_read(tmp_path: Path) -> None:
    system = SystemConfig.load(write(tmp_path / "system.toml", SYSTEM))
    assert system.pre == (GroupEntry("example/certs", "1.0.0"), GroupEntry("example/node", "9.9.9", optional=True))
    assert system.post == (GroupEntry("example/scan", "0.1.0"),)


def test_system_toml_dotted_form_and_round_trip(tmp_path: Path) -> None:
    dotted = '[[system.pre.buildpacks]]\nid = "a"\nversion = "1"\n[[system.post.buildpacks]]\nid = "b"\nversion = "2"\n'
    system = SystemConfig.parse(dotted)
    assert system == SystemConfig((GroupEntry("a", "1"),), (GroupEntry("b", "2"),))
    system.dump(tmp_path / "system.toml")
    assert SystemConfig.load(tmp_path / "system.toml") == system


def test_missing_system_toml_is_empty(tmp_path: Path) -> None:
    system = SystemConfig.load(tmp_path / "system.toml")
    assert system == SystemConfig() and system.is_empty
    order = Order((OrderGroup((GroupEntry("x", "1"),)),))
    assert system.apply(order) is order


def test_system_buildpacks_are_added_to_every_group_unless_present() -> None:
    system = SystemConfig.parse(SYSTEM)
    order = Order(
        (
            OrderGroup((GroupEntry("example/node", "1.2.3"),)),
            OrderGroup((GroupEntry("example/ruby", "2.0.0"), GroupEntry("example/scan", "0.0.1"))),
        ),
        order_extensions=(OrderGroup((GroupEntry("example/apt", "0.1.0"),)),),
    )
    merged = system.apply(order)
    assert [[str(e) for e in g] for g in merged.groups] == [
        ["example/certs@1.0.0", "example/node@1.2.3", "example/scan@0.1.0"],
        ["example/certs@1.0.0", "example/node@9.9.9", "example/ruby@2.0.0", "example/scan@0.0.1"],
    ]
    assert merged.groups[1].entries[1].optional
    assert merged.order_extensions == order.order_extensions


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[system.pre.buildpacks]]\nversion = "1"\n', "system.pre.buildpacks[0].id"),
        ('[[system.post.buildpacks]]\nid = "a"\n', "system.post.buildpacks[0].version"),
        (
            '[[system.post.buildpacks]]\nid = "a"\nversion = "1"\noptional = "no"\n',
            "system.post.buildpacks[0].optional",
        ),
        ("system = 1\n", "system"),
        ("[system]\npre = 1\n", "system.pre"),
    ],
)
def test_system_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "system.toml", text)
    with pytest.raises(SpecFileError) as err:
        SystemConfig.load(path)
    assert str(path) in str(err.value) and f"key {key!r}" in str(err.value)
