"""Human and JSON renderings of platform results."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import typer
from rich.markup import escape

from cnbplatform.cli.output import out_console
from cnbplatform.oci.store.protocol import StoredRef
from cnbplatform.platform.images import ImageDetails


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


def print_listing(refs: Sequence[StoredRef], as_json: bool) -> None:
    if as_json:
        rows = [
            {
                "name": r.name,
                "digest": r.descriptor.digest,
                "mediaType": r.descriptor.media_type,
                "size": r.descriptor.size,
            }
            for r in refs
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    table.add_column("NAME")
    table.add_column("DIGEST")
    table.add_column("TYPE")
    for r in refs:
        kind = "index" if "index" in r.descriptor.media_type or "list" in r.descriptor.media_type else "image"
        table.add_row(r.name or "<none>", r.descriptor.digest[:19], kind)
    out_console.print(table)


def image_details_json(details: ImageDetails) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": str(details.address),
        "digest": details.descriptor.digest,
        "mediaType": details.descriptor.media_type,
    }
    if details.index is not None:
        out["manifests"] = [d.to_json() for d in details.index]
    if details.image is not None:
        image = details.image
        cfg = image.config
        out["image"] = {
            "digest": image.descriptor.digest,
            "config": image.manifest.config.digest,
            "platform": str(cfg.platform),
            "created": cfg.created,
            "user": cfg.config.user,
            "env": list(cfg.config.env),
            "entrypoint": cfg.config.entrypoint,
            "cmd": cfg.config.cmd,
            "workingDir": cfg.config.working_dir,
            "labels": cfg.config.labels,
            "layers": [
                {"digest": d.digest, "size": d.size, "mediaType": d.media_type, "diffID": diff}
                for d, diff in zip(image.manifest.layers, cfg.diff_ids, strict=False)
            ],
        }
    return out


def print_image_details(details: ImageDetails) -> None:
    out_console.print(f"[bold]{escape(str(details.address))}[/]  {details.descriptor.digest}", markup=True)
    if details.index is not None:
        out_console.print(f"index with {len(details.index)} manifests:")
        for d in details.index:
            out_console.print(f"  {d.platform or '-'}  {d.digest}  {human_size(d.size)}")
    image = details.image
    if image is None:
        return
    cfg = image.config
    total = sum(d.size for d in image.manifest.layers)
    out_console.print(f"platform   {cfg.platform}")
    out_console.print(f"created    {cfg.created or '-'}")
    out_console.print(f"user       {cfg.config.user or '-'}")
    out_console.print(f"entrypoint {list(cfg.config.entrypoint or [])}  cmd {list(cfg.config.cmd or [])}")
    out_console.print(f"workdir    {cfg.config.working_dir or '-'}")
    for env in cfg.config.env:
        out_console.print(f"env        {env}", markup=False)
    for key, value in sorted(cfg.config.labels.items()):
        shown = value if len(value) <= 80 else value[:77] + "..."
        out_console.print(f"label      {key}={shown}", markup=False)
    out_console.print(f"layers     {len(image.manifest.layers)} ({human_size(total)} compressed)")
    for d in image.manifest.layers:
        out_console.print(f"  {d.digest}  {human_size(d.size)}")
