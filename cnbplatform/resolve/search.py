"""Find and rewrite image references in one document with kbld's search rules.

A value is a reference when the first rule that matches its place says so: a ``keyMatcher`` matches the key's
name or its whole path from the document root (``None`` in a path matches every list index), a
``valueMatcher`` the value itself; a rule with both needs both. ``entireValue`` takes the string as the
reference, ``json`` and ``yaml`` parse the string and search it with the rule's own ``searchRules`` (the
``image`` key by default), ``none`` leaves the place alone. Without a matching rule, mappings and lists are
searched further.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import yaml

from cnbplatform.errors import UsageError
from cnbplatform.resolve.config import DEFAULT_RULE, PathPart, SearchRule
from cnbplatform.resolve.documents import dump

Mapper = Callable[[str], str]


def find_references(data: Any, rules: Sequence[SearchRule], where: str) -> list[str]:
    """Every reference in *data*, in document order (duplicates kept)."""
    found: list[str] = []

    def record(value: str) -> str:
        found.append(value)
        return value

    _walk(data, (), rules, record, where)
    return found


def replace_references(data: Any, rules: Sequence[SearchRule], mapper: Mapper, where: str) -> Any:
    """*data* with every reference replaced by ``mapper(reference)`` (containers are changed in place)."""
    return _walk(data, (), rules, mapper, where)


def _rule_for(path: tuple[PathPart, ...], value: Any, rules: Sequence[SearchRule]) -> SearchRule | None:
    key = path[-1] if path else None
    for rule in rules:
        if rule.key is not None:
            if rule.key.name is not None and key != rule.key.name:
                continue
            if rule.key.path is not None and not _path_matches(rule.key.path, path):
                continue
        if rule.value is not None and not (isinstance(value, str) and rule.value.matches(value)):
            continue
        return rule
    return None


def _path_matches(pattern: tuple[PathPart, ...], path: tuple[PathPart, ...]) -> bool:
    if len(pattern) != len(path):
        return False
    for want, have in zip(pattern, path, strict=True):
        if want is None:
            if not isinstance(have, int):
                return False
        elif want != have:
            return False
    return True


def _walk(value: Any, path: tuple[PathPart, ...], rules: Sequence[SearchRule], mapper: Mapper, where: str) -> Any:
    rule = _rule_for(path, value, rules) if path else None
    if rule is not None and isinstance(value, str):
        return _apply(rule, value, mapper, where)
    if rule is not None and rule.strategy == "none":
        return value
    if isinstance(value, dict):
        for key in list(value):
            new = _walk(value[key], (*path, key), rules, mapper, where)
            if new is not value[key]:
                value[key] = new
    elif isinstance(value, list):
        for index, item in enumerate(value):
            new = _walk(item, (*path, index), rules, mapper, where)
            if new is not item:
                value[index] = new
    return value


def _apply(rule: SearchRule, value: str, mapper: Mapper, where: str) -> str:
    if rule.strategy == "none":
        return value
    if rule.strategy == "entireValue":
        return mapper(value)
    nested = list(rule.nested) or [DEFAULT_RULE]
    if rule.strategy == "json":
        try:
            inner = json.loads(value)
        except ValueError as exc:
            raise UsageError(f"{where}: a value searched as JSON is not JSON: {exc}") from exc
        changed, inner = _changes(inner, nested, mapper, where)
        return json.dumps(inner, separators=(",", ":"), ensure_ascii=False) if changed else value
    try:
        inner = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise UsageError(f"{where}: a value searched as YAML is not YAML") from exc
    changed, inner = _changes(inner, nested, mapper, where)
    return dump(inner) if changed else value


def _changes(inner: Any, rules: Sequence[SearchRule], mapper: Mapper, where: str) -> tuple[bool, Any]:
    changed = False

    def tracking(reference: str) -> str:
        nonlocal changed
        new = mapper(reference)
        changed = changed or new != reference
        return new

    wrapper: dict[str, Any] = {"": inner}  # so a top-level string can be matched by a valueMatcher
    _walk(wrapper, (), [_shifted(r) for r in rules], tracking, where)
    return changed, wrapper[""]


def _shifted(rule: SearchRule) -> SearchRule:
    """*rule* for a document wrapped in ``{"": doc}``: key paths gain the leading empty key."""
    if rule.key is None or rule.key.path is None:
        return rule
    return replace(rule, key=replace(rule.key, path=("", *rule.key.path)))
