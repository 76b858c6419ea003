"""``cnb inspect IMAGE``: what a buildpacks-built image is made of (docs/spec-notes.md §6.3 to §6.6), as ``pack
inspect`` shows it: base, run images and mirrors, rebasable, buildpacks, processes, and the origin of every layer.
The JSON output is :meth:`~cnbplatform.platform.inspect.AppImageReport.to_json_dict` (keys documented there)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

import typer

from cnbplatform.cli.params import typer_option
from cnbplatform.cli.render import human_size
from cnbplatform.platform.context import context_from_env
from cnbplatform.platform.inspect import AppImageReport, LayerInfo, LayerOrigin, inspect_app_image

ADDRESS_HELP = "NAME (local store), oci:DIR:TAG, host/repo:tag (registry), docker://REF or docker-daemon:REF"


def inspect(
    image: str = typer.Argument(..., help=ADDRESS_HELP),
    platform: str | None = typer_option("inspect", "platform"),
    as_json: bool = typer_option("inspect", "as_json"),
    insecure_registry: list[str] = typer_option("inspect", "insecure_registry"),
) -> None:
    """Show what a buildpacks-built image is made of: base, run images, buildpacks, processes, layers."""
    ctx = context_from_env(insecure_registries=insecure_registry)
    report = inspect_app_image(ctx, image, platform=platform)
    if as_json:
        typer.echo(json.dumps(report.to_json_dict(), indent=2))
    else:
        typer.echo("\n".join(render(report)))


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(str(r[i])) for r in (headers, *rows)) for i in range(len(headers))]
    return [
        (indent + "  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row))).rstrip()
        for row in (headers, *rows)
    ]


def _or_dash(value: str) -> str:
    return value or "-"


def origin_text(layer: LayerInfo) -> str:
    """A layer's origin in words (``buildpack test/node, layer node``)."""
    match layer.origin:
        case LayerOrigin.RUN_IMAGE:
            return "run image"
        case LayerOrigin.BUILDPACK:
            return f"buildpack {layer.buildpack}, layer {layer.name}"
        case LayerOrigin.EXTENSION:
            return f"extension {layer.buildpack}" + (f", layer {layer.name}" if layer.name else "")
        case LayerOrigin.SBOM:
            return "SBOM"
        case LayerOrigin.APP:
            return "app" + (f" ({layer.name})" if layer.name else "")
        case LayerOrigin.LAUNCHER:
            return "launcher"
        case LayerOrigin.CONFIG:
            return "launcher config"
        case LayerOrigin.PROCESS_TYPES:
            return "process types"
    return "unknown"


def render(report: AppImageReport) -> list[str]:
    """The human report, plain text, one list item a line."""
    base, run = report.base, report.run_image
    lines = [f"Image: {report.image}", f"Digest: {report.digest}", f"Platform: {report.platform}", ""]
    distro = " ".join(p for p in (base.distro_name, base.distro_version) if p)
    lines += ["Base Image:", f"  Reference: {_or_dash(run.reference)}", f"  Top Layer: {_or_dash(run.top_layer)}"]
    lines += [f"  ID: {_or_dash(base.id or base.stack_id)}", f"  Distro: {_or_dash(distro)}"]
    for key, value in (
        ("Maintainer", base.maintainer),
        ("Homepage", base.homepage),
        ("Description", base.description),
        ("Released", base.released),
    ):
        if value:
            lines.append(f"  {key}: {value}")
    lines += ["", "Run Images:"]
    lines += [f"  {run.image}"] if run.image else ["  (none recorded)"]
    lines += [f"  {mirror} (mirror)" for mirror in run.mirrors]
    label = "" if report.rebasable_label is None else f" (io.buildpacks.rebasable={report.rebasable_label})"
    lines += ["", f"Rebasable: {'true' if report.rebasable else 'false'}{label}", "", "Buildpacks:"]
    bps = [(b.id, _or_dash(b.version), _or_dash(b.homepage)) for b in report.buildpacks]
    lines += _table(("ID", "VERSION", "HOMEPAGE"), bps) if bps else ["  (none)"]
    if report.extensions:
        exts = [(e.id, _or_dash(e.version), _or_dash(e.homepage)) for e in report.extensions]
        lines += ["", "Extensions:", *_table(("ID", "VERSION", "HOMEPAGE"), exts)]
    lines += ["", "Processes:"]
    procs = [
        (
            p.type + (" (default)" if p.default else ""),
            shlex.join(p.command),
            shlex.join(p.args),
            _or_dash(p.working_dir),
        )
        for p in report.processes
    ]
    lines += _table(("TYPE", "COMMAND", "ARGS", "WORK DIR"), procs) if procs else ["  (none)"]
    if report.project.source is not None:
        source = report.project.source
        version = ", ".join(f"{k}={v}" for k, v in sorted(source.version.items()))
        lines += ["", f"Project Source: {_or_dash(source.type)}" + (f" ({version})" if version else "")]
    total = sum(layer.size for layer in report.layers)
    lines += ["", f"Layers: {len(report.layers)} ({human_size(total)})"]
    rows = [(str(x.index), x.diff_id[:19], human_size(x.size), origin_text(x)) for x in report.layers]
    lines += _table(("#", "DIFF ID", "SIZE", "ORIGIN"), rows)
    return lines
