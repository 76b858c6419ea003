"""Run buildpack executables in a container of the build image on a Docker engine (docs/design.md section 3, decision
1).

One container per build: it is created on the first ``run`` with the request's bind mounts (``/layers``,
``/workspace``, ``/platform``, ``/cnb/buildpacks``: docs/spec-notes.md section 1.1) and kept alive by a shell loop
under the engine's init (``--init``), running as root so that a step's processes can never signal it. Each
step is an ``exec`` as ``CNB_USER_ID:CNB_GROUP_ID`` with the request's working directory.

* All steps of one build are meant to share the same mounts and network setting. A request whose mounts or
  network differ from the running container's gets a fresh container (the old one is removed), so it is
  correct, only slower. Mount sources are paths on the engine's host: the engine must be local.
* The environment is exactly the request's (docs/spec-notes.md section 3.9) plus ``PWD``: the step runs as ``env -i
NAME=VALUE…
  ARGV`` so that the image's ``Env`` and what Docker adds (``HOSTNAME``, ``HOME``) do not leak in. The
  image must therefore have ``env`` and ``sh`` on its ``PATH`` (every build image does).
* Unlike bwrap, the container sees real uids: a read-write mount must be writable by ``CNB_USER_ID`` on the
  host (the lifecycle chowns the layers and app dirs, as the Go lifecycle does).
* The network is ``none`` unless the request allows it; then it follows *network* as the bwrap sandbox does:
  ``private`` (the default) is the engine's own ``bridge`` network (the outside world through the engine's NAT,
  not this machine's loopback, as pack's per-build bridge network), ``host`` the host's network namespace. An
  engine started with ``--bridge=none`` (as the tests' engine) has no bridge network, so its bridge-mode containers
  reach no outside network either: there ``--network host`` gives buildpacks one.
* Timeout: a second exec as the same user runs ``kill -9 -1``, which ends every process of that user in
  the container (works with busybox and dash). If the output stream still has not ended a little later,
  it is closed. The exit code is then 137 and ``timed_out`` is true.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from cnbplatform.errors import CnbError, DaemonError, NotFoundError, UsageError
from cnbplatform.sandbox.network import DEFAULT_NETWORK
from cnbplatform.sandbox.protocol import (
    DRAIN_GRACE,
    Capture,
    RunRequest,
    RunResult,
    mounts_by_depth,
    validate_request,
)

KEEPALIVE = ["/bin/sh", "-c", "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"]
LABEL = "io.buildpacks.cnb.sandbox"
_KILL = ["/bin/sh", "-c", "kill -9 -1"]
_RUNTIME_FAILED = b"OCI runtime exec failed"  # what the engine prints (exit 126) when the exec cannot start
_CLOSE_AFTER = DRAIN_GRACE + 3.0  # seconds after the kill before the output stream is closed by force
_EXIT_WAIT = 5.0  # seconds to wait for the engine to record an exec's exit code
_NETWORK_MODES = {"private": "bridge", "host": "host"}  # the build network -> the engine's network mode


class DockerSandbox:
    """Runs each request as an ``exec`` in one long-lived container of *image* (a reference or image ID)."""

    def __init__(
        self,
        image: str,
        *,
        client: Any | None = None,
        environment: Mapping[str, str] | None = None,
        network: str = DEFAULT_NETWORK,
    ) -> None:
        if network not in _NETWORK_MODES:
            raise UsageError(f"sandbox: network {network!r}: expected private or host (none is a request without it)")
        self.image = image
        self.network_mode = _NETWORK_MODES[network]
        self._client = client
        self._owns_client = client is None
        self._environment = dict(environment or {})
        self._container: str | None = None
        self._key: tuple[object, ...] | None = None

    # -- engine plumbing ---------------------------------------------------------------------------------

    def _api(self) -> Any:
        if self._client is None:
            import docker

            kwargs = docker.utils.kwargs_from_env(environment=self._environment) if self._environment else {}
            with self._calling("connect"):
                self._client = docker.DockerClient(version="auto", **kwargs)
        return getattr(self._client, "api", self._client)

    @contextlib.contextmanager
    def _calling(self, action: str) -> Iterator[None]:
        """Turn docker-py and requests failures during *action* into one-line cnb errors."""
        import docker.errors
        import requests

        try:
            yield
        except CnbError:
            raise
        except docker.errors.ImageNotFound as exc:
            raise NotFoundError(f"sandbox: build image {self.image} is not in the Docker engine") from exc
        except docker.errors.APIError as exc:
            detail = " ".join(str(exc.explanation or exc).split())
            raise DaemonError(f"sandbox: the Docker engine refused to {action}: {detail}") from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DaemonError(f"sandbox: cannot {action} in the Docker engine: {exc}") from exc

    def _ensure_container(self, request: RunRequest) -> str:
        """The running container for *request*'s mounts and network, created or restarted as needed."""
        mounts = mounts_by_depth(request.mounts)
        key = (tuple((str(Path(m.source).resolve()), m.target, m.read_only) for m in mounts), request.network)
        api = self._api()
        if self._container is not None and key != self._key:
            self._remove()
        if self._container is not None:
            with self._calling("inspect the sandbox container"):
                running = api.inspect_container(self._container)["State"]["Running"]
                if not running:
                    api.start(self._container)
            return self._container
        import docker.types

        binds = [docker.types.Mount(target, source, type="bind", read_only=ro) for source, target, ro in key[0]]
        network = self.network_mode if request.network else "none"
        with self._calling(f"create a sandbox container from {self.image}"):
            host_config = api.create_host_config(mounts=binds, network_mode=network, init=True)
            created = api.create_container(
                self.image,
                entrypoint=KEEPALIVE,
                command=[],
                user="0:0",
                working_dir="/",
                labels={LABEL: "true"},
                host_config=host_config,
            )
            self._container, self._key = str(created["Id"]), key
            api.start(self._container)
        return self._container

    def _remove(self) -> None:
        container, self._container, self._key = self._container, None, None
        if container is not None:
            with contextlib.suppress(Exception):
                self._api().remove_container(container, force=True)

    # -- the Sandbox protocol ----------------------------------------------------------------------------

    def run(self, request: RunRequest) -> RunResult:
        """Exec the request in the build's container; stream its output; kill it on timeout."""
        validate_request(request)
        if "=" in request.argv[0]:
            raise UsageError(f"sandbox: the command {request.argv[0]!r} must not contain '='")
        container = self._ensure_container(request)
        api = self._api()
        user = f"{request.uid}:{request.gid}"
        env = {**request.env, "PWD": request.cwd}
        command = ["env", "-i", *(f"{name}={value}" for name, value in env.items()), *request.argv]
        out = Capture(request.stdout, request.output_limit)
        err = Capture(request.stderr, request.output_limit)
        started = time.monotonic()
        with self._calling(f"run {request.argv[0]}"):
            exec_id = api.exec_create(container, command, stdout=True, stderr=True, user=user, workdir=request.cwd)
            stream = api.exec_start(exec_id["Id"], stream=True, demux=True)
        timeout = _Timeout(api, container, user, stream, request.timeout)
        try:
            for chunk_out, chunk_err in stream:
                out.feed(chunk_out or b"")
                err.feed(chunk_err or b"")
        except Exception as exc:
            if not timeout.closed:
                raise DaemonError(f"sandbox: lost the output of {request.argv[0]}: {exc}") from exc
        finally:
            timeout.cancel()
            with contextlib.suppress(Exception):
                stream.close()
        exit_code = self._exit_code(exec_id["Id"], request.argv[0])
        if exit_code == 126 and out.data.startswith(_RUNTIME_FAILED):
            reason = bytes(out.data).decode(errors="replace").strip().splitlines()[0]
            raise CnbError(f"sandbox: the container runtime could not run {request.argv[0]}: {reason}")
        return RunResult(
            exit_code=137 if exit_code is None else exit_code,
            timed_out=timeout.fired,
            stdout=bytes(out.data),
            stderr=bytes(err.data),
            truncated=out.truncated or err.truncated,
            duration=time.monotonic() - started,
        )

    def _exit_code(self, exec_id: str, what: str) -> int | None:
        api = self._api()
        deadline = time.monotonic() + _EXIT_WAIT
        with self._calling(f"read the exit code of {what}"):
            while True:
                state = api.exec_inspect(exec_id)
                if not state.get("Running") and state.get("ExitCode") is not None:
                    return int(state["ExitCode"])
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.02)

    def close(self) -> None:
        """Remove the build's container and close the connection if this sandbox opened it."""
        self._remove()
        if self._owns_client and self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None


class _Timeout:
    """On expiry: kill every process of the step's user, then close the output stream if it is still open."""

    def __init__(self, api: Any, container: str, user: str, stream: Any, seconds: float | None) -> None:
        self.api, self.container, self.user, self.stream = api, container, user, stream
        self.fired = False
        self.closed = False
        self._timers: list[threading.Timer] = []
        self._lock = threading.Lock()
        self._done = False
        if seconds is not None:
            self._start(seconds, self._kill)

    def _start(self, seconds: float, action: Any) -> None:
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _kill(self) -> None:
        with self._lock:
            if self._done:
                return
            self.fired = True
            self._start(_CLOSE_AFTER, self._close)
        with contextlib.suppress(Exception):
            killer = self.api.exec_create(self.container, _KILL, stdout=True, stderr=True, user=self.user)
            self.api.exec_start(killer["Id"])

    def _close(self) -> None:
        with self._lock:
            if self._done:
                return
            self.closed = True
        with contextlib.suppress(Exception):
            self.stream.close()

    def cancel(self) -> None:
        with self._lock:
            self._done = True
        for timer in self._timers:
            timer.cancel()
