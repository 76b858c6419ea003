"""order.toml, group.toml, plan files (docs/spec-notes.md §3.2, §4.1, §4.5, §5.2)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cnbplatform.files.common import SpecFileError
from cnbplatform.files.group import GroupFile, GroupMember
from cnbplatform.files.order import GroupEntry, Order, OrderGroup
from cnbplatform.files.plan import (
    BuildpackPlan,
    DetectOutput,
    DetectOutputError,
    Plan,
    PlanEntry,
    PlanProvider,
    PlanSections,
    Provide,
    Require,
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- order.toml ---------------------------------------------------------------------------------------------------

ORDER = """
[[order]]
  [[order.group]]
  id = "example/node"
  version = "1.2.3"
  [[order.group]]
  id = "example/npm"
  version = "0.1.0"
  optional = true
[[order]]
  [[order.group]]
  id = "example/ruby"
  version = "2.0.0"
[[order-extensions]]
  [[order-extensions.group]]
  id = "example/apt"
  version = "0.1.0"
"""


def test_order_is_read(tmp_path: Path) -> None:
    order = Order.load(write(tmp_path / "order.toml", ORDER))
    assert order.groups == (
        OrderGroup((GroupEntry("example/node", "1.2.3"), GroupEntry("example/npm", "0.1.0", optional=True))),
        OrderGroup((GroupEntry("example/ruby", "2.0.0"),)),
    )
    assert order.order_extensions == (OrderGroup((GroupEntry("example/apt", "0.1.0"),)),)
    assert [str(e) for e in order.groups[0]] == ["example/node@1.2.3", "example/npm@0.1.0"]


def test_order_round_trip(tmp_path: Path) -> None:
    order = Order.parse(ORDER)
    order.dump(tmp_path / "out" / "order.toml")
    assert Order.load(tmp_path / "out" / "order.toml") == order
    raw = tomllib.loads((tmp_path / "out" / "order.toml").read_text())
    assert "optional" not in raw["order"][0]["group"][0]  # false is the default, not written
    assert raw["order"][0]["group"][1]["optional"] is True


def test_order_without_extensions_writes_no_extension_table() -> None:
    order = Order((OrderGroup((GroupEntry("a", "1"),)),))
    assert order.to_dict() == {"order": [{"group": [{"id": "a", "version": "1"}]}]}


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[order]]\n[[order.group]]\nversion = "1"\n', "order[0].group[0].id"),
        ('[[order]]\n[[order.group]]\nid = "a"\n', "order[0].group[0].version"),
        ('[[order]]\n[[order.group]]\nid = "a"\nversion = ""\n', "order[0].group[0].version"),
        (
            '[[order]]\n[[order.group]]\nid = "a"\nversion = "1"\n'
            '[[order.group]]\nid = "b"\nversion = "1"\noptional = 1\n',
            "order[0].group[1].optional",
        ),
        ("order = 1\n", "order"),
        ("[[order]]\ngroup = [1]\n", "order[0].group[0]"),
        ('[[order-extensions]]\n[[order-extensions.group]]\nid = "e"\n', "order-extensions[0].group[0].version"),
    ],
)
def test_order_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "order.toml", text)
    with pytest.raises(SpecFileError) as err:
        Order.load(path)
    assert str(path) in str(err.value) and f"key {key!r}" in str(err.value)


def test_order_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SpecFileError, match="file not found"):
        Order.load(tmp_path / "order.toml")


# --- group.toml ---------------------------------------------------------------------------------------------------


def test_group_round_trip_and_shape(tmp_path: Path) -> None:
    group = GroupFile(
        group=(
            GroupMember("example/node", "1.2.3", "0.12", homepage="https://example.com"),
            GroupMember("example/npm", "0.1.0", "0.10"),
        ),
        group_extensions=(GroupMember("example/apt", "0.1.0", "0.12", extension=True),),
    )
    path = tmp_path / "layers" / "group.toml"
    group.dump(path)
    raw = tomllib.loads(path.read_text())
    assert raw == {
        "group": [
            {"id": "example/node", "version": "1.2.3", "api": "0.12", "homepage": "https://example.com"},
            {"id": "example/npm", "version": "0.1.0", "api": "0.10"},
        ],
        "group-extensions": [{"id": "example/apt", "version": "0.1.0", "api": "0.12"}],
    }
    loaded = GroupFile.load(path)
    assert loaded == group
    assert loaded.group_extensions[0].extension and not loaded.group[0].extension
    assert [m.id for m in loaded.members] == ["example/apt", "example/node", "example/npm"]


def test_group_never_writes_optional_and_ignores_it_on_read() -> None:
    group = GroupFile.parse('[[group]]\nid = "a"\nversion = "1"\napi = "0.12"\noptional = true\n')
    assert "optional" not in group.to_dict()["group"][0]
    assert "group-extensions" not in group.to_dict()


def test_group_extension_flag_follows_the_table() -> None:
    group = GroupFile(group=(GroupMember("a", "1", "0.12", extension=True),))
    assert group.group[0].extension is False


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[group]]\nid = "a"\nversion = "1"\n', "group[0].api"),
        ('[[group]]\nid = "a"\nversion = "1"\napi = "0.12"\n[[group]]\nversion = "1"\napi = "0.12"\n', "group[1].id"),
        ('[[group]]\nid = "a"\nversion = "1"\napi = "0.12"\nhomepage = 1\n', "group[0].homepage"),
        ('[[group-extensions]]\nid = "a"\nversion = ""\napi = "0.12"\n', "group-extensions[0].version"),
    ],
)
def test_group_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "group.toml", text)
    with pytest.raises(SpecFileError) as err:
        GroupFile.load(path)
    assert str(path) in str(err.value) and f"key {key!r}" in str(err.value)


# --- detect output (bin/detect's plan) ----------------------------------------------------------------------------

DETECT = """
[[provides]]
name = "node"
[[requires]]
name = "node"
[requires.metadata]
version = "18.x"
launch = true
[[or]]
[[or.provides]]
name = "npm"
[[or.requires]]
name = "npm"
[[or]]
[[or.requires]]
name = "yarn"
"""


def test_detect_output_is_read(tmp_path: Path) -> None:
    out = DetectOutput.load(write(tmp_path / "plan.toml", DETECT))
    assert out.provides == (Provide("node"),)
    assert out.requires == (Require("node", {"version": "18.x", "launch": True}),)
    assert out.options == (
        PlanSections((Provide("node"),), (Require("node", {"version": "18.x", "launch": True}),)),
        PlanSections((Provide("npm"),), (Require("npm"),)),
        PlanSections((), (Require("yarn"),)),
    )
    assert out.has_requires


def test_detect_output_round_trip(tmp_path: Path) -> None:
    out = DetectOutput.parse(DETECT)
    out.dump(tmp_path / "plan.toml")
    assert DetectOutput.load(tmp_path / "plan.toml") == out


def test_empty_detect_output(tmp_path: Path) -> None:
    empty = DetectOutput.load(write(tmp_path / "plan.toml", ""))
    assert empty.options == (PlanSections(),) and not empty.has_requires
    assert DetectOutput.load(tmp_path / "missing.toml", missing_ok=True) == DetectOutput()
    provides_only = DetectOutput.parse('[[provides]]\nname = "x"\n')
    assert not provides_only.has_requires


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[requires]]\nname = "node"\nversion = "18"\n', "requires[0].version"),
        (
            '[[or]]\n[[or.requires]]\nname = "a"\n[[or.requires]]\nname = "b"\nversion = "1"\n',
            "or[0].requires[1].version",
        ),
    ],
)
def test_top_level_requires_version_is_an_error(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "plan.toml", text)
    with pytest.raises(DetectOutputError) as err:
        DetectOutput.load(path)
    assert str(path) in str(err.value) and f"key {key!r}" in str(err.value) and "metadata.version" in str(err.value)
    assert isinstance(err.value, SpecFileError)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[[provides]]\n", "provides[0].name"),
        ('[[requires]]\nname = ""\n', "requires[0].name"),
        ('[[requires]]\nname = "a"\nmetadata = "x"\n', "requires[0].metadata"),
        ("or = 1\n", "or"),
    ],
)
def test_detect_output_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "plan.toml", text)
    with pytest.raises(SpecFileError) as err:
        DetectOutput.load(path)
    assert str(path) in str(err.value) and f"key {key!r}" in str(err.value)


# --- plan.toml ----------------------------------------------------------------------------------------------------


def sample_plan() -> Plan:
    return Plan(
        (
            PlanEntry(
                providers=(PlanProvider("example/node", "1.2.3"),),
                requires=(Require("node", {"version": "18.x"}), Require("node", {"build": True})),
            ),
            PlanEntry(
                providers=(PlanProvider("example/apt", "0.1.0", extension=True), PlanProvider("example/node", "1.2.3")),
                requires=(Require("curl"),),
            ),
            PlanEntry(providers=(PlanProvider("example/npm", "0.1.0"),), requires=(Require("npm"),)),
        )
    )


def test_plan_round_trip_preserves_order(tmp_path: Path) -> None:
    plan = sample_plan()
    path = tmp_path / "plan.toml"
    plan.dump(path)
    assert Plan.load(path) == plan
    raw = tomllib.loads(path.read_text())
    assert [e["requires"][0]["name"] for e in raw["entries"]] == ["node", "curl", "npm"]
    assert raw["entries"][1]["providers"][0] == {"id": "example/apt", "version": "0.1.0", "extension": True}
    assert "extension" not in raw["entries"][1]["providers"][1]
    assert [e.name for e in Plan.load(path).entries] == ["node", "curl", "npm"]


def test_plan_for_provider_and_without() -> None:
    plan = sample_plan()
    node = plan.for_provider("example/node")
    assert node.entries == (Require("node", {"version": "18.x"}), Require("node", {"build": True}), Require("curl"))
    assert plan.for_provider("example/apt").entries == ()  # the apt provider is an extension
    assert plan.for_provider("example/apt", extension=True).names == ("curl",)
    assert [e.name for e in plan.without(["curl"]).entries] == ["node", "npm"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[[entries]]\n[[entries.providers]]\nversion = "1"\n', "entries[0].providers[0].id"),
        ('[[entries]]\n[[entries.providers]]\nid = "a"\n', "entries[0].providers[0].version"),
        (
            '[[entries]]\n[[entries.providers]]\nid = "a"\nversion = "1"\nextension = "no"\n',
            "entries[0].providers[0].extension",
        ),
        ('[[entries]]\n[[entries.requires]]\nname = "a"\n[[entries.requires]]\nname = "b"\n', "entries[0].requires"),
        ("[[entries]]\n[[entries.requires]]\nmetadata = {}\n", "entries[0].requires[0].name"),
    ],
)
def test_plan_errors_name_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    path = write(tmp_path / "plan.toml", text)
    with pytest.raises(SpecFileError) as err:
        Plan.load(path)
    assert str(path) in str(err.value) and f"key {key!r}" in str(err.value)


# --- buildpack plan (CNB_BP_PLAN_PATH) ----------------------------------------------------------------------------


def test_buildpack_plan_round_trip(tmp_path: Path) -> None:
    bp_plan = BuildpackPlan((Require("node", {"version": "18.x", "nested": {"a": [1, 2]}}), Require("npm")))
    path = tmp_path / "bp-plan" / "plan.toml"
    bp_plan.dump(path)
    raw = tomllib.loads(path.read_text())
    assert raw == {
        "entries": [
            {"name": "node", "metadata": {"version": "18.x", "nested": {"a": [1, 2]}}},
            {"name": "npm", "metadata": {}},
        ]
    }
    assert BuildpackPlan.load(path) == bp_plan


def test_buildpack_plan_errors_name_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path / "plan.toml", '[[entries]]\nname = "a"\n[[entries]]\nname = 3\n')
    with pytest.raises(SpecFileError) as err:
        BuildpackPlan.load(path)
    assert str(path) in str(err.value) and "key 'entries[1].name'" in str(err.value)
