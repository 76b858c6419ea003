"""Order resolution: flattening, dedupe, optional copies, lookup and API checks (docs/spec-notes.md §4.1, §4.2)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from cnbplatform.errors import PhaseError
from cnbplatform.files.order import Order, OrderGroup
from cnbplatform.files.system import SystemConfig
from cnbplatform.lifecycle.detect.order import Element, candidate_groups, is_reduction, load_order_modules
from tests.support.buildpacks import EntrySpec, order_text, write_buildpack


def _order(groups: Sequence[Sequence[EntrySpec]]) -> tuple[OrderGroup, ...]:
    return Order.parse(order_text(groups)).groups


def _flatten(root: Path, groups: Sequence[Sequence[EntrySpec]], **kwargs: object) -> list[list[str]]:
    order = _order(groups)
    modules = load_order_modules(order, root)
    out = []
    for candidate in candidate_groups(order, lambda e: modules[(e.id, e.version)], **kwargs):  # type: ignore[arg-type]
        out.append([f"{e}{'?' if e.optional else ''}" for e in candidate])
    return out


def test_worked_example_of_the_spec(tmp_path: Path) -> None:
    """§16 item 6: E=[A1, F, B1], F=[C1]/[G optional]/[D1], G=[A2,B2]/[C2,D2] gives exactly the §4.2 groups."""
    for name in ("A", "B", "C", "D"):
        write_buildpack(tmp_path, name, "1")
        write_buildpack(tmp_path, name, "2")
    write_buildpack(tmp_path, "G", "1", composite_order=[[("A", "2"), ("B", "2")], [("C", "2"), ("D", "2")]])
    write_buildpack(tmp_path, "F", "1", composite_order=[[("C", "1")], [("G", "1", True)], [("D", "1")]])
    write_buildpack(tmp_path, "E", "1", composite_order=[[("A", "1"), ("F", "1"), ("B", "1")]])

    assert _flatten(tmp_path, [[("E", "1")]]) == [
        ["A@1", "C@1", "B@1"],
        ["A@1", "B@2"],
        ["A@1", "C@2", "D@2", "B@1"],
        ["A@1", "B@1"],
        ["A@1", "D@1", "B@1"],
    ]


def test_composites_expand_depth_first_left_to_right(tmp_path: Path) -> None:
    """§16 item 6: [E, O, F] and [O, P] expand as in the spec's matrices."""
    for name in "ABCDEFGH":
        write_buildpack(tmp_path, name, "1")
    write_buildpack(tmp_path, "O", "1", composite_order=[[("A", "1"), ("B", "1")], [("C", "1"), ("D", "1")]])
    write_buildpack(tmp_path, "P", "1", composite_order=[[("E", "1"), ("F", "1")], [("G", "1"), ("H", "1")]])

    assert _flatten(tmp_path, [[("E", "1"), ("O", "1"), ("F", "1")]]) == [
        ["E@1", "A@1", "B@1", "F@1"],
        ["E@1", "C@1", "D@1", "F@1"],
    ]
    assert _flatten(tmp_path, [[("O", "1"), ("P", "1")]]) == [
        ["A@1", "B@1", "E@1", "F@1"],
        ["A@1", "B@1", "G@1", "H@1"],
        ["C@1", "D@1", "E@1", "F@1"],
        ["C@1", "D@1", "G@1", "H@1"],
    ]


def test_later_element_with_an_id_already_placed_is_skipped(tmp_path: Path) -> None:
    """§16 item 6: first occurrence of an ID wins, whatever the version."""
    write_buildpack(tmp_path, "A", "1")
    write_buildpack(tmp_path, "A", "2")
    write_buildpack(tmp_path, "B", "1")
    write_buildpack(tmp_path, "X", "1", composite_order=[[("A", "2"), ("B", "1")]])

    assert _flatten(tmp_path, [[("A", "1"), ("X", "1")], [("X", "1"), ("A", "1")]]) == [
        ["A@1", "B@1"],
        ["A@2", "B@1"],
    ]


def test_optional_element_gives_the_group_with_it_then_without_it(tmp_path: Path) -> None:
    """§16 item 7: an optional element yields two candidate groups, with it first."""
    for name in "ABC":
        write_buildpack(tmp_path, name, "1")

    assert _flatten(tmp_path, [[("A", "1"), ("B", "1", True), ("C", "1")]]) == [
        ["A@1", "B@1?", "C@1"],
        ["A@1", "C@1"],
    ]
    assert _flatten(tmp_path, [[("A", "1", True), ("B", "1", True)]]) == [
        ["A@1?", "B@1?"],
        ["A@1?"],
        ["B@1?"],
        [],
    ]


def test_optional_composite_tries_its_groups_then_the_rest_without_it(tmp_path: Path) -> None:
    """§16 item 7: an optional composite: every sub-group, then the remainder without it."""
    for name in "ABC":
        write_buildpack(tmp_path, name, "1")
    write_buildpack(tmp_path, "O", "1", composite_order=[[("A", "1")], [("B", "1")]])

    assert _flatten(tmp_path, [[("O", "1", True), ("C", "1")]]) == [["A@1", "C@1"], ["B@1", "C@1"], ["C@1"]]


def test_excluded_elements_are_left_out_without_a_copy(tmp_path: Path) -> None:
    """§4.3 step 2: an element rejected by ``include`` (exec-env) is not placed and does not block its ID."""
    write_buildpack(tmp_path, "A", "1")
    write_buildpack(tmp_path, "A", "2")
    write_buildpack(tmp_path, "B", "1")
    groups: list[list[EntrySpec]] = [[("A", "1", True), ("A", "2"), ("B", "1")]]

    assert _flatten(tmp_path, groups, include=lambda d: str(d) != "A@1") == [["A@2", "B@1"]]


def test_system_buildpacks_are_added_to_every_group_unless_present(tmp_path: Path) -> None:
    """§16 item 18: pre/post system buildpacks go around every top-level group, skipping IDs already there."""
    for name in ("A", "B", "pre", "post"):
        write_buildpack(tmp_path, name, "1")
    write_buildpack(tmp_path, "pre", "2")
    system = SystemConfig.parse('[[system.pre.buildpacks]]\nid = "pre"\nversion = "1"\n'
                                '[[system.post.buildpacks]]\nid = "post"\nversion = "1"\n')  # fmt: skip
    groups = tuple(system.apply_to_group(g) for g in _order([[("A", "1")], [("pre", "2"), ("B", "1")]]))
    modules = load_order_modules(groups, tmp_path)
    flattened = [[str(e) for e in c] for c in candidate_groups(groups, lambda e: modules[(e.id, e.version)])]

    assert flattened == [["pre@1", "A@1", "post@1"], ["pre@2", "B@1", "post@1"]]


def _el(name: str, optional: bool = False, root: Path | None = None) -> Element:
    from cnbplatform.files.buildpack_toml import BuildpackDescriptor

    text = f'api = "0.12"\n[buildpack]\nid = "{name}"\nversion = "1"\n'
    return Element(BuildpackDescriptor.parse(text), optional)


def test_is_reduction() -> None:
    a, b, c, bo = _el("a"), _el("b"), _el("c"), _el("b", True)
    assert is_reduction([a, c], [a, bo, c])
    assert is_reduction([a, bo, c], [a, bo, c])
    assert not is_reduction([a, c], [a, b, c])  # b is required
    assert not is_reduction([c, a], [a, bo, c])  # order matters
    assert not is_reduction([a, b, c], [a, bo, c])  # a different optional flag is a different element
    assert not is_reduction([a, c, _el("d")], [a, bo, c])


def test_unsupported_buildpack_api_is_exit_12_before_anything_runs(tmp_path: Path) -> None:
    """§16 item 19: an unsupported buildpack api exits 12 (checked for every element before detection)."""
    write_buildpack(tmp_path, "A", "1")
    write_buildpack(tmp_path, "old", "1", api="0.2")
    with pytest.raises(PhaseError) as info:
        load_order_modules(_order([[("A", "1")], [("old", "1")]]), tmp_path)
    assert info.value.exit_code == 12
    assert "old@1" in str(info.value) and "0.2" in str(info.value)


def test_missing_api_is_exit_12(tmp_path: Path) -> None:
    """§16 item 19: a buildpack.toml without api counts as an unsupported Buildpack API."""
    directory = write_buildpack(tmp_path, "A", "1")
    (directory / "buildpack.toml").write_text('[buildpack]\nid = "A"\nversion = "1"\n')
    with pytest.raises(PhaseError) as info:
        load_order_modules(_order([[("A", "1")]]), tmp_path)
    assert info.value.exit_code == 12


def test_missing_or_unreadable_buildpack_is_exit_22(tmp_path: Path) -> None:
    directory = write_buildpack(tmp_path, "A", "1")
    with pytest.raises(PhaseError) as info:
        load_order_modules(_order([[("A", "1"), ("nope", "9")]]), tmp_path)
    assert info.value.exit_code == 22 and "nope@9" in str(info.value)

    (directory / "buildpack.toml").write_text("api = = broken")
    with pytest.raises(PhaseError) as info:
        load_order_modules(_order([[("A", "1")]]), tmp_path)
    assert info.value.exit_code == 22 and "A@1" in str(info.value) and "TOML" in str(info.value)


def test_nested_elements_are_verified_too(tmp_path: Path) -> None:
    write_buildpack(tmp_path, "X", "1", composite_order=[[("deep", "1")]])
    write_buildpack(tmp_path, "deep", "1", api="0.1")
    with pytest.raises(PhaseError) as info:
        load_order_modules(_order([[("X", "1")]]), tmp_path)
    assert info.value.exit_code == 12 and "deep@1" in str(info.value) and "X@1" in str(info.value)


def test_composite_referencing_an_extension_is_exit_22(tmp_path: Path) -> None:
    buildpacks, extensions = tmp_path / "buildpacks", tmp_path / "extensions"
    write_buildpack(buildpacks, "X", "1", composite_order=[[("ext", "1")]])
    (extensions / "ext" / "1").mkdir(parents=True)
    (extensions / "ext" / "1" / "extension.toml").write_text('api = "0.12"\n[extension]\nid = "ext"\nversion = "1"\n')
    with pytest.raises(PhaseError) as info:
        load_order_modules(_order([[("X", "1")]]), buildpacks, extensions_dir=extensions)
    assert info.value.exit_code == 22 and "image extension" in str(info.value)


def test_composite_cycle_is_exit_22(tmp_path: Path) -> None:
    write_buildpack(tmp_path, "X", "1", composite_order=[[("Y", "1")]])
    write_buildpack(tmp_path, "Y", "1", composite_order=[[("X", "1")]])
    with pytest.raises(PhaseError) as info:
        load_order_modules(_order([[("X", "1")]]), tmp_path)
    assert info.value.exit_code == 22 and "X@1 -> Y@1 -> X@1" in str(info.value)
