"""How phases reach buildpack code: host directories, the paths buildpacks see, and the sandbox between them.

docs/design.md §3 decision 1: the lifecycle reads and writes the layers, app and platform dirs on the host; each
``bin/detect`` / ``bin/build`` runs through a :class:`~cnbplatform.sandbox.Sandbox` that bind-mounts those dirs at
the paths the spec names (docs/spec-notes.md §1.1). When the phases run inside a build container (``cnb lifecycle …``),
host paths and buildpack paths are the same and the sandbox is the host one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnbplatform.sandbox import Mount, RunRequest, RunResult, Sandbox

# docs/spec-notes.md §3.9 step 1: the only variables of the lifecycle's own environment that buildpacks may see.
PASSTHROUGH_ENV = (
    "PATH",
    "LD_LIBRARY_PATH",
    "LIBRARY_PATH",
    "CPATH",
    "PKG_CONFIG_PATH",
    "HOME",
    "HOSTNAME",
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "NO_PROXY",
    "no_proxy",
    "CNB_STACK_ID",
)


def filter_base_env(env: Mapping[str, str]) -> dict[str, str]:
    """The lifecycle's environment reduced to the spec's include list (docs/spec-notes.md §3.9 step 1, §16 item 14)."""
    return {k: env[k] for k in PASSTHROUGH_ENV if k in env}


@dataclass(frozen=True)
class Dirs:
    """Host paths of the directories the spec names."""

    layers: Path
    app: Path
    platform: Path
    buildpacks: Path
    build_config: Path | None = None
    extensions: Path | None = None


@dataclass(frozen=True)
class SandboxPaths:
    """The same directories as buildpack code sees them (docs/spec-notes.md §1.1 defaults)."""

    layers: str = "/layers"
    app: str = "/workspace"
    platform: str = "/platform"
    buildpacks: str = "/cnb/buildpacks"
    build_config: str = "/cnb/build-config"
    extensions: str = "/cnb/extensions"

    @classmethod
    def same_as(cls, dirs: Dirs) -> SandboxPaths:
        """Buildpacks see the host paths themselves (phases run inside the build container)."""
        return cls(
            layers=str(dirs.layers),
            app=str(dirs.app),
            platform=str(dirs.platform),
            buildpacks=str(dirs.buildpacks),
            build_config=str(dirs.build_config or "/cnb/build-config"),
            extensions=str(dirs.extensions or "/cnb/extensions"),
        )


OutputSink = Callable[[str, bytes], None]


@dataclass(frozen=True)
class Execution:
    """Everything needed to run one buildpack executable: sandbox, dirs on both sides, user, limits."""

    sandbox: Sandbox
    dirs: Dirs
    paths: SandboxPaths = field(default_factory=SandboxPaths)
    uid: int = 1000
    gid: int = 1000
    network: bool = True
    timeout: float | None = None
    output_limit: int = 8 * 1024 * 1024
    base_env: Mapping[str, str] = field(default_factory=dict)
    extra_mounts: Sequence[Mount] = ()

    def mounts(self, *, extra: Sequence[Mount] = ()) -> list[Mount]:
        """Bind mounts of the spec's dirs: layers and app writable, platform and buildpacks read-only. A platform
        dir that does not exist (the default ``/platform`` on a workstation) is not mounted: the buildpack finds no
        platform dir, as it would without a sandbox, and reads no platform env."""
        # Sources are absolute: a relative --app (./app) names a dir under this process's cwd, not the sandbox's.
        out = [Mount(self.dirs.layers.absolute(), self.paths.layers), Mount(self.dirs.app.absolute(), self.paths.app)]
        if self.dirs.platform.exists():
            out.append(Mount(self.dirs.platform.absolute(), self.paths.platform, read_only=True))
        out.append(Mount(self.dirs.buildpacks.absolute(), self.paths.buildpacks, read_only=True))
        if self.dirs.build_config is not None and self.dirs.build_config.exists():
            out.append(Mount(self.dirs.build_config.absolute(), self.paths.build_config, read_only=True))
        return [*out, *self.extra_mounts, *extra]

    def buildpack_path(self, host_path: Path) -> str:
        """Where a file under the host buildpacks dir appears to buildpack code."""
        return self.paths.buildpacks + "/" + host_path.relative_to(self.dirs.buildpacks).as_posix()

    def layers_path(self, host_path: Path) -> str:
        relative = host_path.relative_to(self.dirs.layers).as_posix()
        return self.paths.layers if relative == "." else f"{self.paths.layers}/{relative}"

    def run(
        self,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        source: str,
        sink: OutputSink | None = None,
        extra_mounts: Sequence[Mount] = (),
    ) -> RunResult:
        """Run *argv* (buildpack-side paths) with cwd = the app dir, streaming output to *sink* as *source*."""

        def forward(data: bytes) -> None:
            if sink is not None:
                sink(source, data)

        return self.sandbox.run(
            RunRequest(
                argv=list(argv),
                env=dict(env),
                cwd=self.paths.app,
                mounts=self.mounts(extra=extra_mounts),
                uid=self.uid,
                gid=self.gid,
                network=self.network,
                timeout=self.timeout,
                stdout=forward,
                stderr=forward,
                output_limit=self.output_limit,
            )
        )
