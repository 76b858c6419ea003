"""Buildpacks and orders written to disk for lifecycle tests (docs/spec-notes.md §1.1, §3.1, §5.2).

``write_buildpack`` lays out ``<root>/<escaped id>/<version>/`` with ``buildpack.toml`` and, for a component
buildpack, executable POSIX ``sh`` scripts ``bin/detect`` and ``bin/build``; ``write_order`` writes an
``order.toml``; ``make_dirs`` creates the directories a phase works on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cnbplatform.lifecycle.context import Dirs

# An order entry: (id, version), (id, version, optional) or {"id": …, "version": …, "optional": …}
EntrySpec = tuple[str, str] | tuple[str, str, bool] | Mapping[str, Any]


def escape_id(buildpack_id: str) -> str:
    return buildpack_id.replace("/", "_")


def _q(value: str) -> str:
    """A TOML basic string (JSON string escapes are valid TOML for the characters used in tests)."""
    return json.dumps(value)


def _entry_lines(table: str, entry: EntrySpec) -> list[str]:
    if isinstance(entry, Mapping):
        data = dict(entry)
    else:
        data = {"id": entry[0], "version": entry[1]}
        if len(entry) > 2:
            data["optional"] = entry[2]
    lines = [f"[[{table}]]"]
    for key, value in data.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, str):
            lines.append(f"{key} = {_q(value)}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return lines


def _order_lines(key: str, groups: Iterable[Sequence[EntrySpec]]) -> list[str]:
    lines: list[str] = []
    for group in groups:
        lines.append(f"[[{key}]]")
        for entry in group:
            lines += _entry_lines(f"{key}.group", entry)
    return lines


def _target_lines(targets: Iterable[Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    for target in targets:
        lines.append("[[targets]]")
        for key in ("os", "arch", "variant", "arch-variant"):
            if key in target:
                lines.append(f"{key} = {_q(target[key])}")
        for distro in target.get("distros", ()):
            lines.append("[[targets.distros]]")
            lines += [f"{k} = {_q(v)}" for k, v in distro.items()]
    return lines


def write_script(path: Path, body: str) -> Path:
    """An executable ``#!/bin/sh`` script."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def write_buildpack(
    root: Path,
    id: str,
    version: str = "0.0.1",
    *,
    api: str = "0.12",
    detect: str = "exit 0",
    build: str = "exit 0",
    toml_extra: str = "",
    targets: Iterable[Mapping[str, Any]] | None = None,
    composite_order: Iterable[Sequence[EntrySpec]] | None = None,
) -> Path:
    """Write a buildpack under *root* and return its directory.

    *detect* / *build* are the bodies of the ``sh`` scripts. *toml_extra* is inserted right after ``[buildpack]``'s
    ``id`` and ``version`` (bare keys such as ``clear-env = true`` land in ``[buildpack]``; it may open new tables).
    *targets* are ``[[targets]]`` dicts (``os``, ``arch``, ``variant``, ``distros=[{name, version}]``).
    *composite_order* makes a composite buildpack: its ``[[order]]`` groups, and no ``bin/``.
    """
    directory = root / escape_id(id) / version
    directory.mkdir(parents=True, exist_ok=True)
    lines = [f"api = {_q(api)}", "", "[buildpack]", f"id = {_q(id)}", f"version = {_q(version)}"]
    if toml_extra:
        lines.append(toml_extra)
    lines.append("")
    if targets is not None:
        lines += _target_lines(targets)
    if composite_order is not None:
        lines += _order_lines("order", composite_order)
    (directory / "buildpack.toml").write_text("\n".join(lines) + "\n")
    if composite_order is None:
        write_script(directory / "bin" / "detect", detect)
        write_script(directory / "bin" / "build", build)
    return directory


def order_text(groups: Iterable[Sequence[EntrySpec]]) -> str:
    return "\n".join(_order_lines("order", groups)) + "\n"


def write_order(path: Path, groups: Iterable[Sequence[EntrySpec]]) -> Path:
    """Write ``order.toml`` with one ``[[order]]`` per group."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(order_text(groups))
    return path


def make_dirs(root: Path, *, build_config: bool = True) -> Dirs:
    """Create ``layers``, ``workspace``, ``platform`` (with ``env/``), ``buildpacks`` (and ``build-config/env``)."""
    dirs = Dirs(
        layers=root / "layers",
        app=root / "workspace",
        platform=root / "platform",
        buildpacks=root / "buildpacks",
        build_config=root / "build-config" if build_config else None,
    )
    for path in (dirs.layers, dirs.app, dirs.platform / "env", dirs.buildpacks):
        path.mkdir(parents=True, exist_ok=True)
    if dirs.build_config is not None:
        (dirs.build_config / "env").mkdir(parents=True, exist_ok=True)
    return dirs
