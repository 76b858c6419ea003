"""The environment of one buildpack invocation (``bin/detect`` or ``bin/build``), shared by the detect and build
phases (docs/spec-notes.md §3.2, §3.3, §3.9 step 3).

Both functions are pure: they read the host's ``<platform>/env`` and ``<build-config>/env`` directories and return a
new mapping; nothing is accumulated between invocations (§3.9 step 3 is "a copy, not accumulated"). Values are the
files' exact bytes (decoded with ``surrogateescape``, so they reach the buildpack byte for byte).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cnbplatform.buildpack.envdir import apply_env_ops, platform_env_ops, read_env_dir
from cnbplatform.files.analyzed import TargetInfo


def invocation_env(
    base_env: Mapping[str, str],
    *,
    platform_dir: Path,
    build_config_dir: Path | None,
    clear_env: bool,
) -> dict[str, str]:
    """*base_env* plus the user's and the operator's env files (docs/spec-notes.md §3.9 step 3).

    1. Unless the buildpack sets ``clear-env = true``: every file of ``<platform_dir>/env`` sets the variable named
       by the whole file name; for ``PATH``, ``LD_LIBRARY_PATH``, ``LIBRARY_PATH``, ``CPATH`` and ``PKG_CONFIG_PATH``
       the value is prepended with ``:``, other variables are overridden.
    2. Always (also with ``clear-env``): ``<build_config_dir>/env`` with the env-dir suffix rules (§3.8), where a
       file without suffix is ``.default`` (sets the variable only when it is unset or empty).

    *platform_dir* and *build_config_dir* are host paths (the directories the lifecycle reads). A missing ``env``
    directory contributes nothing; an unreadable one raises ``SpecFileError``.
    """
    env = dict(base_env)
    if not clear_env:
        apply_env_ops(env, platform_env_ops(Path(platform_dir) / "env"))
    if build_config_dir is not None:
        apply_env_ops(env, read_env_dir(Path(build_config_dir) / "env", no_suffix="default"))
    return env


def cnb_target_env(target: TargetInfo) -> dict[str, str]:
    """``CNB_TARGET_*`` for the run image's target (docs/spec-notes.md §3.2, Buildpack API >= 0.10).

    ``CNB_TARGET_OS`` and ``CNB_TARGET_ARCH`` are always set; ``CNB_TARGET_ARCH_VARIANT``,
    ``CNB_TARGET_DISTRO_NAME`` and ``CNB_TARGET_DISTRO_VERSION`` only when non-empty.
    """
    env = {"CNB_TARGET_OS": target.os, "CNB_TARGET_ARCH": target.arch}
    for name, value in (
        ("CNB_TARGET_ARCH_VARIANT", target.arch_variant),
        ("CNB_TARGET_DISTRO_NAME", target.distro_name),
        ("CNB_TARGET_DISTRO_VERSION", target.distro_version),
    ):
        if value:
            env[name] = value
    return env
