"""Sandboxes that run one buildpack executable in the build image (docs/design.md section 3, decision 1).

``bwrap`` is the default on Linux, ``docker`` runs each step as an exec in one container per build, and
``host`` (explicit opt-in) runs on this machine with sandbox paths rewritten to host paths.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from cnbplatform.errors import UsageError
from cnbplatform.sandbox.bwrap import BwrapSandbox, check_bwrap
from cnbplatform.sandbox.host import HostSandbox
from cnbplatform.sandbox.network import (
    DEFAULT_NETWORK,
    NETWORKS,
    PrivateNetwork,
    check_network,
    loopback_proxy_ports,
    proxy_env,
)
from cnbplatform.sandbox.protocol import (
    DEFAULT_OUTPUT_LIMIT,
    Mount,
    OutputCallback,
    RunRequest,
    RunResult,
    Sandbox,
)

if TYPE_CHECKING:
    from cnbplatform.sandbox.docker import DockerSandbox

SandboxKind = Literal["bwrap", "docker", "host"]
KINDS: tuple[str, ...] = ("bwrap", "docker", "host")

__all__ = [
    "DEFAULT_NETWORK",
    "DEFAULT_OUTPUT_LIMIT",
    "KINDS",
    "NETWORKS",
    "BwrapSandbox",
    "DockerSandbox",
    "HostSandbox",
    "Mount",
    "OutputCallback",
    "PrivateNetwork",
    "RunRequest",
    "RunResult",
    "Sandbox",
    "SandboxKind",
    "check_bwrap",
    "check_network",
    "loopback_proxy_ports",
    "make_sandbox",
    "proxy_env",
]


def __getattr__(name: str) -> Any:
    """``DockerSandbox`` loads on first use: a bwrap build never needs it."""
    if name == "DockerSandbox":
        from cnbplatform.sandbox.docker import DockerSandbox

        return DockerSandbox
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_sandbox(
    kind: str,
    *,
    rootfs: Path | None = None,
    image: str | None = None,
    docker_env: Mapping[str, str] | None = None,
    network: str = DEFAULT_NETWORK,
    host_ports: tuple[int, ...] = (),
) -> Sandbox:
    """The sandbox named *kind*: ``bwrap`` needs *rootfs* (the unpacked build image), ``docker`` needs *image*
    (reference or image ID in the engine that *docker_env*'s ``DOCKER_HOST`` etc. point at), ``host`` needs
    neither. *network* (``private`` or ``host``) is what a request with the network gets; ``host`` runs on this
    machine's network whatever it says. *host_ports* are host loopback ports a bwrap ``private`` network forwards
    (a loopback proxy's)."""
    if kind == "bwrap":
        if rootfs is None:
            raise UsageError("sandbox bwrap needs the unpacked build image (rootfs)")
        return BwrapSandbox(rootfs, network=network, host_ports=host_ports)
    if kind == "docker":
        if image is None:
            raise UsageError("sandbox docker needs the build image")
        from cnbplatform.sandbox.docker import DockerSandbox

        return DockerSandbox(image, environment=docker_env, network=network)
    if kind == "host":
        return HostSandbox()
    raise UsageError(f"unknown sandbox {kind!r}: choose one of {', '.join(KINDS)}")
