"""Build plan resolution for one candidate group: trials over the passing buildpacks' options (docs/spec-notes.md §4.4).

Each passing buildpack offers its options in order: the primary ``provides``/``requires``, then every ``[[or]]``.
Trials are the cartesian product, first buildpack outermost; the first trial that resolves wins. Within a trial a
buildpack counts as optional only when it is optional *and* on its last option (LC), so a failing non-last
alternative fails the trial and the next alternative is tried instead of the buildpack being dropped.

Resolving a trial walks the buildpacks in group order, each one's provides before its requires. A provide becomes
*pending* for its name; a require confirms every pending provider of the name, and is *unmet* when the name still
has no provider. After the walk every unmet require and every provide still pending is a culprit: optional
culprits are removed and the walk is redone; a required culprit fails the trial, and so does an empty trial.
Removing elements never cures a required culprit, so failing at once is the same as removing the optional ones
first. Plan entries are in order of the name's first appearance in the walk (LC iterates a Go map).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cnbplatform.files.plan import DetectOutput, PlanEntry, PlanProvider, PlanSections, Require
from cnbplatform.lifecycle.detect.order import Element


@dataclass(frozen=True)
class Passed:
    """A buildpack of the group whose ``bin/detect`` passed, with the plan it wrote."""

    element: Element
    output: DetectOutput


@dataclass(frozen=True)
class _Option:
    element: Element
    sections: PlanSections
    optional: bool


@dataclass(frozen=True)
class Resolution:
    """A resolved trial: the buildpacks taking part (group order) and the plan entries."""

    elements: tuple[Element, ...]
    entries: tuple[PlanEntry, ...]


@dataclass(frozen=True)
class Unresolved:
    """No trial resolved; ``reason`` explains the first trial's failure."""

    reason: str
    trials: int


def resolve_plan(passed: Sequence[Passed], log: Callable[[str], None] | None = None) -> Resolution | Unresolved:
    """The first resolving trial of *passed* (docs/spec-notes.md §4.4), or why none resolves.

    *log* receives the Go lifecycle's debug lines: ``Resolving plan... (try #N)``, then per culprit
    ``skip:``/``fail: <bp> requires <name>`` or ``... provides unused <name>``."""
    say = log or (lambda _message: None)
    choices = [_options(p) for p in passed]
    first_reason = ""
    count = 0
    for trial in itertools.product(*choices):
        count += 1
        say(f"Resolving plan... (try #{count})")
        outcome = _resolve_trial(list(trial), say)
        if isinstance(outcome, Resolution):
            return outcome
        first_reason = first_reason or outcome
    return Unresolved(first_reason or "no buildpack passed detection", count)


def _options(passed: Passed) -> list[_Option]:
    options = passed.output.options
    last = len(options) - 1
    return [_Option(passed.element, s, passed.element.optional and i == last) for i, s in enumerate(options)]


@dataclass
class _Entry:
    providers: list[Element]
    requires: list[Require]
    pending: list[Element]
    unmet: list[Element]


def _walk(trial: Sequence[_Option]) -> dict[str, _Entry]:
    deps: dict[str, _Entry] = {}
    for option in trial:
        for provide in option.sections.provides:
            deps.setdefault(provide.name, _Entry([], [], [], [])).pending.append(option.element)
        for require in option.sections.requires:
            entry = deps.setdefault(require.name, _Entry([], [], [], []))
            entry.providers += entry.pending
            entry.pending = []
            if entry.providers:
                entry.requires.append(require)
            else:
                entry.unmet.append(option.element)
    return deps


def _resolve_trial(trial: list[_Option], say: Callable[[str], None]) -> Resolution | str:
    """A Resolution, or the reason the trial fails."""
    while True:
        deps = _walk(trial)
        culprits: dict[Element, tuple[str, str]] = {}  # element -> (log line, reason)
        for name, entry in deps.items():
            for element in entry.unmet:
                culprits.setdefault(
                    element,
                    (
                        f"{element} requires {name}",
                        f"{element} requires {name!r}, which no buildpack before it provides",
                    ),
                )
        for name, entry in deps.items():
            for element in entry.pending:
                culprits.setdefault(
                    element,
                    (
                        f"{element} provides unused {name}",
                        f"{element} provides {name!r}, which no buildpack after it requires",
                    ),
                )
        if not culprits:
            break
        optional = {o.element for o in trial if o.optional}
        for element, (line, reason) in culprits.items():
            if element not in optional:
                say(f"fail: {line}")
                return reason
            say(f"skip: {line}")
        trial = [o for o in trial if o.element not in culprits]
    if not trial:
        say("fail: no viable buildpacks in group")
        return "no buildpack is left in the plan trial"
    entries = tuple(
        PlanEntry(
            providers=tuple(PlanProvider(e.id, e.version) for e in entry.providers),
            requires=tuple(entry.requires),
        )
        for entry in deps.values()
        if entry.requires
    )
    return Resolution(tuple(o.element for o in trial), entries)
