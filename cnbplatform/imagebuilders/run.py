"""Build with a named image builder and write the result to any stores (what ``cnb build --using`` runs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnbplatform.errors import UsageError
from cnbplatform.imagebuilders.base import SourceBuild
from cnbplatform.imagebuilders.registry import builder_named
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.platform import images
from cnbplatform.platform.context import PlatformContext


def build_to(
    ctx: PlatformContext,
    builder: str,
    source: Path,
    options: Mapping[str, Any],
    destinations: Sequence[str],
    reporter: Reporter,
) -> tuple[str, str]:
    """Build *source* with *builder* and copy the image to every address in *destinations*; (first, digest)."""
    if not source.is_dir():
        raise UsageError(f"--path {source}: not a directory")
    chosen = builder_named(builder)
    built = chosen.build(ctx, SourceBuild(source, destinations[0], options), reporter)
    digest = ""
    for address in destinations:
        outcome = images.copy_image(ctx, built.address, address)
        digest = digest or outcome.descriptor.digest
    return destinations[0], digest
