"""``cnb sbom``: download, export (CycloneDX, SPDX, HTML) and diff the SBOMs of images."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from cnbplatform.cli.options import spelled
from cnbplatform.cli.output import OPTIONS, err_console, out_console
from cnbplatform.cli.params import typer_option
from cnbplatform.platform.context import context_from_env

app = typer.Typer(rich_markup_mode=None, help="Software bills of materials of images.", no_args_is_help=True)

IMAGE_HELP = "oci:DIR[:TAG], docker-daemon:REF, host/repo:tag (registry), docker://REF, local:NAME or NAME (local)"
Remote = typer_option("sbom export", "remote")
Insecure = typer_option("sbom export", "insecure_registry")


@app.command("download")
def download(
    image: str = typer.Argument(..., help=IMAGE_HELP),
    output_dir: Path = typer_option("sbom download", "output_dir"),
    remote: bool = Remote,
    insecure_registry: list[str] = Insecure,
) -> None:
    """Write the files of IMAGE's SBOM layer (launch/BP/LAYER/sbom.EXT); no other layer is pulled."""
    from cnbplatform.platform.sbom import download_sbom

    ctx = context_from_env(insecure_registries=insecure_registry)
    outcome = download_sbom(ctx, image, output_dir, remote=remote)
    if not OPTIONS.quiet:
        for path in outcome.files:
            out_console.print(str(path))
        err_console.print(f"{len(outcome.files)} SBOM files of {outcome.image} {outcome.digest} in {output_dir}")


@app.command("export")
def export(
    image: str = typer.Argument(..., help=IMAGE_HELP),
    fmt: str = typer_option("sbom export", "fmt"),
    output: Path | None = typer_option("sbom export", "output"),
    name: str | None = typer_option("sbom export", "name"),
    serial: str = typer_option("sbom export", "serial"),
    timestamp: str = typer_option("sbom export", "timestamp"),
    remote: bool = Remote,
    insecure_registry: list[str] = Insecure,
) -> None:
    """Merge IMAGE's buildpack SBOMs, OS packages and build metadata into one document for an audit."""
    from cnbplatform.errors import CnbError, UsageError
    from cnbplatform.platform.sbom import export_sbom
    from cnbplatform.sbom.export import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"{spelled('sbom export', 'fmt')} must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if serial not in ("digest", "random") or timestamp not in ("image", "now"):
        raise UsageError(
            f"{spelled('sbom export', 'serial')} takes digest or random; "
            f"{spelled('sbom export', 'timestamp')} takes image or now"
        )
    ctx = context_from_env(insecure_registries=insecure_registry)
    result = export_sbom(
        ctx, image, fmt, remote=remote, name=name, random_serial=serial == "random", now=timestamp == "now"
    )
    for warning in result.inventory.warnings:
        err_console.print(f"warning: {warning}")
    data = result.text.encode("utf-8")
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    try:
        output.write_bytes(data)
    except OSError as exc:
        raise CnbError(f"writing the SBOM to {output}: {exc.strerror or exc}") from exc
    if not OPTIONS.quiet:
        err_console.print(f"wrote {fmt} SBOM of {image} ({len(result.inventory.components)} components) to {output}")


@app.command("diff")
def diff(
    before: str = typer.Argument(..., help="The image before (e.g. before a rebase)."),
    after: str = typer.Argument(..., help="The image after."),
    as_json: bool = typer_option("sbom diff", "as_json"),
    remote: bool = Remote,
    insecure_registry: list[str] = Insecure,
) -> None:
    """Components added, removed and changed between two images."""
    from cnbplatform.platform.sbom import diff_sboms
    from cnbplatform.sbom.diff import diff_json, diff_lines

    ctx = context_from_env(insecure_registries=insecure_registry)
    result = diff_sboms(ctx, before, after, remote=remote)
    if as_json:
        typer.echo(json.dumps(diff_json(result), indent=2))
        return
    for line in diff_lines(result):
        out_console.print(line)
