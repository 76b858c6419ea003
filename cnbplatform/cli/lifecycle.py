"""``cnb lifecycle <phase>``: the phases one by one, with the spec's inputs as flags or ``CNB_*`` variables
(CNB-SPEC §2), for CI systems and Kubernetes jobs that drive them inside a build-image container."""

from __future__ import annotations

import typer

app = typer.Typer(
    rich_markup_mode=None,
    help="Run lifecycle phases one by one (analyze, detect, restore, build, export, create, rebase).",
    no_args_is_help=True,
)
