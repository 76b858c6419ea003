"""The independent checkers: skopeo and umoci judge what cnb wrote."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def skopeo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120, env=env)
    if done.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed: {done.stderr}")
    return done


def skopeo_inspect(transport_ref: str, *extra: str) -> dict[str, Any]:
    """``skopeo inspect`` (plain HTTP allowed) parsed."""
    args = ["inspect", *extra]
    if transport_ref.startswith("docker://"):
        args.append("--tls-verify=false")
    return dict(json.loads(skopeo(*args, transport_ref).stdout))


def skopeo_raw_digest(transport_ref: str) -> str:
    return str(skopeo_inspect(transport_ref)["Digest"])


def umoci_unpack(layout: Path, tag: str, bundle: Path) -> Path:
    """Unpack with umoci (rootless mode off: tests run as root) and return the rootfs."""
    done = subprocess.run(
        ["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise AssertionError(f"umoci unpack {layout}:{tag} failed: {done.stderr}")
    return bundle / "rootfs"
