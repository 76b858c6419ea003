"""Build plan trials (docs/spec-notes.md §4.4) on detect outputs, without running anything."""

from __future__ import annotations

from cnbplatform.files.buildpack_toml import BuildpackDescriptor
from cnbplatform.files.plan import DetectOutput
from cnbplatform.lifecycle.detect.order import Element
from cnbplatform.lifecycle.detect.plan import Passed, Resolution, Unresolved, resolve_plan


def _passed(name: str, plan: str = "", *, optional: bool = False) -> Passed:
    text = f'api = "0.12"\n[buildpack]\nid = "{name}"\nversion = "1.0.0"\n'
    return Passed(Element(BuildpackDescriptor.parse(text), optional), DetectOutput.parse(plan))


def _names(result: Resolution | Unresolved) -> list[str]:
    assert isinstance(result, Resolution), result
    return [e.id for e in result.elements]


PROVIDES_X = '[[provides]]\nname = "x"\n'
REQUIRES_X = '[[requires]]\nname = "x"\n'


def test_require_before_any_provider_fails_or_drops_the_optional_element() -> None:
    """§16 item 8: a requires with no provider in the same or an earlier element."""
    result = resolve_plan([_passed("a", REQUIRES_X), _passed("b", PROVIDES_X)])
    assert isinstance(result, Unresolved)
    assert "a@1.0.0 requires 'x'" in result.reason

    assert _names(resolve_plan([_passed("a", REQUIRES_X, optional=True), _passed("c")])) == ["c"]
    assert _names(resolve_plan([_passed("a", PROVIDES_X + REQUIRES_X)])) == ["a"]  # self-provided


def test_provide_without_later_requirer_fails_or_drops_the_optional_element() -> None:
    """§16 item 9: a provides with no requirer in the same or a later element."""
    result = resolve_plan([_passed("a", REQUIRES_X), _passed("b", PROVIDES_X)])
    assert isinstance(result, Unresolved)
    result = resolve_plan([_passed("b", '[[provides]]\nname = "y"\n')])
    assert isinstance(result, Unresolved) and "b@1.0.0 provides 'y'" in result.reason

    assert _names(resolve_plan([_passed("p", PROVIDES_X, optional=True), _passed("c")])) == ["c"]
    # dropping one optional element can leave another one unused: both go
    chain = [_passed("p", PROVIDES_X, optional=True), _passed("q", REQUIRES_X + '[[requires]]\nname = "z"\n',
                                                                 optional=True), _passed("c")]  # fmt: skip
    assert _names(resolve_plan(chain)) == ["c"]


def test_empty_trial_fails() -> None:
    result = resolve_plan([_passed("a", REQUIRES_X, optional=True)])
    assert isinstance(result, Unresolved)


def test_or_alternatives_are_tried_in_order_after_the_primary() -> None:
    """§16 item 10: the first resolving trial wins; alternatives in declaration order."""
    a = _passed(
        "a", '[[requires]]\nname = "p"\n[[or]]\n[[or.requires]]\nname = "q"\n[[or]]\n[[or.requires]]\nname = "r"\n'
    )
    provider = _passed("z", '[[provides]]\nname = "q"\n[[or]]\n[[or.provides]]\nname = "r"\n')
    result = resolve_plan([provider, a])
    assert isinstance(result, Resolution)
    assert [(e.name, [p.id for p in e.providers]) for e in result.entries] == [("q", ["z"])]

    # z's primary provides s, which nothing requires: every trial with it fails; then z's [[or]] with a's 3rd option
    only_r = _passed("z", '[[provides]]\nname = "s"\n[[or]]\n[[or.provides]]\nname = "r"\n')
    result = resolve_plan([only_r, a])
    assert isinstance(result, Resolution)
    assert [e.name for e in result.entries] == ["r"]


def test_optional_only_on_its_last_option() -> None:
    """§4.4 nuance: a failing non-last alternative fails the trial; the element is kept via its next option."""
    opt = _passed("o", '[[requires]]\nname = "missing"\n[[or]]\n[[or.requires]]\nname = "x"\n', optional=True)
    result = resolve_plan([_passed("p", PROVIDES_X), opt, _passed("c", REQUIRES_X)])
    assert _names(result) == ["p", "o", "c"]
    # on its last option the optional element is dropped instead of failing the group
    opt_last = _passed("o", '[[requires]]\nname = "x"\n[[or]]\n[[or.requires]]\nname = "missing"\n', optional=True)
    assert _names(resolve_plan([_passed("c"), opt_last])) == ["c"]


def test_plan_entries_in_first_appearance_order_with_all_providers_and_requires() -> None:
    """§16 item 11: one entry per name, all confirmed providers in order, all requires with metadata."""
    a = _passed("a", '[[provides]]\nname = "node"\n[[provides]]\nname = "npm"\n')
    b = _passed("b", '[[provides]]\nname = "node"\n[[requires]]\nname = "npm"\n[requires.metadata]\nv = 1\n')
    c = _passed("c", '[[requires]]\nname = "node"\n[requires.metadata]\nversion = "18.x"\n'
                     '[[requires]]\nname = "node"\n')  # fmt: skip
    result = resolve_plan([a, b, c])
    assert isinstance(result, Resolution)
    summary = [(e.name, [p.id for p in e.providers], [r.metadata for r in e.requires]) for e in result.entries]
    assert summary == [("node", ["a", "b"], [{"version": "18.x"}, {}]), ("npm", ["a"], [{"v": 1}])]
