"""``cnb resolve -f FILE|DIR|- …``: kbld-compatible image resolution (and builds of its ``sources``)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from cnbplatform.cli.output import OPTIONS, ConsoleReporter, err_console
from cnbplatform.errors import UsageError


class StderrReporter(ConsoleReporter):
    """Build output goes to stderr: stdout carries the resolved YAML."""

    def output(self, source: str, data: bytes) -> None:
        if not OPTIONS.quiet:
            sys.stderr.buffer.write(data)
            sys.stderr.buffer.flush()


def resolve(
    file: list[str] = typer.Option(..., "--file", "-f", help="YAML file, directory of them, or - for stdin."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the result here, not to stdout."),
    lock_output: Path | None = typer.Option(None, "--lock-output", help="Also write a kbld Config lock here."),
    imgpkg_lock_output: Path | None = typer.Option(
        None, "--imgpkg-lock-output", help="Also write an imgpkg ImagesLock here."
    ),
    parallel: int = typer.Option(16, "--parallel", help="Registry requests at a time.", min=1, max=256),
    insecure_registry: list[str] = typer.Option([], "--insecure-registry", help="Registry over plain HTTP."),
) -> None:
    """Pin every image reference in Kubernetes YAML to a digest (kbld's files and outputs)."""
    from cnbplatform.platform.context import context_from_env
    from cnbplatform.resolve.documents import write_atomically
    from cnbplatform.resolve.run import ResolveRequest, run_resolve

    if lock_output is not None and imgpkg_lock_output is not None:
        raise UsageError("--lock-output and --imgpkg-lock-output cannot be used together (as in kbld)")
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
