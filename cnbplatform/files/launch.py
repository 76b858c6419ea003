"""``<layers>/<bp>/launch.toml`` (docs/spec-notes.md §3.5), parsed according to the buildpack's API.

- Buildpack API ≥ 0.9: ``command`` is an array of strings (element 0 is the executable); a ``direct`` key is an
  error (processes are always direct); user arguments replace ``args``.
- Buildpack API 0.7/0.8: ``command`` is a string; ``direct`` is an optional boolean (default false: run through a
  shell); user arguments are appended.
- ``working-dir`` is honoured from API 0.8 (ignored with a warning before, as LC does).

:class:`Process` is normalised (``command`` is always a tuple, ``direct`` always a bool), so callers do not care
about the API. At most one process per file may set ``default = true`` (§16 item 28); types are unique per file.
Deprecated ``[[bom]]`` entries are read (a top-level ``version`` in one is an error).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cnbplatform.files.common import SpecFileError, Table, parse_toml, read_toml, write_toml

_PROCESS_TYPE = re.compile(r"[A-Za-z0-9._-]+")


def _api(api: str, path: str | Path) -> tuple[int, int]:
    """``"0.9"`` → ``(0, 9)``; ``"1"`` → ``(1, 0)``."""
    parts = api.split(".")
    if not 1 <= len(parts) <= 2 or not all(p.isdigit() for p in parts):
        raise SpecFileError(path, f"invalid buildpack API version {api!r}")
    return int(parts[0]), int(parts[1]) if len(parts) == 2 else 0


def valid_process_type(name: str) -> bool:
    """Process types are letters, digits, ``.``, ``_`` and ``-`` (§3.5); not ``.`` or ``..``, as a type names
    ``/cnb/process/<type>`` in the image."""
    return _PROCESS_TYPE.fullmatch(name) is not None and name not in (".", "..")


@dataclass(frozen=True)
class Label:
    """A ``[[labels]]`` entry: an image label set by a buildpack."""

    key: str
    value: str

    @classmethod
    def from_table(cls, table: Table) -> Label:
        return cls(key=table.get_str("key", required=True), value=table.get_str("value", required=True))

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value}


@dataclass(frozen=True)
class Slice:
    """A ``[[slices]]`` entry: globs (relative to ``<app>`` or absolute inside it) that become one app layer."""

    paths: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> Slice:
        return cls(paths=tuple(table.str_list("paths")))

    def to_dict(self) -> dict[str, Any]:
        return {"paths": list(self.paths)}


@dataclass(frozen=True)
class BomEntry:
    """A deprecated ``[[bom]]`` entry (launch.toml / build.toml): a name and free-form metadata."""

    name: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: Table) -> BomEntry:
        if table.has("version"):
            raise table.error("version", "a top-level version is not allowed in a bom entry; use metadata.version")
        return cls(name=table.get_str("name"), metadata=table.raw_table("metadata"))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


def bom_json(entries: Iterable[tuple[str, str, BomEntry]]) -> list[dict[str, Any]]:
    """Deprecated BOM entries as the Go lifecycle writes them: ``name``, ``metadata``, ``buildpack`` (id, version)."""
    return [
        {"name": e.name, "metadata": dict(e.metadata), "buildpack": {"id": bp_id, "version": bp_version}}
        for bp_id, bp_version, e in entries
    ]


@dataclass(frozen=True)
class Process:
    """A process type declared by one buildpack, whatever its API."""

    type: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    direct: bool = True
    default: bool = False
    working_dir: str = ""
    exec_env: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: Table, api: tuple[int, int], warnings: list[str]) -> Process:
        ptype = table.get_str("type", required=True)
        if not valid_process_type(ptype):
            raise table.error("type", f"invalid process type {ptype!r} (allowed: letters, digits, '.', '_', '-')")
        if not table.has("command"):
            raise table.error("command", "required")
        raw = table.data["command"]
        if api >= (0, 9):
            table.reject("direct", reason="not allowed for buildpack API 0.9+ (processes are always direct)")
            if isinstance(raw, str):
                raise table.error("command", "expected an array of strings for buildpack API 0.9+, got string")
            command = tuple(table.str_list("command"))
            if not command:
                raise table.error("command", "expected a non-empty array of strings")
            direct = True
        else:
            if not isinstance(raw, str):
                raise table.error("command", "expected a string for buildpack API < 0.9 (arrays need 0.9+)")
            command = (raw,)
            direct = table.get_bool("direct", False)
        working_dir = table.get_str("working-dir")
        if working_dir and api < (0, 8):
            warnings.append(
                f"{table.path}: process {ptype!r}: working-dir needs buildpack API 0.8+; ignoring working directory"
            )
            working_dir = ""
        return cls(
            type=ptype,
            command=command,
            args=tuple(table.str_list("args")),
            direct=direct,
            default=table.get_bool("default"),
            working_dir=working_dir,
            exec_env=tuple(table.str_list("exec-env")),
        )

    def to_dict(self, api: tuple[int, int]) -> dict[str, Any]:
        middle: dict[str, Any] = {} if api >= (0, 9) else {"direct": self.direct}
        if self.default:
            middle["default"] = True
        return process_dict(self, command_string=api < (0, 9), middle=middle)


class _ProcessFields(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def command(self) -> tuple[str, ...]: ...
    @property
    def args(self) -> tuple[str, ...]: ...
    @property
    def working_dir(self) -> str: ...
    @property
    def exec_env(self) -> tuple[str, ...]: ...


def process_dict(process: _ProcessFields, *, command_string: bool, middle: dict[str, Any]) -> dict[str, Any]:
    """A process as a TOML table (launch.toml's and metadata.toml's share the rule): ``type``, ``command`` and
    ``args``, then *middle*, then ``working-dir`` and ``exec-env`` when set. With *command_string* (the older APIs)
    ``command`` is one string, its first entry, and the other entries lead ``args``."""
    out: dict[str, Any] = {"type": process.type}
    if command_string:
        out["command"] = process.command[0] if process.command else ""
        out["args"] = [*process.command[1:], *process.args]
    else:
        out["command"] = list(process.command)
        out["args"] = list(process.args)
    out.update(middle)
    if process.working_dir:
        out["working-dir"] = process.working_dir
    if process.exec_env:
        out["exec-env"] = list(process.exec_env)
    return out


@dataclass(frozen=True)
class LaunchToml:
    """A parsed launch.toml. *warnings* are messages the builder should log (deprecations, ignored keys)."""

    labels: tuple[Label, ...] = ()
    processes: tuple[Process, ...] = ()
    slices: tuple[Slice, ...] = ()
    bom: tuple[BomEntry, ...] = ()
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_table(cls, table: Table, api: str) -> LaunchToml:
        version = _api(api, table.path)
        warnings: list[str] = []
        processes: list[Process] = []
        seen: set[str] = set()
        default_index: int | None = None
        for i, ptable in enumerate(table.tables("processes")):
            process = Process.from_table(ptable, version, warnings)
            if process.type in seen:
                raise ptable.error("type", f"process type {process.type!r} is declared more than once")
            seen.add(process.type)
            if process.default:
                if default_index is not None:
                    raise ptable.error(
                        "default",
                        f"processes[{default_index}] is already the default; only one process may set default = true",
                    )
                default_index = i
            processes.append(process)
        bom = tuple(BomEntry.from_table(t) for t in table.tables("bom"))
        if bom:
            warnings.append(f"{table.path}: [[bom]] is deprecated; write <layer>.sbom.<ext> files instead")
        return cls(
            labels=tuple(Label.from_table(t) for t in table.tables("labels")),
            processes=tuple(processes),
            slices=tuple(Slice.from_table(t) for t in table.tables("slices")),
            bom=bom,
            warnings=tuple(warnings),
        )

    @classmethod
    def parse(cls, text: str, path: str | Path = "", *, api: str) -> LaunchToml:
        return cls.from_table(parse_toml(text, path), api)

    @classmethod
    def load(cls, path: Path, *, api: str, missing_ok: bool = False) -> LaunchToml:
        """Read *path* as written by a buildpack of API *api*; with *missing_ok* a missing file is empty."""
        return cls.from_table(read_toml(path, missing_ok=missing_ok), api)

    @property
    def default_process(self) -> Process | None:
        return next((p for p in self.processes if p.default), None)

    def to_dict(self, api: str) -> dict[str, Any]:
        version = _api(api, "")
        out: dict[str, Any] = {}
        if self.labels:
            out["labels"] = [label.to_dict() for label in self.labels]
        if self.processes:
            out["processes"] = [p.to_dict(version) for p in self.processes]
        if self.slices:
            out["slices"] = [s.to_dict() for s in self.slices]
        if self.bom:
            out["bom"] = [b.to_dict() for b in self.bom]
        return out

    def dump(self, path: Path, *, api: str) -> None:
        write_toml(path, self.to_dict(api))
