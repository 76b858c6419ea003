"""``<layers>/config/metadata.toml`` (docs/spec-notes.md §5.3): written by the builder, read by the exporter and the
launcher.

```toml
buildpack-default-process-type = "web"     # omitted if none
[[buildpacks]]   id, version, api, homepage (also [[extensions]])
[[labels]]       key, value
[[processes]]    type, command (array), args, direct, buildpack-id, working-dir?, exec-env?
[[slices]]       paths
```

Written as the Platform API of the build says (https://github.com/buildpacks/spec/blob/platform/v0.9/platform.md
and later): ``command`` is an array from 0.10 on and one string before (the builder has moved the rest of the
command to the front of ``args``); the deprecated ``[[bom]]`` (launch BOM of Buildpack API < 0.7 buildpacks,
each entry tagged with its buildpack) is kept below 0.9 only. Processes are sorted by type; ``default`` is never
written (the default lives in ``buildpack-default-process-type``). Reading accepts both ``command`` forms.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cnbplatform.files.apis import LATEST_PLATFORM_API, ApiVersion
from cnbplatform.files.common import Table, parse_toml, read_toml, write_toml
from cnbplatform.files.launch import Label, Process, Slice, process_dict


def command_as_string(platform_api: str | ApiVersion) -> bool:
    """Platform API < 0.10 writes a process ``command`` as one string, later ones as an array."""
    return ApiVersion.parse(platform_api).less_than("0.10")


def keeps_bom(platform_api: str | ApiVersion) -> bool:
    """Platform API < 0.9 keeps the deprecated ``bom`` in metadata.toml and the build metadata label."""
    return ApiVersion.parse(platform_api).less_than("0.9")


@dataclass(frozen=True)
class BuildpackRef:
    """A buildpack (or extension) that took part in the build."""

    id: str
    version: str
    api: str = ""
    homepage: str = ""

    @classmethod
    def from_table(cls, table: Table) -> BuildpackRef:
        return cls(
            id=table.get_str("id", required=True),
            version=table.get_str("version"),
            api=table.get_str("api"),
            homepage=table.get_str("homepage"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "version": self.version}
        if self.api:
            out["api"] = self.api
        if self.homepage:
            out["homepage"] = self.homepage
        return out


def read_command(table: Table, key: str = "command") -> tuple[str, ...]:
    """A process command that is either an array of strings or (Platform < 0.10) one string."""
    raw = table.data.get(key)
    if isinstance(raw, str):
        return (raw,)
    if raw is None:
        raise table.error(key, "required, expected an array of strings")
    return tuple(table.str_list(key))


@dataclass(frozen=True)
class ProcessEntry:
    """A process of the finished build, tagged with the buildpack that declared it."""

    type: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    direct: bool = True
    buildpack_id: str = ""
    working_dir: str = ""
    exec_env: tuple[str, ...] = ()

    @classmethod
    def from_process(cls, process: Process, buildpack_id: str) -> ProcessEntry:
        return cls(
            type=process.type,
            command=process.command,
            args=process.args,
            direct=process.direct,
            buildpack_id=buildpack_id,
            working_dir=process.working_dir,
            exec_env=process.exec_env,
        )

    @classmethod
    def from_table(cls, table: Table, *, buildpack_id_key: str = "buildpack-id") -> ProcessEntry:
        return cls(
            type=table.get_str("type", required=True),
            command=read_command(table),
            args=tuple(table.str_list("args")),
            direct=table.get_bool("direct"),
            buildpack_id=table.get_str(buildpack_id_key),
            working_dir=table.get_str("working-dir"),
            exec_env=tuple(table.str_list("exec-env")),
        )

    def to_dict(self, *, buildpack_id_key: str = "buildpack-id", command_string: bool = False) -> dict[str, Any]:
        """With *command_string* (Platform API < 0.10) ``command`` is its first entry and the others lead ``args``."""
        middle = {"direct": self.direct, buildpack_id_key: self.buildpack_id}
        return process_dict(self, command_string=command_string, middle=middle)


@dataclass(frozen=True)
class BuildMetadata:
    """A parsed metadata.toml."""

    buildpacks: tuple[BuildpackRef, ...] = ()
    extensions: tuple[BuildpackRef, ...] = ()
    labels: tuple[Label, ...] = ()
    processes: tuple[ProcessEntry, ...] = ()
    slices: tuple[Slice, ...] = ()
    default_process_type: str = ""
    bom: tuple[dict[str, Any], ...] = ()

    def process(self, process_type: str) -> ProcessEntry | None:
        return next((p for p in self.processes if p.type == process_type), None)

    def sorted(self) -> BuildMetadata:
        """The same metadata with processes sorted by type (the order it is written in)."""
        return replace(self, processes=tuple(sorted(self.processes, key=lambda p: p.type)))

    @classmethod
    def from_table(cls, table: Table) -> BuildMetadata:
        return cls(
            buildpacks=tuple(BuildpackRef.from_table(t) for t in table.tables("buildpacks")),
            extensions=tuple(BuildpackRef.from_table(t) for t in table.tables("extensions")),
            labels=tuple(Label.from_table(t) for t in table.tables("labels")),
            processes=tuple(ProcessEntry.from_table(t) for t in table.tables("processes")),
            slices=tuple(Slice.from_table(t) for t in table.tables("slices")),
            default_process_type=table.get_str("buildpack-default-process-type"),
            bom=tuple(dict(t.data) for t in table.tables("bom")),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path = "") -> BuildMetadata:
        return cls.from_table(Table(data, path))

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> BuildMetadata:
        return cls.from_table(parse_toml(text, path))

    @classmethod
    def load(cls, path: Path) -> BuildMetadata:
        return cls.from_table(read_toml(path))

    def to_dict(self, platform_api: str | ApiVersion = LATEST_PLATFORM_API) -> dict[str, Any]:
        """The file as *platform_api* writes it (module docstring)."""
        out: dict[str, Any] = {}
        if self.bom and keeps_bom(platform_api):
            out["bom"] = [dict(entry) for entry in self.bom]
        if self.default_process_type:
            out["buildpack-default-process-type"] = self.default_process_type
        out["buildpacks"] = [b.to_dict() for b in self.buildpacks]
        if self.extensions:
            out["extensions"] = [e.to_dict() for e in self.extensions]
        out["labels"] = [label.to_dict() for label in self.labels]
        as_string = command_as_string(platform_api)
        out["processes"] = [p.to_dict(command_string=as_string) for p in self.sorted().processes]
        out["slices"] = [s.to_dict() for s in self.slices]
        return out

    def dump(self, path: Path, platform_api: str | ApiVersion = LATEST_PLATFORM_API) -> None:
        write_toml(path, self.to_dict(platform_api))
