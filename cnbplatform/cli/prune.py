"""``cnb prune``: free what ``$CNB_HOME``'s caches hold, like ``docker system prune`` (options: cli/options.py)."""

from __future__ import annotations

from cnbplatform.cli.output import OPTIONS, out_console, reporter_for
from cnbplatform.cli.params import typer_option


def prune(
    all_: bool = typer_option("prune", "all_"),
    dry_run: bool = typer_option("prune", "dry_run"),
) -> None:
    """Remove unpacked rootfs trees, layer-cache blobs, build caches, leftover work dirs and unreferenced blobs
    that were not used for a while ([prune] unused-after-seconds in config.toml, default a day)."""
    from cnbplatform.platform.context import home_from_env
    from cnbplatform.platform.prune import load_settings
    from cnbplatform.platform.prune import prune as run_prune

    home = home_from_env()
    settings = load_settings(home)
    with reporter_for("warn" if OPTIONS.quiet else "info") as reporter:
        report = run_prune(
            home, everything=all_, dry_run=dry_run, unused_after=settings.unused_after, reporter=reporter
        )
        if report.skipped_in_use:
            reporter.warn("other cnb commands are running: rootfs trees, layer blobs and build caches are left alone")
    verb = "would remove" if dry_run else "removed"
    for item in report.removed:
        out_console.print(f"{verb} {item.kind} {item.path} ({item.size} bytes)")
    total = report.bytes
    out_console.print(f"{'would free' if dry_run else 'freed'} {total} bytes ({total / 1e6:.1f} MB)")
