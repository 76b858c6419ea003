"""``$CNB_HOME/config.toml``: default builder, trusted builders, registry mirrors, insecure registries, and the
limits one image layer may expand to when cnb unpacks it::

    [unpack]
    max-layer-bytes = 34359738368   # uncompressed tar bytes per layer (default 32 GiB)
    max-layer-entries = 2000000     # tar entries per layer
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnbplatform.files.common import Table, read_toml, write_toml
from cnbplatform.oci.rootfs.unpack import UnpackLimits


@dataclass
class CnbConfig:
    default_builder: str = ""
    trusted_builders: list[str] = field(default_factory=list)
    registry_mirrors: dict[str, str] = field(default_factory=dict)
    insecure_registries: list[str] = field(default_factory=list)
    unpack_limits: UnpackLimits = field(default_factory=UnpackLimits)

    def to_dict(self) -> dict[str, object]:
        default = UnpackLimits()
        unpack = {
            "max-layer-bytes": self.unpack_limits.max_layer_bytes,
            "max-layer-entries": self.unpack_limits.max_layer_entries,
        }
        return {
            "default-builder": self.default_builder or None,
            "trusted-builders": sorted(set(self.trusted_builders)) or None,
            "registry-mirrors": dict(sorted(self.registry_mirrors.items())) or None,
            "insecure-registries": sorted(set(self.insecure_registries)) or None,
            "unpack": unpack if self.unpack_limits != default else None,
        }


def config_path(home: Path) -> Path:
    return home / "config.toml"


def load_config(home: Path) -> CnbConfig:
    table = read_toml(config_path(home), missing_ok=True)
    mirrors = table.table("registry-mirrors")
    return CnbConfig(
        default_builder=table.get_str("default-builder"),
        trusted_builders=table.str_list("trusted-builders"),
        registry_mirrors={key: mirrors.get_str(key) for key in mirrors.data},
        insecure_registries=table.str_list("insecure-registries"),
        unpack_limits=_unpack_limits(table.table("unpack")),
    )


def _unpack_limits(table: Table) -> UnpackLimits:
    default = UnpackLimits()
    table.only("max-layer-bytes", "max-layer-entries")
    limits = UnpackLimits(
        max_layer_bytes=table.get_int("max-layer-bytes", default.max_layer_bytes),
        max_layer_entries=table.get_int("max-layer-entries", default.max_layer_entries),
    )
    for key, value in (("max-layer-bytes", limits.max_layer_bytes), ("max-layer-entries", limits.max_layer_entries)):
        if value <= 0:
            raise table.error(key, f"expected a positive integer, got {value}")
    return limits


def save_config(home: Path, config: CnbConfig) -> Path:
    path = config_path(home)
    write_toml(path, config.to_dict())
    return path
