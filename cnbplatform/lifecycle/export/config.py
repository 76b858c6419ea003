"""The app image's config: entrypoint, env, working dir, created time, history and labels (docs/spec-notes.md §6.2-§6.6;
§16 items 38-41).

- Entrypoint: ``/cnb/process/<type>`` for the requested default process (unknown: export error), else for the
  buildpacks' default (unknown: a warning), else ``/cnb/lifecycle/launcher``; ``Cmd`` empty; ``WorkingDir`` = app.
- Env: the run image's, with ``CNB_LAYERS_DIR``, ``CNB_APP_DIR``, ``CNB_PLATFORM_API``, ``CNB_DEPRECATION_MODE=quiet``
  set in place (appended when absent) and ``PATH=/cnb/process:/cnb/lifecycle:<run image PATH>``.
- ``created``: 1980-01-01T00:00:01Z, or ``SOURCE_DATE_EPOCH``; the same for every history entry added.
- Labels: the run image's (``io.buildpacks.rebasable`` and ``io.buildpacks.base.*`` inherited, LC behaviour of
  §6.3 ⚠), then the buildpacks' ``[[labels]]`` (last definition wins), then the lifecycle's own labels, which
  buildpacks cannot override.
- Without ``/bin/sh`` in the run image the sh launcher cannot run; then a direct default process that needs no
  exec.d gets its environment baked into the config and its command as the entrypoint (docs/design.md §3 decision 3).

Everything here is a pure function of its inputs (no clock, no map order): docs/spec-notes.md §16 item 42.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cnbplatform.files.analyzed import Analyzed, RunImageRef
from cnbplatform.files.apis import LIFECYCLE_VERSION, ApiVersion
from cnbplatform.files.labels import (
    BUILD_METADATA_LABEL,
    EXEC_ENV_LABEL,
    LIFECYCLE_METADATA_LABEL,
    PROJECT_METADATA_LABEL,
    BuildMetadataLabel,
    LauncherInfo,
    LifecycleMetadata,
    ProjectMetadataLabel,
)
from cnbplatform.files.metadata import BuildMetadata, ProcessEntry
from cnbplatform.files.report import ProjectMetadata
from cnbplatform.files.run_toml import RunConfig
from cnbplatform.launcher import LAUNCHER_PATH, LIFECYCLE_DIR, PROCESS_DIR, LaunchBuildpack, has_exec_d
from cnbplatform.launcher import static_launch_env as _static_env
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.lifecycle.export.layers import export_error
from cnbplatform.lifecycle.run_image import run_image_entry

SBOM_CREATED_BY = "Software Bill-of-Materials"
APP_CREATED_BY = "Application Layer"
SLICE_CREATED_BY = "Application Slice: {}"
LAUNCHER_CREATED_BY = "Buildpacks Application Launcher"
CONFIG_CREATED_BY = "Buildpacks Launcher Config"
PROCESS_TYPES_CREATED_BY = "Buildpacks Process Types"


def process_path(process_type: str) -> str:
    return f"{PROCESS_DIR}/{process_type}"


def default_process(metadata: BuildMetadata, requested: str | None, reporter: Reporter) -> ProcessEntry | None:
    """The process the image starts by default (§6.3, §16 item 38); None: the bare launcher."""
    if requested:
        process = metadata.process(requested)
        if process is None:
            known = ", ".join(sorted(p.type for p in metadata.processes)) or "none"
            raise export_error(
                f"set the default process type {requested!r}", f"no such process type (process types: {known})"
            )
        return process
    if metadata.default_process_type:
        process = metadata.process(metadata.default_process_type)
        if process is not None:
            return process
        reporter.warn(f"default process type {metadata.default_process_type!r} not present in list of processes")
    return None


def _set_env(env: list[str], name: str, value: str) -> None:
    for index, item in enumerate(env):
        if item.partition("=")[0] == name:
            env[index] = f"{name}={value}"
            return
    env.append(f"{name}={value}")


def image_env(base: Sequence[str], *, layers_mount: str, app_mount: str, platform_api: str) -> tuple[str, ...]:
    """The run image's env plus the variables of §6.3 (§16 item 39); existing names are replaced in place."""
    env = list(base)
    path = next((item.partition("=")[2] for item in env if item.partition("=")[0] == "PATH"), "")
    _set_env(env, "CNB_LAYERS_DIR", layers_mount)
    _set_env(env, "CNB_APP_DIR", app_mount)
    _set_env(env, "CNB_PLATFORM_API", platform_api)
    _set_env(env, "CNB_DEPRECATION_MODE", "quiet")
    _set_env(env, "PATH", ":".join(p for p in (PROCESS_DIR, LIFECYCLE_DIR, path) if p))
    return tuple(env)


@dataclass(frozen=True)
class StaticProcess:
    """A process baked into the image config (no launcher at run time)."""

    env: tuple[str, ...]
    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] | None
    working_dir: str


def static_process(
    process: ProcessEntry | None,
    buildpacks: Sequence[LaunchBuildpack],
    base_env: Sequence[str],
    *,
    layers_mount: str,
    app_mount: str,
    platform_api: str,
    buildpack_api: str,
    reporter: Reporter,
) -> StaticProcess | None:
    """The config of a run image without ``/bin/sh`` (docs/design.md §3 decision 3), or None when the default process
    needs the launcher (no default, not direct, or exec.d programs to run); then a warning says why."""
    why = ""
    if process is None:
        why = "there is no default process"
    elif not process.direct:
        why = f"process type {process.type!r} runs through a shell"
    elif has_exec_d(buildpacks, process.type):
        why = f"process type {process.type!r} needs exec.d programs"
    if process is None or why:
        reporter.warn(f"the run image has no /bin/sh and {why}: the image will not start without a command")
        return None
    env_map = dict(item.partition("=")[::2] for item in base_env)
    launched = _static_env(buildpacks, process.type, env_map, layers_dir=layers_mount, warn=reporter.warn)
    env = image_env(
        [f"{k}={v}" for k, v in launched.items()],
        layers_mount=layers_mount,
        app_mount=app_mount,
        platform_api=platform_api,
    )
    append = ApiVersion.parse(platform_api).less_than("0.10") or (
        len(process.command) == 1 and ApiVersion.parse(buildpack_api or "0.12").less_than("0.9")
    )
    entrypoint = (*process.command, *process.args) if append else process.command
    cmd = None if append or not process.args else process.args
    workdir = posixpath.join(app_mount, process.working_dir) if process.working_dir else app_mount
    reporter.info(f"The run image has no /bin/sh: process type {process.type!r} is the entrypoint, without launcher")
    return StaticProcess(env, tuple(entrypoint), cmd, workdir)


def entrypoint_for(process: ProcessEntry | None) -> tuple[str, ...]:
    return (process_path(process.type),) if process is not None else (LAUNCHER_PATH,)


def run_image_for_export(run_config: RunConfig | None, analyzed: Analyzed, metadata: BuildMetadata) -> RunImageRef:
    """``runImage.image``/``mirrors`` of the label (§5.2): the run.toml entry naming the run image, else (when
    extensions switched it) just the analyzed name, else the first entry; without run.toml images, the run image
    as the platform named it (so a rebase can find it again)."""
    name = analyzed.run_image.image if analyzed.run_image else ""
    if run_config is None or not run_config.images:
        return RunImageRef(name) if name else RunImageRef()
    entry = run_image_entry(run_config, name) if name else None
    if entry is not None:
        return RunImageRef(entry.image, entry.mirrors)
    if metadata.extensions:
        return RunImageRef(name)
    first = run_config.images[0]
    return RunImageRef(first.image, first.mirrors)


def launcher_info(custom: bool) -> LauncherInfo:
    """``launcher`` of the build metadata label: cnb's sh launcher, or unknown for a builder's own binary."""
    return LauncherInfo() if custom else LauncherInfo(version=LIFECYCLE_VERSION, repository="cnbplatform")


def image_labels(
    base: Mapping[str, str],
    *,
    lifecycle: LifecycleMetadata,
    metadata: BuildMetadata,
    project: ProjectMetadata | None,
    launcher: LauncherInfo,
    exec_env: str,
    platform_api: str,
    reporter: Reporter,
) -> dict[str, str]:
    """The labels of the app image (§6.3-§6.6, §16 item 41)."""
    labels = dict(base)
    for label in metadata.labels:
        reporter.debug(f"Adding label '{label.key}'")
        labels[label.key] = label.value
    labels[LIFECYCLE_METADATA_LABEL] = lifecycle.to_json()
    labels[BUILD_METADATA_LABEL] = BuildMetadataLabel.from_build_metadata(metadata, launcher, platform_api).to_json()
    project_label = ProjectMetadataLabel.from_project_metadata(project or ProjectMetadata())
    labels[PROJECT_METADATA_LABEL] = project_label.to_json()
    if ApiVersion.parse(platform_api).at_least("0.15"):
        labels[EXEC_ENV_LABEL] = exec_env
    return labels
