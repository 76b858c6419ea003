"""Choosing the run image from the image and mirrors a builder (run.toml) or an app's label names: the rule the
analyzer (docs/spec-notes.md §2.1 step 2) and the rebaser (§8 step 2) share, written once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from cnbplatform.files.run_toml import RunConfig, RunImage
from cnbplatform.oci.address import image_name, registry_of


def first_readable(candidates: Sequence[str], registry: str, readable: Callable[[str], bool]) -> str | None:
    """Of *candidates* (an image, then its mirrors), the first readable one on *registry* (the output or app
    image's registry; ``""`` for none), else the first readable one; None when none is. *readable* is asked at
    most once per candidate."""
    unique = list(dict.fromkeys(candidates))
    seen: dict[str, bool] = {}

    def ok(candidate: str) -> bool:
        if candidate not in seen:
            seen[candidate] = readable(candidate)
        return seen[candidate]

    if registry:
        for candidate in unique:
            if registry_of(candidate) == registry and ok(candidate):
                return candidate
    return next((candidate for candidate in unique if ok(candidate)), None)


def run_image_entry(config: RunConfig, ref: str) -> RunImage | None:
    """The first run.toml entry that names *ref* as its image or a mirror (tags compared, digests ignored): what the
    exporter records in its label (§5.2)."""
    wanted = image_name(ref)
    return next((entry for entry in config.images if any(image_name(r) == wanted for r in entry.refs)), None)
