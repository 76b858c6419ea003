"""The build phase (docs/spec-notes.md §2.4, §3.3, §3.9, §3.10, §5.3; §16 items 20-32).

For each buildpack of the group, in order: look up its descriptor; take its buildpack plan (the requires of every
plan entry it provides, minus entries met by earlier buildpacks); create ``<layers>/<bp>``; write the plan; run
``bin/build <layers>/<bp> <platform> <plan>`` with cwd ``<app>``; then process its layers (decode tomls, set
unused ones aside), add its build layers to the accumulated build env, read build.toml (unmet → plan filtering),
check its SBOM files and read launch.toml. After all: copy the SBOM files (Platform API ≥ 0.8), write the legacy
BOM JSON (≥ 0.9) and ``<layers>/config/metadata.toml``.

Environment of ``bin/build`` (§3.3, §3.9): the execution's base env (already reduced to the include list) plus
the env accumulated from earlier buildpacks' build layers, plus ``<platform>/env`` (unless ``clear-env``) and
``<build-config>/env``, plus ``CNB_BUILDPACK_DIR``; with Buildpack API ≥ 0.8 ``CNB_LAYERS_DIR``,
``CNB_PLATFORM_DIR`` and ``CNB_BP_PLAN_PATH``; with ≥ 0.10 ``CNB_TARGET_*`` (when the run image target is known);
with ≥ 0.12 ``CNB_EXEC_ENV``. The ``CNB_*`` variables are set last, so no env file can change them.

The buildpack plan file: the builder writes every buildpack's plan to ``<bp>/plan.toml`` in a private temporary
directory of its own (mode 0755, files 0644, so the sandbox user can read them), bind-mounted read-only at
:data:`PLAN_MOUNT` for every ``bin/build`` (one mount for the whole build, so a container sandbox keeps its
container), and removed when the phase ends. It is kept out of ``<layers>`` so that no stray file is left there
for the exporter or the cache, and buildpacks cannot rewrite each other's plans.

Exit codes (§1.3): a ``bin/build`` that exits non-zero, is killed, times out or is missing fails the build with 51
(:class:`BuildpackFailed`, which also carries the buildpacks that completed); every other failure is 52, and an
unsupported buildpack API is 12.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cnbplatform.buildpack.env import cnb_target_env, invocation_env
from cnbplatform.buildpack.layers_env import BuildEnv, BuildLayer
from cnbplatform.buildpack.lookup import find_buildpack
from cnbplatform.errors import CnbError, PhaseError
from cnbplatform.files.analyzed import TargetInfo
from cnbplatform.files.apis import SUPPORTED_BUILDPACK_APIS, ApiVersion, ApiVersionError, is_supported
from cnbplatform.files.buildpack_toml import BuildpackDescriptor
from cnbplatform.files.group import GroupFile, GroupMember
from cnbplatform.files.metadata import BuildMetadata, BuildpackRef
from cnbplatform.files.plan import BuildpackPlan, Plan
from cnbplatform.lifecycle.build.layers import (
    LayerInfo,
    phase_error,
    prepare_buildpack_dir,
    process_layers,
    remove_path,
)
from cnbplatform.lifecycle.build.outputs import (
    Collected,
    config_share,
    met_requires,
    read_build_toml,
    read_launch_toml,
)
from cnbplatform.lifecycle.build.sbom import (
    SbomFile,
    clear_sbom_dir,
    copy_sbom_files,
    find_sbom_files,
    write_legacy_bom,
)
from cnbplatform.lifecycle.common import (
    EXIT_BUILDPACK_API,
    EXIT_BUILDPACK_BUILD,
    EXIT_PLATFORM_API,
    Reporter,
    check_group_apis,
)
from cnbplatform.lifecycle.context import Execution
from cnbplatform.sandbox import Mount

PHASE = "build"
#: Where buildpacks find their plan files: ``<PLAN_MOUNT>/<escaped id>/plan.toml``.
PLAN_MOUNT = "/tmp/cnb-build-plans"


@dataclass(frozen=True)
class BuildInputs:
    """Everything the build phase reads (§2.4). *analyzed_target* is ``[run-image.target]`` of analyzed.toml."""

    execution: Execution
    group: GroupFile
    plan: Plan
    analyzed_target: TargetInfo | None
    platform_api: str
    exec_env: str = "production"


@dataclass(frozen=True)
class BuildpackOutcome:
    """One buildpack's build: *duration* is the time spent inside ``bin/build`` (seconds)."""

    id: str
    version: str
    api: str
    duration: float
    layers: tuple[LayerInfo, ...] = ()
    plan: BuildpackPlan = field(default_factory=BuildpackPlan)
    met: tuple[str, ...] = ()
    sbom_files: tuple[SbomFile, ...] = ()

    def __str__(self) -> str:
        return f"{self.id}@{self.version}"


@dataclass(frozen=True)
class BuildResult:
    """The finished build: the metadata.toml written (and where), and what each buildpack did."""

    metadata: BuildMetadata
    metadata_path: Path
    buildpacks: tuple[BuildpackOutcome, ...]
    sbom_paths: tuple[Path, ...] = ()

    @property
    def buildpack_time(self) -> float:
        """Total seconds spent inside ``bin/build`` executables."""
        return sum(b.duration for b in self.buildpacks)


class BuildpackFailed(PhaseError):
    """A ``bin/build`` failed (exit 51). *completed* are the buildpacks that finished before it; *duration* is the
    time the failing one ran; *exit_status* its exit code (None when it could not be started)."""

    def __init__(
        self,
        buildpack: str,
        reason: str,
        *,
        exit_status: int | None,
        timed_out: bool,
        duration: float,
        completed: tuple[BuildpackOutcome, ...],
    ) -> None:
        super().__init__(PHASE, EXIT_BUILDPACK_BUILD, f"run bin/build of {buildpack}", reason)
        self.buildpack = buildpack
        self.exit_status = exit_status
        self.timed_out = timed_out
        self.duration = duration
        self.completed = completed


def build(inputs: BuildInputs, reporter: Reporter) -> BuildResult:
    """Run the build phase (§3.10) and write ``<layers>/config/metadata.toml``."""
    layers_dir = inputs.execution.dirs.layers
    platform_api = _platform_api(inputs.platform_api)
    check_group_apis(inputs.group, PHASE)
    descriptors = [_descriptor(inputs.execution, member) for member in inputs.group.group]
    clear_sbom_dir(layers_dir)
    metadata_path = layers_dir / "config" / "metadata.toml"
    try:
        _replace_symlink_dir(metadata_path.parent)
        remove_path(metadata_path)
    except OSError as exc:
        raise phase_error("remove the old metadata.toml", f"{metadata_path}: {exc.strerror or exc}") from exc
    with _plan_dir() as plan_dir:
        builder = _Builder(inputs, reporter, plan_dir)
        for member, descriptor in zip(inputs.group.group, descriptors, strict=True):
            builder.run(member, descriptor)
    sbom_paths: list[Path] = []
    if platform_api.at_least("0.8"):
        clear_sbom_dir(layers_dir)  # again: a buildpack may have planted something there
        sbom_paths = copy_sbom_files(layers_dir, builder.sbom_files)
    if platform_api.at_least("0.9"):
        write_legacy_bom(layers_dir, builder.collected.launch_bom, builder.collected.build_bom)
    metadata = builder.collected.metadata(
        (_ref(m, d) for m, d in zip(inputs.group.group, descriptors, strict=True)),
        (BuildpackRef(e.id, e.version, e.api, e.homepage) for e in inputs.group.group_extensions),
        platform_api,
    )
    try:
        _replace_symlink_dir(metadata_path.parent)
        metadata.dump(metadata_path, platform_api)
    except (OSError, CnbError) as exc:
        raise phase_error("write metadata.toml", f"{metadata_path}: {exc}") from exc
    return BuildResult(metadata, metadata_path, tuple(builder.outcomes), tuple(sbom_paths))


class _Builder:
    """The state carried from one buildpack to the next: build env, remaining plan, collected outputs."""

    def __init__(self, inputs: BuildInputs, reporter: Reporter, plan_dir: Path) -> None:
        self.inputs = inputs
        self.ex = inputs.execution
        self.reporter = reporter
        self.plan_dir = plan_dir
        self.env = BuildEnv(self.ex.base_env)
        self.plan = inputs.plan
        self.collected = Collected()
        self.outcomes: list[BuildpackOutcome] = []
        self.sbom_files: list[SbomFile] = []

    def run(self, member: GroupMember, descriptor: BuildpackDescriptor) -> None:
        """One buildpack (§3.10): plan, layers dir, ``bin/build``, then its layers, env, build.toml, SBOM files
        and launch.toml, in the Go lifecycle's order."""
        name = f"{member.id}@{member.version}"
        layers_dir = self.ex.dirs.layers
        bp_plan = self.plan.for_provider(member.id)
        bp_dir = prepare_buildpack_dir(layers_dir, descriptor.escaped_id, buildpack=name)
        plan_file = self._write_plan(descriptor.escaped_id, bp_plan, name)
        self.reporter.info(f"Running build for buildpack {name}")
        duration = self._run_build(descriptor, name, bp_dir, plan_file)
        self.reporter.debug(f"{name}: bin/build took {duration:.3f}s")

        layers = process_layers(bp_dir, layers_dir, buildpack=name)
        build_layers = [BuildLayer(x.path, self.ex.layers_path(x.path)) for x in layers if x.types.build]
        try:
            self.env.add_layers(build_layers, boundary=layers_dir)
        except CnbError as exc:
            raise phase_error(f"read the build env of {name}", exc.message) from exc
        build_toml = read_build_toml(bp_dir, layers_dir, buildpack=name)
        met = met_requires(bp_plan, build_toml, buildpack=name)
        self.plan = self.plan.without(met)
        sbom = find_sbom_files(
            bp_dir,
            buildpack_id=member.id,
            buildpack=name,
            layers={x.name: x.types for x in layers},
            sbom_formats=descriptor.info.sbom_formats,
            boundary=layers_dir,
            reporter=self.reporter,
        )
        self.sbom_files.extend(sbom)
        launch = read_launch_toml(bp_dir, layers_dir, api=descriptor.api, buildpack=name)
        for warning in launch.warnings:
            self.reporter.warn(f"{name}: {warning}")
        self.collected.charge(name, config_share(launch, (x.toml.metadata for x in layers)))
        warning = self.collected.add(member.id, member.version, launch, build_toml)
        if warning:
            self.reporter.warn(f"{name}: {warning}")
        self.outcomes.append(
            BuildpackOutcome(
                member.id, member.version, descriptor.api, duration, tuple(layers), bp_plan, met, tuple(sbom)
            )
        )

    def _write_plan(self, escaped_id: str, plan: BuildpackPlan, name: str) -> str:
        """Write the buildpack plan (§3.3) into the private plan dir; returns its buildpack-side path."""
        directory = self.plan_dir / escaped_id
        try:
            directory.mkdir(mode=0o755, exist_ok=True)
            directory.chmod(0o755)
            plan.dump(directory / "plan.toml")
            (directory / "plan.toml").chmod(0o644)
        except OSError as exc:
            raise phase_error(f"write the buildpack plan of {name}", f"{directory}: {exc.strerror or exc}") from exc
        return f"{PLAN_MOUNT}/{escaped_id}/plan.toml"

    def _failed(
        self, name: str, reason: str, *, status: int | None, timed_out: bool, duration: float
    ) -> BuildpackFailed:
        return BuildpackFailed(
            name, reason, exit_status=status, timed_out=timed_out, duration=duration, completed=tuple(self.outcomes)
        )

    def _run_build(self, descriptor: BuildpackDescriptor, name: str, bp_dir: Path, plan_file: str) -> float:
        """Run ``bin/build`` (§3.3); returns its duration; raises BuildpackFailed (51) when it does not succeed."""
        ex = self.ex
        host_dir = ex.dirs.buildpacks / descriptor.escaped_id / descriptor.version
        executable = host_dir / "bin" / "build"
        if not executable.is_file() or not os.access(executable, os.X_OK):
            reason = f"{executable} is missing or not executable"
            raise self._failed(name, reason, status=None, timed_out=False, duration=0.0)
        layers_path = ex.layers_path(bp_dir)
        argv = [ex.buildpack_path(executable), layers_path, ex.paths.platform, plan_file]
        env = self._env(descriptor, ex.buildpack_path(host_dir), layers_path, plan_file, name)
        plan_mount = Mount(self.plan_dir, PLAN_MOUNT, read_only=True)
        started = time.monotonic()
        try:
            result = ex.run(argv, env, source=name, sink=self.reporter.output, extra_mounts=[plan_mount])
        except CnbError as exc:
            raise phase_error(f"run bin/build of {name}", exc.message) from exc
        duration = result.duration or time.monotonic() - started
        if result.timed_out:
            reason = f"timed out after {ex.timeout or 0:g}s"
            raise self._failed(name, reason, status=result.exit_code, timed_out=True, duration=duration)
        if result.exit_code != 0:
            reason = f"exit code {result.exit_code}"
            raise self._failed(name, reason, status=result.exit_code, timed_out=False, duration=duration)
        return duration

    def _env(
        self, descriptor: BuildpackDescriptor, bp_path: str, layers_path: str, plan_file: str, name: str
    ) -> dict[str, str]:
        """The environment of one ``bin/build`` (§3.3, §3.9)."""
        ex = self.ex
        try:
            env = invocation_env(
                self.env.snapshot(),
                platform_dir=ex.dirs.platform,
                build_config_dir=ex.dirs.build_config,
                clear_env=descriptor.info.clear_env,
            )
        except CnbError as exc:
            raise phase_error(f"prepare the environment of {name}", exc.message) from exc
        api = descriptor.api_version
        env["CNB_BUILDPACK_DIR"] = bp_path
        if api.at_least("0.8"):
            env["CNB_LAYERS_DIR"] = layers_path
            env["CNB_PLATFORM_DIR"] = ex.paths.platform
            env["CNB_BP_PLAN_PATH"] = plan_file
        if api.at_least("0.10") and self.inputs.analyzed_target is not None:
            env.update(cnb_target_env(self.inputs.analyzed_target))
        if api.at_least("0.12"):
            env["CNB_EXEC_ENV"] = self.inputs.exec_env
        return env


def _platform_api(text: str) -> ApiVersion:
    try:
        return ApiVersion.parse(text)
    except ApiVersionError as exc:
        raise PhaseError(PHASE, EXIT_PLATFORM_API, "read the Platform API", exc.message) from exc


def _descriptor(ex: Execution, member: GroupMember) -> BuildpackDescriptor:
    """The buildpack.toml of a group member (§3.10): found, a component buildpack, of a supported API."""
    action = f"look up buildpack {member}"
    try:
        descriptor = find_buildpack(ex.dirs.buildpacks, member.id, member.version)
        api = descriptor.api_version
    except CnbError as exc:
        raise phase_error(action, exc.message) from exc
    if not is_supported(api, SUPPORTED_BUILDPACK_APIS):
        supported = ", ".join(str(v) for v in SUPPORTED_BUILDPACK_APIS)
        reason = f"buildpack API {descriptor.api} is not supported (supported: {supported})"
        raise PhaseError(PHASE, EXIT_BUILDPACK_API, action, reason)
    if descriptor.is_composite:
        raise phase_error(
            action, "it is a composite buildpack (an [[order]]); the group must list component buildpacks"
        )
    return descriptor


def _ref(member: GroupMember, descriptor: BuildpackDescriptor) -> BuildpackRef:
    """The metadata.toml entry of a buildpack (§5.3): id, version, API and homepage."""
    return BuildpackRef(member.id, member.version, descriptor.api, member.homepage or descriptor.info.homepage)


@contextmanager
def _plan_dir() -> Iterator[Path]:
    """A private directory for the buildpack plans, readable by the sandbox user, removed afterwards."""
    try:
        path = Path(tempfile.mkdtemp(prefix="cnb-build-plans-"))
        path.chmod(0o755)
    except OSError as exc:
        raise phase_error("create a directory for the buildpack plans", str(exc)) from exc
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _replace_symlink_dir(path: Path) -> None:
    """Make *path* a real directory: a symlink there (planted by a buildpack) is removed, not followed."""
    if path.is_symlink() or (os.path.lexists(path) and not path.is_dir()):
        path.unlink()
    path.mkdir(parents=True, exist_ok=True)
