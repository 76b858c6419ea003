"""``$CNB_HOME/config.toml``: default builder, trusted builders, registry mirrors, insecure registries."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnbplatform.files.common import read_toml, write_toml


@dataclass
class CnbConfig:
    default_builder: str = ""
    trusted_builders: list[str] = field(default_factory=list)
    registry_mirrors: dict[str, str] = field(default_factory=dict)
    insecure_registries: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return {
            "default-builder": self.default_builder or None,
            "trusted-builders": sorted(set(self.trusted_builders)) or None,
            "registry-mirrors": dict(sorted(self.registry_mirrors.items())) or None,
            "insecure-registries": sorted(set(self.insecure_registries)) or None,
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
    )


def save_config(home: Path, config: CnbConfig) -> Path:
    path = config_path(home)
    write_toml(path, config.to_dict())
    return path
