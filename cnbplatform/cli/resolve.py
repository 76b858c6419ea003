"""``cnb resolve -f FILE|DIR|- …``: kbld-compatible image resolution (and builds of its ``sources``)."""

from __future__ import annotations

from pathlib import Path

import typer

from cnbplatform.cli.commands import resolve_command


def resolve(
    file: list[str] = typer.Option([], "--file", "-f", help="YAML file, directory of them, or - for stdin."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Write the result here, not to stdout."),
    lock_output: Path | None = typer.Option(None, "--lock-output", help="Also write a kbld Config lock here."),
    imgpkg_lock_output: Path | None = typer.Option(
        None, "--imgpkg-lock-output", help="Also write an imgpkg ImagesLock here."
    ),
    parallel: int = typer.Option(16, "--parallel", help="Registry requests at a time (1-256)."),
    insecure_registry: list[str] = typer.Option([], "--insecure-registry", help="Registry over plain HTTP."),
) -> None:
    """Pin every image reference in Kubernetes YAML to a digest (kbld's files and outputs)."""
    resolve_command(
        file=file, output=output, lock_output=lock_output, imgpkg_lock_output=imgpkg_lock_output,
        parallel=parallel, insecure_registry=insecure_registry,
    )  # fmt: skip
