"""``cnb builder`` and ``cnb buildpack``: builders from builder.toml, buildpackages from package.toml, new buildpacks
(docs/spec-notes.md §10; the flags follow pack's)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from cnbplatform.cli.options import spelled
from cnbplatform.cli.output import OPTIONS, reporter_for
from cnbplatform.cli.params import typer_option
from cnbplatform.platform.context import context_from_env

builder_app = typer.Typer(rich_markup_mode=None, help="Create and inspect builders.", no_args_is_help=True)
buildpack_app = typer.Typer(rich_markup_mode=None, help="Package and scaffold buildpacks.", no_args_is_help=True)

Insecure = typer_option("builder create", "insecure_registry")


@builder_app.command("create")
def create(
    image: str = typer.Argument(..., help="Where to write the builder (local store name, oci:DIR:TAG, registry ref)."),
    config: Path = typer_option("builder create", "config"),
    publish: bool = typer_option("builder create", "publish", help="Write the builder to the registry IMAGE names."),
    insecure_registry: list[str] = Insecure,
    lifecycle: str = typer_option("builder create", "lifecycle"),
) -> None:
    """Create a builder image from a builder.toml."""
    from cnbplatform.platform.builder import create_builder_image

    ctx = context_from_env(insecure_registries=insecure_registry)
    with reporter_for("warn" if OPTIONS.quiet else "info") as reporter:
        outcome = create_builder_image(ctx, config, image, publish=publish, reporter=reporter, lifecycle=lifecycle)
    if not OPTIONS.quiet:
        typer.echo(f"builder {outcome.address} {outcome.descriptor.digest}")
        typer.echo(f"buildpacks: {', '.join(outcome.buildpacks) or 'none'}")


@builder_app.command("inspect")
def inspect(
    image: str = typer.Argument(..., help="The builder (local store name, oci:DIR:TAG, registry ref, docker-daemon:)."),
    as_json: bool = typer_option("builder inspect", "as_json"),
    insecure_registry: list[str] = Insecure,
) -> None:
    """Show a builder's description, images, buildpacks and detection order."""
    from cnbplatform.platform.builder import inspect_builder

    report = inspect_builder(context_from_env(insecure_registries=insecure_registry), image).to_json_dict()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo("\n".join(_human(report)))


def _human(r: dict[str, Any]) -> list[str]:
    build = r["buildImage"]
    base = r["base"]
    lc = r["lifecycle"]
    lines = [
        f"Builder:      {r['image']}",
        f"Digest:       {r['digest']}",
        f"Platform:     {r['platform']}",
        f"Description:  {r['description'] or '-'}",
        f"Created by:   {r['createdBy']['name']} {r['createdBy']['version']}".rstrip(),
        f"Build image:  {build.get('image', '-')}" + (f" ({build['digest']})" if build.get("digest") else ""),
        f"Base:         {base['id'] or '-'} {base['distroName']} {base['distroVersion']}".rstrip(),
        f"Lifecycle:    {lc['version']} (Buildpack APIs {', '.join(lc['buildpackApis']['supported'])}; "
        f"Platform APIs {', '.join(lc['platformApis']['supported'])})",
        "Run images:",
    ]
    for run in r["runImages"]:
        lines.append(f"  {run['image']}")
        lines += [f"    mirror {mirror}" for mirror in run["mirrors"]]
    lines.append("Buildpacks:")
    width = max([len(b["id"]) for b in r["buildpacks"]] + [2])
    lines += [f"  {b['id']:<{width}}  {b['version']:<10}  {b['homepage']}".rstrip() for b in r["buildpacks"]]
    if r["extensions"]:
        lines.append("Extensions:")
        lines += [f"  {e['id']}@{e['version']}" for e in r["extensions"]]
    lines.append("Detection order:")
    for i, group in enumerate(r["order"], 1):
        lines.append(f"  Group #{i}:")
        lines += [f"    {e['id']}@{e['version']}" + (" (optional)" if e["optional"] else "") for e in group["group"]]
    for part in ("pre", "post"):
        if r["system"][part]:
            lines.append(f"System buildpacks ({part}):")
            lines += [
                f"  {e['id']}@{e['version']}" + (" (optional)" if e["optional"] else "") for e in r["system"][part]
            ]
    return lines


_FORMAT = spelled("buildpack package", "fmt")


@buildpack_app.command("package")
def package(
    name: str = typer.Argument(..., help=f"Image to write ({_FORMAT} image) or .cnb file ({_FORMAT} file)."),
    config: Path | None = typer_option("buildpack package", "config"),
    path: Path | None = typer_option("buildpack package", "path"),
    fmt: str | None = typer_option("buildpack package", "fmt"),
    publish: bool = typer_option("buildpack package", "publish", help="Write the image to the registry NAME names."),
    insecure_registry: list[str] = Insecure,
) -> None:
    """Package a buildpack (and its dependencies) as a buildpackage image or .cnb file."""
    from cnbplatform.platform.builder import package_buildpack

    ctx = context_from_env(insecure_registries=insecure_registry)
    with reporter_for("warn" if OPTIONS.quiet else "info") as reporter:
        outcome = package_buildpack(
            ctx, name, config_path=config, path=path, fmt=fmt, publish=publish, reporter=reporter
        )
    if not OPTIONS.quiet:
        typer.echo(f"{outcome.format} {outcome.destination} {outcome.descriptor.digest}")
        typer.echo(f"buildpacks: {', '.join(outcome.modules)}")


@buildpack_app.command("new")
def new(
    buildpack_id: str = typer.Argument(..., metavar="ID", help="The buildpack id, e.g. example/hello."),
    path: Path | None = typer_option("buildpack new", "path"),
    version: str = typer_option("buildpack new", "version"),
    api: str = typer_option("buildpack new", "api"),
) -> None:
    """Create a sh buildpack: buildpack.toml, bin/detect and bin/build."""
    from cnbplatform.platform.builder import new_buildpack

    written = new_buildpack(buildpack_id, path=path, version=version, api=api)
    if not OPTIONS.quiet:
        for file in written:
            typer.echo(f"created {file}")
