"""Set-up shared by the build phase tests: dirs, sh test buildpacks, a group and a plan, one call to ``build``."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.files.analyzed import TargetInfo
from cnbplatform.files.group import GroupFile, GroupMember
from cnbplatform.files.plan import Plan, PlanEntry, PlanProvider, Require
from cnbplatform.lifecycle.build.phase import BuildInputs, BuildResult, build
from cnbplatform.lifecycle.common import RecordingReporter
from cnbplatform.lifecycle.context import Dirs, Execution
from cnbplatform.sandbox import HostSandbox, Sandbox
from tests.support.buildpacks import make_dirs, write_buildpack

HOST_PATH = "/usr/local/bin:/usr/bin:/bin"
TARGET = TargetInfo(os="linux", arch="amd64", distro_name="busybox", distro_version="1.35")


@dataclass
class BuildSetup:
    """A build directory tree with buildpacks; ``run`` builds a group of them."""

    root: Path
    dirs: Dirs
    members: dict[str, GroupMember] = field(default_factory=dict)
    reporter: RecordingReporter = field(default_factory=RecordingReporter)

    @classmethod
    def create(cls, root: Path) -> BuildSetup:
        return cls(root, make_dirs(root))

    def bp(
        self,
        id: str,
        build: str = "exit 0",
        *,
        version: str = "0.0.1",
        api: str = "0.12",
        toml_extra: str = "",
        homepage: str = "",
    ) -> GroupMember:
        """Write a buildpack whose ``bin/build`` is the sh script *build*; returns its group member."""
        write_buildpack(self.dirs.buildpacks, id, version, api=api, build=build, toml_extra=toml_extra)
        member = GroupMember(id, version, api, homepage)
        self.members[id] = member
        return member

    def execution(self, sandbox: Sandbox | None = None, **fields: Any) -> Execution:
        values: dict[str, Any] = {"base_env": {"PATH": HOST_PATH}}
        values.update(fields)
        return Execution(sandbox or HostSandbox(), self.dirs, **values)

    def run(
        self,
        *ids: str,
        plan: Plan | None = None,
        target: TargetInfo | None = TARGET,
        platform_api: str = "0.15",
        exec_env: str = "production",
        execution: Execution | None = None,
    ) -> BuildResult:
        inputs = BuildInputs(
            execution=execution or self.execution(),
            group=GroupFile(group=tuple(self.members[i] for i in ids)),
            plan=plan or Plan(),
            analyzed_target=target,
            platform_api=platform_api,
            exec_env=exec_env,
        )
        return build(inputs, self.reporter)

    def layers(self, *parts: str) -> Path:
        return self.dirs.layers.joinpath(*parts)

    def app(self, name: str) -> Path:
        return self.dirs.app / name

    def metadata_toml(self) -> dict[str, Any]:
        with open(self.layers("config", "metadata.toml"), "rb") as fh:
            return tomllib.load(fh)


def plan_of(*entries: tuple[str, Sequence[str], Sequence[dict[str, Any]]]) -> Plan:
    """A plan from ``(name, provider ids, [metadata of each require])`` tuples (providers at version 0.0.1)."""
    return Plan(
        tuple(
            PlanEntry(
                providers=tuple(PlanProvider(p, "0.0.1") for p in providers),
                requires=tuple(Require(name, dict(m)) for m in metadata),
            )
            for name, providers, metadata in entries
        )
    )


def layer_toml(name: str, *, launch: bool = False, build: bool = False, cache: bool = False) -> str:
    """sh lines writing ``$1/<name>.toml`` with these types and creating the layer dir."""
    flags = f"launch = {str(launch).lower()}\\nbuild = {str(build).lower()}\\ncache = {str(cache).lower()}"
    return f'mkdir -p "$1/{name}"\nprintf "[types]\\n{flags}\\n" > "$1/{name}.toml"'


def launch_toml(text: str) -> str:
    """sh lines writing ``$1/launch.toml``."""
    return f"cat > \"$1/launch.toml\" <<'EOF'\n{text}\nEOF"
