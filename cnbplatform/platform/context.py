"""Resolve the platform's inputs: flags > environment > config file > defaults (docs/design.md §2 ``platform/``).

This is the only layer that reads the process environment; everything below gets explicit values.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cnbplatform.errors import UsageError
from cnbplatform.oci.store.options import StoreOptions

if TYPE_CHECKING:
    from cnbplatform.oci.rootfs.unpack import UnpackLimits


def default_home(env: Mapping[str, str]) -> Path:
    if env.get("CNB_HOME"):
        return Path(env["CNB_HOME"]).expanduser()
    data = env.get("XDG_DATA_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".local" / "share")
    return Path(data) / "cnb"


def creation_epoch(value: str | None) -> int | None:
    """pack's ``--creation-time``: ``now`` or seconds since the epoch; ``None`` when not given."""
    if value is None or value == "":
        return None
    if value == "now":
        return int(time.time())
    if value.isdigit():
        return int(value)
    raise UsageError(f"--creation-time {value!r}: expected 'now' or seconds since the epoch")


def home_from_env() -> Path:
    """``$CNB_HOME`` (or the XDG default) of this process."""
    return default_home(os.environ)


@dataclass(frozen=True)
class PlatformContext(StoreOptions):
    """Where cnb keeps its state and how it reaches images (the store options), plus what only the platform
    uses: the limits for unpacking build images."""

    unpack_limits: UnpackLimits | None = None  # None: the defaults (config.toml ``[unpack]`` sets them)


def context_from_env(
    env: Mapping[str, str] | None = None, *, insecure_registries: Iterable[str] = ()
) -> PlatformContext:
    env = dict(os.environ if env is None else env)
    insecure = {r.strip() for r in env.get("CNB_INSECURE_REGISTRIES", "").split(",") if r.strip()}
    insecure.update(insecure_registries)
    home = default_home(env)
    limits = None
    mirrors: dict[str, str] = {}
    if (home / "config.toml").exists():  # most homes have none; then the config module need not load
        from cnbplatform.platform.config import load_config

        config = load_config(home)
        insecure.update(config.insecure_registries)
        limits = config.unpack_limits
        mirrors = config.registry_mirrors
    ca = env.get("CNB_REGISTRY_CA")
    retries = env.get("CNB_REGISTRY_RETRIES", "4")
    return PlatformContext(
        home=home,
        env=env,
        insecure_registries=frozenset(insecure),
        ca_file=Path(ca) if ca else None,
        retries=int(retries) if retries.isdigit() and int(retries) > 0 else 4,
        unpack_limits=limits,
        mirrors=mirrors,
    )
