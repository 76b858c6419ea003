"""Start real ``docker-registry`` (distribution 2.8) servers on 127.0.0.1 for tests.

``start_registry(workdir)`` writes its own config (never the packaged one), picks a free port, starts
``docker-registry serve CONFIG`` and waits until ``/v2/`` answers. The returned :class:`RunningRegistry`
can be stopped and started again on the same port and storage, so a test can take the registry away in
the middle of a push. Options: TLS with a throw-away CA (``ca_file`` is what clients trust), htpasswd
Basic auth, or bearer tokens from a :class:`~tests.support.token_server.TokenServer`.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from tests.support.pki import issue_server_cert, make_ca
from tests.support.token_server import TokenServer

READY_TIMEOUT = 60.0  # generous: a loaded machine starts it slowly; a healthy start takes well under a second


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _q(value: str | Path) -> str:
    """A YAML scalar (JSON strings are valid YAML)."""
    return json.dumps(str(value))


@dataclass
class RunningRegistry:
    """A ``docker-registry`` process and everything a test needs to reach (and damage) it."""

    workdir: Path
    port: int
    config_file: Path
    storage_dir: Path
    log_file: Path
    ca_file: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.ca_file else 'http'}://{self.host}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (so a test can corrupt it)."""
        algorithm, hexpart = digest.split(":", 1)
        return self.storage_dir / "docker/registry/v2/blobs" / algorithm / hexpart[:2] / hexpart / "data"

    def start(self) -> RunningRegistry:
        if self.running:
            return self
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RuntimeError("docker-registry is not installed (apt-get install docker-registry)")
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [binary, "serve", str(self.config_file)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        verify: bool | ssl.SSLContext = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else False
        with httpx.Client(verify=verify, timeout=2.0) as client:
            while time.monotonic() < deadline:
                if not self.running:
                    raise RuntimeError(
                        f"docker-registry exited at start; log {self.log_file}:\n{self.log_text()[-2000:]}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.url}/v2/").status_code in (200, 401):
                        return
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.url} within {READY_TIMEOUT}s; log {self.log_file}")

    def stop(self) -> None:
        """Terminate the process (the storage stays, so :meth:`start` brings the same registry back)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def __enter__(self) -> RunningRegistry:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _write_config(
    registry: RunningRegistry,
    *,
    tls: tuple[Path, Path] | None,
    htpasswd_file: Path | None,
    token_auth: TokenServer | None,
) -> None:
    lines = [
        "version: 0.1",
        "log:",
        "  level: info",
        "  accesslog:",
        "    disabled: false",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {_q(registry.storage_dir)}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: {_q(registry.host)}",
        # A fixed secret keeps upload session state valid across a stop/start of the same registry.
        f"  secret: {_q(secrets.token_hex(16))}",
    ]
    if tls is not None:
        lines += ["  tls:", f"    certificate: {_q(tls[0])}", f"    key: {_q(tls[1])}"]
    if htpasswd_file is not None:
        lines += ["auth:", "  htpasswd:", '    realm: "cnb-test"', f"    path: {_q(htpasswd_file)}"]
    elif token_auth is not None:
        lines += [
            "auth:",
            "  token:",
            f"    realm: {_q(token_auth.realm)}",
            f"    service: {_q(token_auth.service)}",
            f"    issuer: {_q(token_auth.issuer)}",
            f"    rootcertbundle: {_q(token_auth.cert_file)}",
        ]
    registry.config_file.write_text("\n".join(lines) + "\n")


def start_registry(
    workdir: Path,
    *,
    tls: bool = False,
    htpasswd: tuple[str, str] | None = None,
    token_auth: TokenServer | None = None,
    port: int | None = None,
) -> RunningRegistry:
    """Configure and start a registry under *workdir* (storage in ``workdir/storage``); see module doc."""
    if htpasswd is not None and token_auth is not None:
        raise ValueError("choose htpasswd or token auth, not both")
    workdir.mkdir(parents=True, exist_ok=True)
    tls_files: tuple[Path, Path] | None = None
    ca_file: Path | None = None
    if tls:
        ca = make_ca(workdir / "pki")
        server = issue_server_cert(ca, workdir / "pki")
        tls_files, ca_file = (server.cert_file, server.key_file), ca.cert_file
    htpasswd_file: Path | None = None
    if htpasswd is not None:
        htpasswd_file = workdir / "htpasswd"
        done = subprocess.run(
            ["htpasswd", "-Bbn", htpasswd[0], htpasswd[1]], capture_output=True, check=True, timeout=30
        )
        htpasswd_file.write_bytes(done.stdout)
    for attempt in range(3):
        registry = RunningRegistry(
            workdir=workdir,
            port=port or free_port(),
            config_file=workdir / "config.yml",
            storage_dir=workdir / "storage",
            log_file=workdir / "registry.log",
            ca_file=ca_file,
        )
        registry.storage_dir.mkdir(exist_ok=True)
        _write_config(registry, tls=tls_files, htpasswd_file=htpasswd_file, token_auth=token_auth)
        try:
            return registry.start()
        except RuntimeError:
            if port is not None or attempt == 2:  # a fixed port cannot be retried elsewhere
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def running_registry(
    workdir: Path,
    *,
    tls: bool = False,
    htpasswd: tuple[str, str] | None = None,
    token_auth: TokenServer | None = None,
) -> Iterator[RunningRegistry]:
    """``with running_registry(tmp_path) as reg:`` — started on entry, stopped on exit."""
    registry = start_registry(workdir, tls=tls, htpasswd=htpasswd, token_auth=token_auth)
    try:
        yield registry
    finally:
        registry.stop()
