"""The per-invocation buildpack environment (docs/spec-notes.md §3.9 step 3, §3.2 target variables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnbplatform.buildpack.env import cnb_target_env, invocation_env
from cnbplatform.files.analyzed import TargetInfo
from cnbplatform.files.common import SpecFileError


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    platform, build_config = tmp_path / "platform", tmp_path / "build-config"
    (platform / "env").mkdir(parents=True)
    (build_config / "env").mkdir(parents=True)
    return platform, build_config


def test_platform_env_sets_overrides_and_prepends_path_like_vars(tmp_path: Path) -> None:
    """§16 item 15: <platform>/env/NAME appears as NAME; PATH-like vars are prepended with ':', others override."""
    platform, build_config = _dirs(tmp_path)
    (platform / "env" / "NEW").write_bytes(b"value with trailing newline\n")
    (platform / "env" / "HOME").write_text("/from/user")
    for name in ("PATH", "LD_LIBRARY_PATH", "LIBRARY_PATH", "CPATH", "PKG_CONFIG_PATH"):
        (platform / "env" / name).write_text(f"/user/{name}")
    (platform / "env" / "SUFFIXED.append").write_text("x")  # the whole file name is the variable name
    base = {"PATH": "/bin", "LD_LIBRARY_PATH": "/lib", "HOME": "/home/cnb", "KEEP": "kept"}

    env = invocation_env(base, platform_dir=platform, build_config_dir=build_config, clear_env=False)

    assert env == {
        "PATH": "/user/PATH:/bin",
        "LD_LIBRARY_PATH": "/user/LD_LIBRARY_PATH:/lib",
        "LIBRARY_PATH": "/user/LIBRARY_PATH",  # unset before: no separator
        "CPATH": "/user/CPATH",
        "PKG_CONFIG_PATH": "/user/PKG_CONFIG_PATH",
        "HOME": "/from/user",
        "NEW": "value with trailing newline\n",
        "SUFFIXED.append": "x",
        "KEEP": "kept",
    }
    assert base == {"PATH": "/bin", "LD_LIBRARY_PATH": "/lib", "HOME": "/home/cnb", "KEEP": "kept"}  # not mutated


def test_clear_env_suppresses_platform_env_but_not_build_config(tmp_path: Path) -> None:
    """§16 items 15-16: clear-env=true drops <platform>/env; <build-config>/env still applies."""
    platform, build_config = _dirs(tmp_path)
    (platform / "env" / "USERVAR").write_text("user")
    (platform / "env" / "PATH").write_text("/user/bin")
    (build_config / "env" / "OPERATOR").write_text("op")

    env = invocation_env({"PATH": "/bin"}, platform_dir=platform, build_config_dir=build_config, clear_env=True)

    assert env == {"PATH": "/bin", "OPERATOR": "op"}


def test_build_config_no_suffix_is_default_and_override_forces(tmp_path: Path) -> None:
    """§16 item 16: <build-config>/env/NAME only sets NAME when empty; NAME.override forces it."""
    platform, build_config = _dirs(tmp_path)
    (platform / "env" / "SET_BY_USER").write_text("user")
    (platform / "env" / "EMPTY_BY_USER").write_text("")
    (build_config / "env" / "SET_BY_USER").write_text("operator-default")
    (build_config / "env" / "EMPTY_BY_USER").write_text("filled")
    (build_config / "env" / "UNSET").write_text("operator-default")
    (build_config / "env" / "FORCED.override").write_text("operator")
    (build_config / "env" / "PATH.append").write_text("/op/bin")
    (build_config / "env" / "PATH.delim").write_text(":")
    (platform / "env" / "FORCED").write_text("user")

    env = invocation_env({"PATH": "/bin"}, platform_dir=platform, build_config_dir=build_config, clear_env=False)

    assert env == {
        "PATH": "/bin:/op/bin",
        "SET_BY_USER": "user",
        "EMPTY_BY_USER": "filled",
        "UNSET": "operator-default",
        "FORCED": "operator",
    }


def test_missing_env_dirs_and_no_build_config(tmp_path: Path) -> None:
    """§3.9 step 3: absent env dirs contribute nothing."""
    env = invocation_env({"A": "1"}, platform_dir=tmp_path / "nowhere", build_config_dir=None, clear_env=False)
    assert env == {"A": "1"}


def test_unreadable_platform_env_file_raises(tmp_path: Path) -> None:
    platform, _ = _dirs(tmp_path)
    (platform / "env" / "DANGLING").symlink_to(tmp_path / "missing")
    with pytest.raises(SpecFileError, match="DANGLING"):
        invocation_env({}, platform_dir=platform, build_config_dir=None, clear_env=False)


def test_target_env_sets_optional_values_only_when_present() -> None:
    """§16 item 13: CNB_TARGET_OS/ARCH always, variant and distro only when non-empty."""
    full = TargetInfo(os="linux", arch="arm64", arch_variant="v8", distro_name="ubuntu", distro_version="22.04")
    assert cnb_target_env(full) == {
        "CNB_TARGET_OS": "linux",
        "CNB_TARGET_ARCH": "arm64",
        "CNB_TARGET_ARCH_VARIANT": "v8",
        "CNB_TARGET_DISTRO_NAME": "ubuntu",
        "CNB_TARGET_DISTRO_VERSION": "22.04",
    }
    assert cnb_target_env(TargetInfo(os="linux", arch="amd64", id="base")) == {
        "CNB_TARGET_OS": "linux",
        "CNB_TARGET_ARCH": "amd64",
    }
