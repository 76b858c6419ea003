"""Start a real Docker engine for a test session, and stop it cleanly.

``start_dockerd(workdir)`` runs ``dockerd`` without iptables or a bridge (containers need ``--network none``
or ``host``), with its data root under *workdir*, and waits until ``GET /_ping`` answers on its unix socket.
overlay2 is tried first; when the data root sits on overlayfs, or dockerd refuses overlay2, the ``vfs``
driver is used instead and a warning says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

SOCKET_NAME = "docker.sock"
_MAX_SHORT_DIR = 60  # exec-root holds containerd sockets; unix socket paths must stay under 108 bytes


@dataclass
class RunningDockerd:
    """A dockerd started by :func:`start_dockerd`."""

    base_url: str
    process: subprocess.Popen[bytes]
    data_root: Path
    exec_root: Path
    short_dir: Path
    log_path: Path
    storage_driver: str
    startup_seconds: float
    _owned_dirs: list[Path] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a ``docker`` CLI talking to this engine."""
        return {**os.environ, "DOCKER_HOST": self.base_url}

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait (SIGKILL after *timeout*), unmount what is left, remove the dirs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        _unmount_under(self.exec_root, self.data_root)
        for path in self._owned_dirs:
            shutil.rmtree(path, ignore_errors=True)


def _mounts() -> list[tuple[str, str]]:
    """(mount point, fs type) of every mount, from /proc/self/mounts."""
    out: list[tuple[str, str]] = []
    with open("/proc/self/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3:
                out.append((parts[1].replace("\\040", " "), parts[2]))
    return out


def _fs_type(path: Path) -> str:
    target = str(path.resolve())
    best, kind = "", ""
    for point, fstype in _mounts():
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def _unmount_under(*roots: Path) -> None:
    prefixes = [str(root.resolve()).rstrip("/") + "/" for root in roots]
    points = [p for p, _ in _mounts() if any((p + "/").startswith(prefix) for prefix in prefixes)]
    for point in sorted(points, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _ping(sock_path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(1.0)
            conn.connect(str(sock_path))
            conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = b""
            while chunk := conn.recv(4096):
                reply += chunk
    except OSError:
        return False
    return reply.startswith(b"HTTP/1.") and b" 200 " in reply.split(b"\r\n", 1)[0]


def _launch(
    driver: str, data_root: Path, short_dir: Path, log_path: Path, timeout: float
) -> tuple[subprocess.Popen[bytes], float] | str:
    """Start dockerd with *driver*; the process and its start-up time, or the log tail when it died."""
    exec_root, sock = short_dir / "e", short_dir / SOCKET_NAME
    exec_root.mkdir(exist_ok=True)
    sock.unlink(missing_ok=True)
    argv = [
        "dockerd",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        f"--storage-driver={driver}",
        f"--data-root={data_root}",
        f"--exec-root={exec_root}",
        f"--pidfile={short_dir / 'docker.pid'}",
        f"--host=unix://{sock}",
    ]
    started = time.monotonic()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = started + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return log_path.read_text(errors="replace")[-2000:]
        if _ping(sock):
            return process, time.monotonic() - started
        time.sleep(0.02)
    process.kill()
    process.wait(10)
    raise RuntimeError(f"dockerd did not answer on {sock} within {timeout:.0f}s; log: {log_path}")


def start_dockerd(workdir: Path, *, timeout: float = 60.0, storage_driver: str | None = None) -> RunningDockerd:
    """Start a private dockerd with its state under *workdir*; raise RuntimeError with its log when it fails.

    *storage_driver* forces a driver; by default overlay2, falling back to vfs.
    """
    if shutil.which("dockerd") is None:
        raise RuntimeError("dockerd is not installed (apt-get install docker.io)")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    data_root, log_path = workdir / "data", workdir / "dockerd.log"
    data_root.mkdir(exist_ok=True)
    owned = [workdir / "data"]
    if len(str(workdir)) <= _MAX_SHORT_DIR:
        short_dir = workdir / "run"
        short_dir.mkdir(exist_ok=True)
    else:
        short_dir = Path(tempfile.mkdtemp(prefix="dk-"))
    owned.append(short_dir)
    drivers = [storage_driver] if storage_driver else ["overlay2", "vfs"]
    if not storage_driver and _fs_type(data_root) in ("overlay", "overlayfs", "aufs"):
        drivers = ["vfs"]
        warnings.warn(f"{data_root} is on overlayfs: dockerd uses the vfs storage driver", stacklevel=2)
    for driver in drivers:
        launched = _launch(driver, data_root, short_dir, log_path, timeout)
        if isinstance(launched, tuple):
            process, seconds = launched
            return RunningDockerd(
                base_url=f"unix://{short_dir / SOCKET_NAME}",
                process=process,
                data_root=data_root,
                exec_root=short_dir / "e",
                short_dir=short_dir,
                log_path=log_path,
                storage_driver=driver,
                startup_seconds=seconds,
                _owned_dirs=owned,
            )
        _unmount_under(short_dir / "e", data_root)
        if driver == drivers[-1]:
            with contextlib.suppress(OSError):
                shutil.rmtree(short_dir)
            raise RuntimeError(f"dockerd failed to start (storage driver {driver}):\n{launched}")
        warnings.warn(f"dockerd refused the {driver} storage driver; falling back to vfs", stacklevel=2)
        shutil.rmtree(data_root, ignore_errors=True)
        data_root.mkdir()
    raise AssertionError("unreachable")
