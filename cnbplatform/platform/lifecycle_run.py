"""``cnb lifecycle <phase>``: resolve settings, run one phase (or all of them for ``create``), report timings."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from cnbplatform.errors import CnbError, PhaseError, UsageError
from cnbplatform.files.apis import ApiVersion, check_platform_api
from cnbplatform.lifecycle.common import EXIT_LAUNCH, Reporter
from cnbplatform.platform.lifecycle_settings import LifecycleSettings, resolve_settings

if TYPE_CHECKING:
    from cnbplatform.lifecycle.export.phase import ExportResult
    from cnbplatform.platform.context import PlatformContext
    from cnbplatform.platform.phases import Phases

# The phases' own modules (export, registries, image stores) are imported where they are used: a detector or
# builder started in a build container imports only what its phase needs (start-up, bench/lifecycle_bundle.py).

PHASES = ("analyze", "detect", "restore", "build", "export", "create", "rebase", "launch")
_WITH_IMAGES = {"analyze", "export", "create", "rebase", "launch"}


def source_date_epoch(env: Mapping[str, str], reporter: Reporter) -> int | None:
    """``SOURCE_DATE_EPOCH`` (docs/spec-notes.md §2.5, Platform ≥0.9); an invalid value is ignored with a warning."""
    value = env.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        return None
    if value.isdigit():
        return int(value)
    reporter.warn(f"ignoring SOURCE_DATE_EPOCH={value!r}: not a whole number of seconds")
    return None


def _creation_time(phases: Phases, reporter: Reporter) -> int | None:
    """The platform's creation time (``cnb build --creation-time``), else ``SOURCE_DATE_EPOCH``."""
    given = phases.settings.source_date_epoch
    return given if given is not None else source_date_epoch(phases.ctx.env, reporter)


def run_export(phases: Phases, reporter: Reporter) -> ExportResult:
    from cnbplatform.files.analyzed import Analyzed
    from cnbplatform.files.group import GroupFile
    from cnbplatform.files.lifecycle_label import RUN_IMAGE_SHELL_LABEL
    from cnbplatform.files.report import ProjectMetadata
    from cnbplatform.lifecycle.export.phase import ExportInputs, export

    s = phases.settings
    api = phases.platform_api()
    if not s.images:
        raise UsageError("export needs at least one output image")
    analyzed = Analyzed.load(s.analyzed)
    if not analyzed.run_image or not analyzed.run_image.reference:
        raise PhaseError("export", 62, f"read {s.analyzed}", "no run-image reference (run analyze first)")
    run = phases.input_image(analyzed.run_image.reference)
    assert run is not None
    previous = None
    if analyzed.previous_image and analyzed.previous_image.reference:
        opened = phases.input_image(analyzed.previous_image.reference, missing_ok=True)
        previous = opened.image if opened else None
    destinations = [phases.stores.open(address) for address in phases.output_addresses()]
    uid, gid = phases.export_ids()
    launcher = s.launcher if s.launcher.is_file() else None
    return export(
        ExportInputs(
            layers_dir=s.layers,
            app_dir=s.app,
            group=GroupFile.load(s.group),
            analyzed=analyzed,
            run_image=run.image,
            destinations=[(store, ref or "latest") for store, ref in destinations],
            blobs_dir=phases.blobs_dir,
            layer_cache=phases.layer_cache,
            uid=uid,
            gid=gid,
            previous_image=previous,
            platform_api=api,
            default_process=s.process_type,
            project_metadata=ProjectMetadata.load(s.project_metadata, missing_ok=True),
            run_config=phases.run_config(),
            launcher_file=launcher,
            source_date_epoch=_creation_time(phases, reporter) if ApiVersion.parse(api).at_least("0.9") else None,
            cache=phases.cache(),
            exec_env=s.exec_env,
            report_path=s.report,
            report_tags=[*s.images, *s.tags],
            parallel=2 if s.parallel else 1,
            run_image_has_shell=run.image.config.config.labels.get(RUN_IMAGE_SHELL_LABEL) != "false",
        ),
        reporter,
    )


def run_phases(
    phases: Phases, reporter: Reporter, announce: Callable[[str, float | None], None]
) -> tuple[ExportResult, dict[str, float]]:
    """analyze, detect, restore, build, export in order; *announce(name, None)* before a phase and
    *announce(name, seconds)* after it. Returns the export result and each phase's duration."""
    from cnbplatform.lifecycle.export.phase import ExportResult

    def export() -> ExportResult:
        phases.runs_done()  # the build network goes down while export works
        return run_export(phases, reporter)

    timings: dict[str, float] = {}
    steps: tuple[tuple[str, Callable[[], object]], ...] = (
        ("analyze", phases.analyze),
        ("detect", phases.detect),
        ("restore", phases.restore),
        ("build", phases.build),
        ("export", export),
    )
    result: object = None
    if phases.settings.skip_layers and ApiVersion.parse(phases.platform_api()).less_than("0.10"):
        # below Platform API 0.10 the creator's -skip-restore skips the whole restore phase; later versions still
        # restore store.toml and layer metadata (https://github.com/buildpacks/spec/blob/platform/v0.9/platform.md)
        steps = tuple(step for step in steps if step[0] != "restore")
    phases.start_network_soon()  # ready by the first run in detect, started while analyze works
    for name, step in steps:
        announce(name, None)
        started = time.perf_counter()
        result = step()
        timings[name] = time.perf_counter() - started
        announce(name, timings[name])
    assert isinstance(result, ExportResult)
    return result, timings


def run_create(phases: Phases, reporter: Reporter) -> ExportResult:
    def announce(name: str, seconds: float | None) -> None:
        if seconds is None:
            reporter.info(f"===> {name.upper()}")

    result, timings = run_phases(phases, reporter, announce)
    summary = ", ".join(f"{k} {v:.2f}s" for k, v in timings.items())
    reporter.info(f"image {result.descriptor.digest} ({len(result.added)} layers added, {len(result.reused)} reused)")
    reporter.info(f"timings: {summary}")
    return result


def run_rebase_phase(
    ctx: PlatformContext, settings: LifecycleSettings, reporter: Reporter, explicit_report: bool
) -> None:
    """``rebaser <image>…`` (docs/spec-notes.md §2.7): every positional image and ``--tag`` receives the rebased
    image."""
    from cnbplatform.oci.model import created_time
    from cnbplatform.platform.rebase import RebaseRequest, run_rebase

    check_platform_api(settings.platform_api)
    assert settings.platform_api is not None
    report: Path | None = settings.report
    if not explicit_report and not settings.report.parent.is_dir():
        reporter.debug(f"not writing {settings.report}: {settings.report.parent} does not exist")
        report = None
    request = RebaseRequest(
        image=settings.images[0],
        tags=(*settings.images[1:], *settings.tags),
        run_image=settings.run_image,
        previous_image=settings.previous_image,
        daemon=settings.daemon,
        force=settings.force,
        report_path=report,
        created=created_time(source_date_epoch(ctx.env, reporter)),
        platform_api=settings.platform_api,
        auto=True,
    )
    run_rebase(ctx, request, reporter)


def run_launch(settings: LifecycleSettings, process_type: str | None, env: Mapping[str, str]) -> int:
    """The launcher as the image's entrypoint runs it: ``--process-type``, else the buildpacks' default process
    (``/cnb/process/<type>``), else ``/cnb/lifecycle/launcher`` (which needs a command, or exits 82).

    ``CNB_PROCESS_TYPE`` stays in the launcher's environment: like the Go launcher, it warns and ignores it."""
    from cnbplatform.files.metadata import BuildMetadata
    from cnbplatform.launcher.pyrun import launch

    if not process_type:
        path = settings.layers / "config" / "metadata.toml"
        try:
            process_type = BuildMetadata.load(path).default_process_type if path.is_file() else ""
        except CnbError as exc:
            raise CnbError(f"launch: read {path}: {exc.message}", exit_code=EXIT_LAUNCH) from exc
    argv0 = f"/cnb/process/{process_type}" if process_type else "/cnb/lifecycle/launcher"
    return launch([argv0, *settings.images], env, settings.layers, settings.app)


def refuse_root(phase: str, settings: LifecycleSettings) -> None:
    """The Go lifecycle's detector and builder refuse to run as root, since they run buildpacks as themselves
    (exit 1, after the Platform API check); ``--sandbox host`` runs buildpacks as this process's user too."""
    check_platform_api(settings.platform_api)
    if os.getuid() == 0:
        raise PhaseError(
            phase,
            1,
            "check the user buildpacks run as",
            "refusing to run as root (--sandbox host runs buildpacks as this user: run it as the CNB user, "
            "or use --sandbox bwrap)",
        )


def run_phase(
    ctx: PlatformContext,
    phase: str,
    flags: Mapping[str, object],
    images: tuple[str, ...],
    tags: tuple[str, ...],
    reporter: Reporter,
) -> int:
    """Run *phase*; returns the exit code (0, or the launched process's code for ``launch``)."""
    if phase not in PHASES:
        raise UsageError(f"unknown phase {phase!r}")
    if images and phase not in _WITH_IMAGES:
        raise PhaseError(phase, 3, "parse arguments", f"{phase} takes no positional arguments, got {len(images)}")
    settings = resolve_settings(flags, ctx.env, images=images, tags=tags)
    if phase == "launch":
        flag = flags.get("process_type")
        return run_launch(settings, flag if isinstance(flag, str) else None, ctx.env)
    if phase in ("analyze", "export", "create", "rebase") and not images:
        raise PhaseError(phase, 3, "parse arguments", "an output image is required")
    if phase in ("detect", "build") and settings.sandbox == "host":
        refuse_root(phase, settings)
    if phase == "rebase":
        run_rebase_phase(ctx, settings, reporter, bool(flags.get("report") or ctx.env.get("CNB_REPORT_PATH")))
        return 0
    from cnbplatform.platform.phases import Phases

    with Phases(ctx, settings, reporter) as phases:
        if phase == "create":
            run_create(phases, reporter)
        elif phase == "export":
            run_export(phases, reporter)
        else:
            getattr(phases, phase)()
    return 0
