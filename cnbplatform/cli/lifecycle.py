"""``cnb lifecycle <phase>``: the phases one by one, with the spec's inputs as flags or ``CNB_*`` variables
(docs/spec-notes.md §2), for CI systems and Kubernetes jobs that drive them inside a build-image container."""

from __future__ import annotations

import typer

from cnbplatform.cli.params import typer_option

app = typer.Typer(
    rich_markup_mode=None,
    help="Run lifecycle phases one by one (analyze, detect, restore, build, export, create, rebase).",
    no_args_is_help=True,
)


@app.command("image")
def image(
    image: str = typer.Argument(
        ..., help="Where to write the lifecycle image (local store name, oci:DIR:TAG, registry)."
    ),
    publish: bool = typer_option("lifecycle image", "publish", help="Write it to the registry IMAGE names."),
    insecure_registry: list[str] = typer_option("lifecycle image", "insecure_registry"),
) -> None:
    """Write cnb's lifecycle as a lifecycle image: its last layer holds /cnb/lifecycle (kpack's ClusterLifecycle,
    or a builder whose lifecycle comes from an image)."""
    from cnbplatform.cli.output import OPTIONS, reporter_for
    from cnbplatform.platform.builder import write_lifecycle_image
    from cnbplatform.platform.context import context_from_env

    ctx = context_from_env(insecure_registries=insecure_registry)
    with reporter_for("warn" if OPTIONS.quiet else "info") as reporter:
        address, digest = write_lifecycle_image(ctx, image, publish=publish, reporter=reporter)
    if not OPTIONS.quiet:
        typer.echo(f"lifecycle image {address} {digest}")
