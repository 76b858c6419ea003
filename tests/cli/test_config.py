"""``cnb config``: a value that could never be used (a malformed builder name, registry host or mirror) is refused
with one line when it is set, and config.toml keeps what it had; good values are kept as given."""

from __future__ import annotations

import tomllib

from tests.conftest import Cnb


def test_bad_values_are_refused_and_config_toml_is_unchanged(cnb: Cnb) -> None:
    cnb("config", "default-builder", "paketobuildpacks/builder-jammy-base")
    cnb("config", "trusted-builders", "add", "heroku/builder:24")
    cnb("config", "insecure-registries", "add", "localhost:5000")
    cnb("config", "registry-mirrors", "add", "docker.io", "--mirror", "mirror.example:5000/hub")
    cnb("config", "registry-mirrors", "add", "*", "--mirror", "https://mirror.example")
    config = cnb.home / "config.toml"
    before = config.read_bytes()
    assert tomllib.loads(before.decode()) == {
        "default-builder": "paketobuildpacks/builder-jammy-base",
        "trusted-builders": ["heroku/builder:24"],
        "insecure-registries": ["localhost:5000"],
        "registry-mirrors": {"docker.io": "mirror.example:5000/hub", "*": "https://mirror.example"},
    }
    for args in (
        ("default-builder", "Foo//bar:"),
        ("trusted-builders", "add", "Foo//bar:"),
        ("insecure-registries", "add", "a b"),
        ("insecure-registries", "add", "host/path"),
        ("registry-mirrors", "add", "docker.io", "--mirror", "Foo//bar:"),
        ("registry-mirrors", "add", "not a host", "--mirror", "mirror.example"),
    ):
        done = cnb("config", *args, check=False)
        assert done.returncode == 2, (args, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)
    assert config.read_bytes() == before
    cnb("config", "default-builder", "builders/tiny")  # a builder directory (cwd is the repository)
    assert tomllib.loads(config.read_text())["default-builder"] == "builders/tiny"
