"""The bodies of the hot commands (build, rebase, run, image copy, lifecycle phases), free of typer and rich.

Both entries call these: the typer commands (``--help``, usage errors, every other command) and the fast argv
path of :mod:`cnbplatform.cli.entry`, which parses these commands without importing typer. Platform modules are
imported inside each function so a command loads only what it uses.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cnbplatform.cli.options import option
from cnbplatform.cli.options import spelled as _name
from cnbplatform.cli.output import OPTIONS, ConsoleReporter, TransferProgress, err_console, out_console, reporter_for
from cnbplatform.errors import UsageError

if TYPE_CHECKING:
    from cnbplatform.platform.context import PlatformContext


def build_command(
    *,
    image: str,
    builder: str | None,
    path: Path,
    publish: bool,
    daemon: bool,
    tag: Sequence[str],
    run_image: str | None,
    env: Sequence[str],
    env_file: Sequence[Path],
    buildpack: Sequence[str],
    descriptor: Path | None,
    cache_dir: Path | None,
    cache_image: str | None,
    clear_cache: bool,
    previous_image: str | None,
    default_process: str | None,
    sbom_output_dir: Path | None,
    report_output_dir: Path | None,
    creation_time: str | None,
    pull_policy: str,
    network: str,
    volume: Sequence[str],
    insecure_registry: Sequence[str],
    sandbox: str,
    detect_timeout: float,
    host_ca_certs: Path | None,
    keep_workspace: bool,
    dockerfile: Path | None = None,
    using: str | None = None,
) -> None:
    """``cnb build``: run the phases with the builder's buildpacks and report the image written."""
    from cnbplatform.platform.build import BuildRequest, run_build
    from cnbplatform.platform.context import context_from_env

    ctx = context_from_env(insecure_registries=insecure_registry)
    if dockerfile is not None or (using is not None and using != "buildpacks"):
        return _build_using(
            ctx, image, using or "dockerfile", path, dockerfile, publish=publish, daemon=daemon, tags=tag,
            ignored={_name("build", "builder"): builder, _name("build", "buildpack"): buildpack,
                     _name("build", "run_image"): run_image},
        )  # fmt: skip
    request = BuildRequest(
        image=image, builder=builder, path=path, publish=publish, daemon=daemon, tags=tuple(tag),
        run_image=run_image, env=tuple(env), env_files=tuple(env_file), buildpacks=tuple(buildpack),
        descriptor=descriptor, cache_dir=cache_dir, cache_image=cache_image, clear_cache=clear_cache,
        previous_image=previous_image, default_process=default_process, sbom_output_dir=sbom_output_dir,
        report_output_dir=report_output_dir, creation_time=creation_time, pull_policy=pull_policy,
        network=network, volumes=tuple(volume), sandbox=sandbox, detect_timeout=detect_timeout,
        host_ca_certs=host_ca_certs, keep_workspace=keep_workspace,
    )  # fmt: skip
    with reporter_for("warn" if OPTIONS.quiet else "info", prefix_output=True) as reporter:
        outcome = run_build(ctx, request, reporter)
    if not OPTIONS.quiet:
        out_console.print(
            f"Successfully built {outcome.image} {outcome.digest} ({outcome.added} layers added, "
            f"{outcome.reused} reused, {outcome.size / 1e6:.2f} MB new) in {outcome.seconds:.2f}s"
        )


def _build_using(
    ctx: PlatformContext,
    image: str,
    using: str,
    path: Path,
    dockerfile: Path | None,
    *,
    publish: bool,
    daemon: bool,
    tags: Sequence[str],
    ignored: Mapping[str, object],
) -> None:
    """``cnb build`` with a Dockerfile or another image builder than buildpacks."""
    from cnbplatform.imagebuilders.run import build_to
    from cnbplatform.platform.build import BuildRequest, destination

    if dockerfile is not None and using != "dockerfile":
        raise UsageError(
            f"{_name('build', 'dockerfile')} builds with the dockerfile builder, not {_name('build', 'using')} {using}"
        )
    given = [flag for flag, value in ignored.items() if value]
    if given:
        raise UsageError(f"{', '.join(given)}: not used when building with the {using} builder")
    options = {"file": str(dockerfile.resolve())} if dockerfile is not None else {}
    target = destination(BuildRequest(image=image, publish=publish, daemon=daemon), image)
    extra = [destination(BuildRequest(image=t, publish=publish, daemon=daemon), t) for t in tags]
    with reporter_for("warn" if OPTIONS.quiet else "info", prefix_output=True) as reporter:
        written, digest = build_to(ctx, using, path.resolve(), options, [target, *extra], reporter)
    if not OPTIONS.quiet:
        out_console.print(f"Successfully built {written} {digest} with the {using} builder")


class StderrReporter(ConsoleReporter):
    """Build output to stderr: stdout carries YAML (``cnb resolve``, ``cnb deploy``)."""

    def output(self, source: str, data: bytes) -> None:
        if not OPTIONS.quiet:
            sys.stderr.buffer.write(data)
            sys.stderr.buffer.flush()


def resolve_command(
    *,
    file: Sequence[str],
    output: Path | None,
    lock_output: Path | None,
    imgpkg_lock_output: Path | None,
    parallel: int,
    insecure_registry: Sequence[str],
) -> None:
    """``cnb resolve``: pin every image reference (kbld's files and outputs); nothing is written on failure."""
    from cnbplatform.platform.context import context_from_env
    from cnbplatform.resolve.documents import write_atomically
    from cnbplatform.resolve.run import ResolveRequest, run_resolve

    if lock_output is not None and imgpkg_lock_output is not None:
        raise UsageError(
            f"{_name('resolve', 'lock_output')} and {_name('resolve', 'imgpkg_lock_output')} cannot be used "
            "together (as in kbld)"
        )
    if not 1 <= parallel <= 256:
        raise UsageError(f"{_name('resolve', 'parallel')} {parallel}: expected 1 to 256")
    ctx = context_from_env(insecure_registries=insecure_registry)
    request = ResolveRequest(
        files=tuple(file),
        lock_output=lock_output is not None,
        imgpkg_lock_output=imgpkg_lock_output is not None,
        workers=parallel,
    )
    outcome = run_resolve(ctx, request, StderrReporter("warn" if OPTIONS.quiet else "info"))
    if lock_output is not None and outcome.lock is not None:
        write_atomically(lock_output, outcome.lock, 0o600)
    if imgpkg_lock_output is not None and outcome.imgpkg_lock is not None:
        write_atomically(imgpkg_lock_output, outcome.imgpkg_lock, 0o600)
    if output is not None:
        write_atomically(output, outcome.text)
    else:
        sys.stdout.write(outcome.text)
        sys.stdout.flush()
    if not OPTIONS.quiet:
        err_console.print(
            f"resolved {len(outcome.entries)} references ({outcome.looked_up} looked up, {outcome.built} built) "
            f"in {outcome.seconds:.2f}s"
        )


def rebase_command(
    *,
    image: str,
    run_image: str | None,
    publish: bool,
    daemon: bool,
    force: bool,
    previous_image: str | None,
    tag: Sequence[str],
    report_output_dir: Path | None,
    creation_time: str | None,
    insecure_registry: Sequence[str],
) -> None:
    """``cnb rebase``: put the app image on a newer run image and print each name saved."""
    from cnbplatform.platform.context import context_from_env
    from cnbplatform.platform.rebase import RebaseRequest, run_rebase
    from cnbplatform.platform.rebase import creation_time as parse_creation_time

    ctx = context_from_env(insecure_registries=insecure_registry)
    report = None
    if report_output_dir is not None:
        report_output_dir.mkdir(parents=True, exist_ok=True)
        report = report_output_dir / "report.toml"
    request = RebaseRequest(
        image=image,
        tags=tuple(tag),
        run_image=run_image,
        previous_image=previous_image,
        publish=publish,
        daemon=daemon,
        force=force,
        report_path=report,
        created=parse_creation_time(creation_time),
    )
    with reporter_for("warn" if OPTIONS.quiet else "info") as reporter, TransferProgress(not OPTIONS.quiet) as bars:
        result = run_rebase(ctx, request, reporter, bars)
    if not OPTIONS.quiet:
        for name in result.report.tags:
            out_console.print(f"{name} {result.descriptor.digest}")


def run_command(
    *,
    image: str,
    args: Sequence[str] | None,
    process: str | None,
    env: Sequence[str],
    network: str,
    insecure_registry: Sequence[str],
) -> int:
    """``cnb run``: run the image in the sandbox; returns the process's exit code."""
    if network not in ("host", "none"):
        raise UsageError(f"{_name('run', 'network')} {network!r}: expected host or none")
    extra = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{_name('run', 'env')} {item!r}: expected KEY=VALUE")
        extra[key] = value
    from cnbplatform.platform.context import context_from_env
    from cnbplatform.platform.run import RunOptions, run_image

    ctx = context_from_env(insecure_registries=insecure_registry)
    options = RunOptions(image=image, process=process, args=tuple(args or ()), env=extra, network=network == "host")
    return run_image(ctx, options)


def copy_command(*, source: str, destination: str, platform: str | None, insecure_registry: Sequence[str]) -> None:
    """``cnb image copy``: copy an image or index between stores and say what moved."""
    from cnbplatform.platform import images
    from cnbplatform.platform.context import context_from_env

    ctx = context_from_env(insecure_registries=insecure_registry)
    with TransferProgress(enabled=not OPTIONS.quiet) as progress:
        outcome = images.copy_image(ctx, source, destination, platform=platform, progress=progress)
    r = outcome.result
    if not OPTIONS.quiet:
        out_console.print(
            f"copied {outcome.source} -> {outcome.destination} {outcome.descriptor.digest} "
            f"({len(r.written)} blobs written, {len(r.existing)} present, {len(r.mounted)} mounted)"
        )


LOG_LEVELS = ("debug", "info", "warn", "error")


def phase_command(
    phase: str,
    flags: Mapping[str, object],
    images: Sequence[str] | None,
    tag: Sequence[str],
    insecure_registry: Sequence[str],
) -> int:
    """``cnb lifecycle <phase>``: one phase with the spec's inputs; returns the phase's exit code."""
    from cnbplatform.platform.context import context_from_env
    from cnbplatform.platform.lifecycle_run import run_phase

    ctx = context_from_env(insecure_registries=insecure_registry)
    flag = flags.get("log_level")
    log_level = (flag if isinstance(flag, str) and flag else ctx.env.get("CNB_LOG_LEVEL", "")).strip().lower()
    if log_level and log_level not in LOG_LEVELS:
        level = option("lifecycle create", "log_level")
        raise UsageError(f"{level.name} / {level.env}: expected one of {', '.join(LOG_LEVELS)}, got {log_level!r}")
    with reporter_for(log_level or None) as reporter:
        return run_phase(ctx, phase, dict(flags), tuple(images or ()), tuple(tag), reporter)


def lifecycle_command(
    *, phase: str, images: Sequence[str] | None, tag: Sequence[str], insecure_registry: Sequence[str], **flags: object
) -> int:
    """``cnb lifecycle <phase>`` with its flags as keywords (None: not given)."""
    return phase_command(phase, flags, images, tag, insecure_registry)
