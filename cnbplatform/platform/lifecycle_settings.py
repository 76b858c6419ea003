"""The inputs of ``cnb lifecycle <phase>``: flags > ``CNB_*`` variables > defaults, with the names, defaults and
paths of docs/spec-notes.md §2 (so a CI system can drive the phases as it would drive the Go lifecycle).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cnbplatform.errors import UsageError

if TYPE_CHECKING:
    from cnbplatform.oci.address import ImageAddress

# flag name -> (environment variable, default). Defaults that start with "<layers>" are resolved after layers.
SETTINGS: dict[str, tuple[str | None, str | None]] = {
    "platform_api": ("CNB_PLATFORM_API", None),
    "layers": ("CNB_LAYERS_DIR", "/layers"),
    "app": ("CNB_APP_DIR", "/workspace"),
    "platform": ("CNB_PLATFORM_DIR", "/platform"),
    "buildpacks": ("CNB_BUILDPACKS_DIR", "/cnb/buildpacks"),
    "build_config": ("CNB_BUILD_CONFIG_DIR", "/cnb/build-config"),
    "analyzed": ("CNB_ANALYZED_PATH", "<layers>/analyzed.toml"),
    "group": ("CNB_GROUP_PATH", "<layers>/group.toml"),
    "plan": ("CNB_PLAN_PATH", "<layers>/plan.toml"),
    "order": ("CNB_ORDER_PATH", None),  # <layers>/order.toml if it exists, else /cnb/order.toml
    "run": ("CNB_RUN_PATH", "/cnb/run.toml"),
    "stack": ("CNB_STACK_PATH", "/cnb/stack.toml"),  # Platform API < 0.12 reads it instead of run.toml
    "system": ("CNB_SYSTEM_PATH", "/cnb/system.toml"),
    "report": ("CNB_REPORT_PATH", "<layers>/report.toml"),
    "project_metadata": ("CNB_PROJECT_METADATA_PATH", "<layers>/project-metadata.toml"),
    "cache_dir": ("CNB_CACHE_DIR", None),
    "cache_image": ("CNB_CACHE_IMAGE", None),
    "previous_image": ("CNB_PREVIOUS_IMAGE", None),
    "run_image": ("CNB_RUN_IMAGE", None),
    "uid": ("CNB_USER_ID", None),
    "gid": ("CNB_GROUP_ID", None),
    "skip_layers": ("CNB_SKIP_LAYERS", "false"),
    "skip_restore": ("CNB_SKIP_RESTORE", "false"),
    "process_type": ("CNB_PROCESS_TYPE", None),
    "exec_env": ("CNB_EXEC_ENV", "production"),
    "launcher": (None, "/cnb/lifecycle/launcher"),
    "log_level": ("CNB_LOG_LEVEL", "info"),
    "daemon": ("CNB_USE_DAEMON", "false"),
    "parallel": ("CNB_PARALLEL_EXPORT", "false"),
    "sandbox": ("CNB_SANDBOX", "host"),
    "build_image": ("CNB_BUILD_IMAGE", None),
    "detect_timeout": ("CNB_DETECT_TIMEOUT", "600"),
    "build_timeout": ("CNB_BUILD_TIMEOUT", None),
    "network": ("CNB_NETWORK", "private"),
    "force": ("CNB_FORCE_REBASE", "false"),
}


def _network(value: str) -> str:
    lowered = value.strip().lower()
    if lowered in ("private", "host", "none"):
        return lowered
    try:
        return "private" if _bool("network", lowered) else "none"
    except UsageError:
        raise UsageError(f"network: expected private, host or none (or true/false), got {value!r}") from None


def _bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise UsageError(f"{name}: expected true or false, got {value!r}")


def _int(name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{name}: expected an integer, got {value!r}") from None


def _float(name: str, value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"{name}: expected a number of seconds, got {value!r}") from None
    return number if number > 0 else None


@dataclass(frozen=True)
class LifecycleSettings:
    platform_api: str | None
    layers: Path
    app: Path
    platform: Path
    buildpacks: Path
    build_config: Path
    analyzed: Path
    group: Path
    plan: Path
    order: Path
    run: Path
    stack: Path
    system: Path
    report: Path
    project_metadata: Path
    launcher: Path
    cache_dir: Path | None = None
    cache_image: str | None = None
    previous_image: str | None = None
    run_image: str | None = None
    uid: int | None = None
    gid: int | None = None
    skip_layers: bool = False
    process_type: str | None = None
    exec_env: str = "production"
    daemon: bool = False
    parallel: bool = False
    sandbox: str = "host"
    build_image: str | None = None
    detect_timeout: float | None = 600.0
    build_timeout: float | None = None
    network: str = "private"
    """The buildpacks' network: ``private`` (own namespace: the outside world, not the host's loopback), ``host``
    or ``none``; ``true``/``false`` (the ``--network``/``--no-network`` flag) mean ``private``/``none``."""
    log_level: str = "info"
    force: bool = False
    tags: tuple[str, ...] = ()
    images: tuple[str, ...] = field(default_factory=tuple)
    outputs: tuple[ImageAddress, ...] = ()
    """Where export writes the image (the images, then the tags) when the platform decided it (``cnb build``);
    empty: the phases read it from ``images`` and ``tags`` (and ``daemon``)."""
    source_date_epoch: int | None = None
    """The image's creation time in seconds since the epoch (``cnb build --creation-time``); None: the
    environment's ``SOURCE_DATE_EPOCH`` (Platform API 0.9 and later), else the spec's fixed date."""


def resolve_settings(
    flags: Mapping[str, object], env: Mapping[str, str], *, images: tuple[str, ...] = (), tags: tuple[str, ...] = ()
) -> LifecycleSettings:
    """``cnb lifecycle <phase>``, whose flags and ``CNB_*`` variables are text: flags (None = not given) >
    environment > defaults (docs/spec-notes.md §1.2: flags beat env vars beat defaults). ``cnb build`` makes its
    :class:`LifecycleSettings` itself."""
    raw: dict[str, str | None] = {}
    for name, (variable, default) in SETTINGS.items():
        flag = flags.get(name)
        if flag is not None and flag != "":
            raw[name] = str(flag).lower() if isinstance(flag, bool) else str(flag)
        elif variable is not None and env.get(variable, "") != "":
            raw[name] = env[variable]
        else:
            raw[name] = default
    layers = Path(raw["layers"] or "/layers")

    def path(name: str) -> Path:
        value = raw[name] or ""
        return layers / value[len("<layers>/") :] if value.startswith("<layers>/") else Path(value)

    order = raw["order"]
    order_path = Path(order) if order else (layers / "order.toml" if (layers / "order.toml").exists() else None)
    sandbox = raw["sandbox"] or "host"
    if sandbox not in ("host", "bwrap", "docker"):
        raise UsageError(f"--sandbox: expected host, bwrap or docker, got {sandbox!r}")
    skip = _bool("skip_layers", raw["skip_layers"] or "false") or _bool("skip_restore", raw["skip_restore"] or "false")
    return LifecycleSettings(
        platform_api=raw["platform_api"],
        layers=layers,
        app=path("app"),
        platform=path("platform"),
        buildpacks=path("buildpacks"),
        build_config=path("build_config"),
        analyzed=path("analyzed"),
        group=path("group"),
        plan=path("plan"),
        order=order_path or Path("/cnb/order.toml"),
        run=path("run"),
        stack=path("stack"),
        system=path("system"),
        report=path("report"),
        project_metadata=path("project_metadata"),
        launcher=path("launcher"),
        cache_dir=Path(raw["cache_dir"]) if raw["cache_dir"] else None,
        cache_image=raw["cache_image"],
        previous_image=raw["previous_image"],
        run_image=raw["run_image"],
        uid=_int("uid", raw["uid"]),
        gid=_int("gid", raw["gid"]),
        skip_layers=skip,
        process_type=raw["process_type"],
        exec_env=raw["exec_env"] or "production",
        daemon=_bool("daemon", raw["daemon"] or "false"),
        parallel=_bool("parallel", raw["parallel"] or "false"),
        sandbox=sandbox,
        build_image=raw["build_image"],
        detect_timeout=_float("detect_timeout", raw["detect_timeout"]),
        build_timeout=_float("build_timeout", raw["build_timeout"]),
        network=_network(raw["network"] or "private"),
        log_level=raw["log_level"] or "info",
        force=_bool("force", raw["force"] or "false"),
        tags=tags,
        images=images,
    )
