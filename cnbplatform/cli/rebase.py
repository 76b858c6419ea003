"""``cnb rebase IMAGE``: put an app image on a newer run image without rebuilding (CNB-SPEC.md §8)."""

from __future__ import annotations

from pathlib import Path

import typer

from cnbplatform.cli.commands import rebase_command


def rebase(
    image: str = typer.Argument(..., help="The app image (local name; a registry with --publish; oci:DIR:TAG…)."),
    run_image: str | None = typer.Option(
        None,
        "--run-image",
        help="The new run image (default: the one the app records, a mirror on its registry first).",
    ),
    publish: bool = typer.Option(
        False, "--publish", help="IMAGE is in a registry: rebase it there, moving no app layer."
    ),
    daemon: bool = typer.Option(False, "--daemon", help="IMAGE is in the Docker engine."),
    force: bool = typer.Option(
        False, "--force", help="Rebase even when a check fails (each is reported as a warning)."
    ),
    previous_image: str | None = typer.Option(None, "--previous-image", help="Read the app from here, save to IMAGE."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="Also save the rebased image under this name (repeatable)."),
    report_output_dir: Path | None = typer.Option(None, "--report-output-dir", help="Write report.toml here."),
    creation_time: str | None = typer.Option(None, "--creation-time", help="'now' or Unix seconds (default 1980)."),
    insecure_registry: list[str] = typer.Option([], "--insecure-registry", help="Registry host over plain HTTP."),
) -> None:
    """Put an app image on a newer run image without rebuilding: only the base layers change."""
    rebase_command(
        image=image, run_image=run_image, publish=publish, daemon=daemon, force=force,
        previous_image=previous_image, tag=tag, report_output_dir=report_output_dir, creation_time=creation_time,
        insecure_registry=insecure_registry,
    )  # fmt: skip
