"""What a command's image stores need to know (the registry settings): kept apart from
:mod:`cnbplatform.oci.store.stores` so that the platform context imports no store code (phase start-up time)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class StoreOptions:
    home: Path
    env: Mapping[str, str] = field(default_factory=dict)
    insecure_registries: frozenset[str] = frozenset()
    ca_file: Path | None = None
    mirrors: Mapping[str, str] = field(default_factory=dict)  # registry host (or ``*``) -> mirror host[/prefix]
    parallel: int = 4
    retries: int = 4
    backoff: float = 0.25
