"""Run a buildpack executable inside the unpacked build image with bubblewrap (docs/design.md section 3, decision 1).

The sandbox sees the build image's root read-only, a private ``/proc`` (own PID namespace), a minimal
``/dev``, a fresh tmpfs ``/tmp`` and the request's bind mounts (``/layers``, ``/workspace``, ``/platform``,
``/cnb/buildpacks``: docs/spec-notes.md section 1.1). Nothing else of the host is visible: all namespaces are unshared
(the network too unless the request allows it), every capability is dropped, the environment is cleared
and set to exactly the request's (docs/spec-notes.md section 3.9; bwrap adds ``PWD``), and the process runs as the
request's ``CNB_USER_ID:CNB_GROUP_ID`` in its own session. Setting up the sandbox (a mount that cannot be
made, a missing executable) raises CnbError instead of passing for the buildpack's own exit code.

When the image has every mount point the run needs (``/proc``, ``/dev``, ``/tmp`` and each mount target),
its root is bind-mounted read-only at ``/`` and the mounts go over it. Otherwise mount targets need not exist
in the image: a directory of the image that must hold a missing mount point is *rebuilt*, i.e. replaced by a
tmpfs on which each of its entries is bind-mounted read-only (recursively where a missing mount point lies
deeper), and which is remounted read-only at the end; bwrap creates the missing mount points on the tmpfs.
When a top-level mount point is missing, the rebuilt directory is the root itself (a tmpfs root). Each bind
costs a little (about 0.15 ms), so a direct root saves a few milliseconds per run.

The network (when the request has one) is the sandbox's *network*: ``private`` (the default) is a network namespace
of the build's own that reaches the outside world but not this machine's loopback
(:mod:`cnbplatform.sandbox.network`: pasta, one namespace for every run of this sandbox, joined with ``nsenter``
before bwrap starts); ``host`` shares this machine's network namespace (``--share-net``), its ``127.0.0.1`` included.

With the network, the host's ``/etc/resolv.conf`` is bound read-only over the image's, as Docker does, so
that names resolve. (In the private network a loopback nameserver of the host, such as systemd-resolved's, is
replaced by the address where pasta forwards DNS queries to it; see ``forwarded_resolv_conf``.) The unpacked
images cnb makes (:func:`cnbplatform.oci.rootfs.cache.rootfs_for`) have such a file, an empty mount point where
the image had none. Without one, ``/etc`` is rebuilt entry by entry to hold the mount point (about 40 ms more per
run for a Debian ``/etc``).

Ownership: the user namespace maps only the request's uid (and gid) to the user who runs bwrap. Files the
buildpack writes into a read-write mount therefore belong, on the host, to that user (root when cnb runs
as root), not to ``CNB_USER_ID``; the exporter normalises layer ownership anyway (docs/design.md decision 4).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path

from cnbplatform.errors import CnbError, NotFoundError, SandboxUnavailableError, UsageError
from cnbplatform.sandbox.network import DEFAULT_NETWORK, PrivateNetwork, forwarded_resolv_conf
from cnbplatform.sandbox.protocol import (
    Mount,
    RunRequest,
    RunResult,
    children_of,
    mounts_by_depth,
    run_process,
    validate_request,
)

_PROVIDED = frozenset({"/proc", "/dev", "/tmp"})  # the sandbox makes its own; the image's are not used
RESOLV_CONF = "/etc/resolv.conf"
HOST_RESOLV_CONF = Path(RESOLV_CONF)
_BWRAP_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin"}  # bwrap itself; the sandbox gets --clearenv


def find_bwrap(bwrap: str | None = None) -> str:
    """The path of the bwrap executable (*bwrap* or the one on PATH)."""
    path = shutil.which(bwrap or "bwrap")
    if path is None:
        raise SandboxUnavailableError("bwrap not found: install bubblewrap or use --sandbox host")
    return path


@functools.cache
def check_bwrap(bwrap: str | None = None) -> str:
    """The path of a bwrap that can create a sandbox here; probed once per process (a sandbox runs the probe only
    after a run failed to start, to say why: checking up front would cost a bwrap start per command)."""
    path = find_bwrap(bwrap)
    probe = [path, "--unshare-all", "--unshare-user", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    try:
        done = subprocess.run([*probe, path, "--version"], capture_output=True, timeout=30, env=_BWRAP_ENV)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailableError(f"bwrap could not be started ({path}): {exc}") from exc
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise SandboxUnavailableError(
            f"bwrap cannot create a sandbox here: {reason[0]} "
            "(are unprivileged user namespaces disabled?); use --sandbox docker or --sandbox host"
        )
    return path


def private_network_for(
    host_ports: tuple[int, ...] = (), resolv_conf: Path | None = HOST_RESOLV_CONF
) -> PrivateNetwork:
    """The private network a ``BwrapSandbox(…, host_ports=host_ports)`` would make, for a caller that starts it
    early (:meth:`PrivateNetwork.start_soon`, before the build image is even unpacked) and then hands it to the
    sandbox as *private_network*."""
    text = _read_text(resolv_conf)
    forwarded = forwarded_resolv_conf(text) if text is not None else None
    return PrivateNetwork(host_ports=host_ports, dns_forward=forwarded is not None)


class BwrapSandbox:
    """A bubblewrap sandbox over an unpacked build image at *rootfs* (never written to).

    *network* is what a request with the network gets: ``private`` (own namespace, the outside world but not the
    host's loopback, except the *host_ports* forwarded to it) or ``host``; a request without it has loopback only.
    """

    def __init__(
        self,
        rootfs: Path,
        *,
        bwrap: str | None = None,
        resolv_conf: Path | None = HOST_RESOLV_CONF,
        network: str = DEFAULT_NETWORK,
        host_ports: tuple[int, ...] = (),
        private_network: PrivateNetwork | None = None,
    ) -> None:
        self.rootfs = Path(rootfs).resolve()
        if not self.rootfs.is_dir():
            raise NotFoundError(f"sandbox: build image root {self.rootfs} is not a directory")
        if network not in ("private", "host"):
            raise UsageError(f"sandbox: network {network!r}: expected private or host (none is a request without it)")
        self.bwrap = find_bwrap(bwrap)
        self.resolv_conf = resolv_conf
        self.network = network
        self._private: PrivateNetwork | None = None
        self._resolv_conf: Path | None = None  # the private network's resolver configuration, when not the host's
        self._cleanup: weakref.finalize[..., BwrapSandbox] | None = None
        if network == "private":
            text = _read_text(resolv_conf)
            forwarded = forwarded_resolv_conf(text) if text is not None else None
            if forwarded is not None:
                handle, name = tempfile.mkstemp(prefix="cnb-resolv-", suffix=".conf")
                with os.fdopen(handle, "w") as out:
                    out.write(forwarded)
                self._resolv_conf = Path(name)
                self._cleanup = weakref.finalize(self, _unlink, self._resolv_conf)
            self._private = PrivateNetwork(host_ports=host_ports, dns_forward=forwarded is not None)
            if private_network is not None:  # started early by the caller (private_network_for): this one's
                if (private_network.host_ports, private_network.dns_forward) == (
                    self._private.host_ports,
                    self._private.dns_forward,
                ):
                    self._private = private_network
                else:  # the host's resolver configuration changed in between: not the network this one needs
                    private_network.close()
        elif private_network is not None:
            private_network.close()

    def run(self, request: RunRequest) -> RunResult:
        """Run the request in a fresh sandbox; raise CnbError when bwrap cannot set it up."""
        validate_request(request)
        status_read, status_write = os.pipe()
        with open(status_read, "rb", buffering=0) as status:
            try:
                argv = self.command(request, status_fd=status_write)
                if request.network and self._private is not None:
                    argv = [*self._private.enter(), *argv]
                result = run_process(
                    argv, env=_BWRAP_ENV, cwd="/", request=request, pass_fds=(status_write,), terminate=_terminate
                )
            finally:
                os.close(status_write)
            ran = _child_ran(status.fileno())
        if not ran and not result.timed_out:
            check_bwrap(self.bwrap)  # when no sandbox can be made here at all, this says why
            reason = _bwrap_reason(result.stderr) or f"exit {result.exit_code}"
            raise CnbError(f"sandbox: bwrap could not run {request.argv[0]}: {reason}")
        return result

    def begin_close(self) -> None:
        """Start ending the build's private network without waiting (:meth:`PrivateNetwork.begin_close`): for a
        caller whose next steps run nothing here. A later run starts a new one; :meth:`close` waits for the end."""
        if self._private is not None:
            self._private.begin_close()

    def close(self) -> None:
        """End the build's private network, if one was started (every run has its own other namespaces)."""
        if self._private is not None:
            self._private.close()
        if self._cleanup is not None:
            self._cleanup()

    def command(self, request: RunRequest, *, status_fd: int | None = None) -> list[str]:
        """The bwrap command line for *request* (exposed for tests and ``--verbose`` output)."""
        args = [self.bwrap]
        if status_fd is not None:
            args += ["--json-status-fd", str(status_fd)]
        args += ["--unshare-all", "--unshare-user"]
        if request.network:
            args.append("--share-net")
        args += ["--uid", str(request.uid), "--gid", str(request.gid), "--cap-drop", "ALL"]
        args += ["--die-with-parent", "--new-session"]
        mounts = mounts_by_depth([*request.mounts, *self._dns(request)])
        targets = {m.target: os.path.isdir(m.source) for m in mounts}
        if _must_rebuild(self.rootfs, "/", _top_level({**targets, **dict.fromkeys(_PROVIDED, True)})):
            args += _rebuild(self.rootfs, "/", targets)
            remount = ["/"]
        else:
            root, remount = _direct_root(self.rootfs, targets)
            args += root
        args += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
        for mount in mounts:
            args += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target]
        for path in remount:
            args += ["--remount-ro", path]
        args += ["--clearenv"]
        for name, value in request.env.items():
            args += ["--setenv", name, value]
        args += ["--chdir", request.cwd, "--", *request.argv]
        return args

    def _dns(self, request: RunRequest) -> list[Mount]:
        """The host's resolver configuration, read-only, when the request has the network (as Docker does)."""
        if not request.network or self.resolv_conf is None or not self.resolv_conf.is_file():
            return []
        if any(m.target == RESOLV_CONF for m in request.mounts):
            return []
        if self._resolv_conf is not None and self._resolv_conf.is_file():
            return [Mount(self._resolv_conf, RESOLV_CONF, read_only=True)]
        return [Mount(self.resolv_conf.resolve(), RESOLV_CONF, read_only=True)]


def _read_text(path: Path | None) -> str | None:
    try:
        return path.read_text(errors="replace") if path is not None else None
    except OSError:
        return None


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _terminate(pid: int) -> None:
    """SIGTERM to the sandboxed command, as ``docker stop`` sends it to a container's main process.

    *pid* is the outer bwrap; its child is bwrap's init in the new PID namespace (which a signal from outside
    does not reach unless it has a handler), and the init's child is the command. Signalling bwrap itself would
    end the sandbox at once: the command would get the SIGKILL of ``--die-with-parent``.
    """
    for child in children_of(set(children_of({pid}))):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGTERM)


def _below(path: str, target: str) -> str | None:
    """*target* relative to *path* when it lies strictly below it, else None."""
    prefix = path.rstrip("/") + "/"
    return target[len(prefix) :] if target.startswith(prefix) else None


def _must_rebuild(host_dir: Path, path: str, targets: Mapping[str, bool]) -> bool:
    """Whether some target below *path* lacks its mount point in the image there: an entry on the way is missing,
    a symlink or not a directory, or the last one is of the other kind (*targets* maps each target to whether its
    mount point must be a directory)."""
    for target, wants_dir in targets.items():
        rel = _below(path, target)
        if rel is None:
            continue
        current = os.fspath(host_dir)
        parts = rel.split("/")
        for index, part in enumerate(parts):
            current = os.path.join(current, part)
            try:
                mode = os.lstat(current).st_mode
            except OSError:
                return True
            dir_needed = wants_dir or index < len(parts) - 1
            if stat.S_ISLNK(mode) or stat.S_ISDIR(mode) != dir_needed:
                return True
    return False


def _top_level(targets: Mapping[str, bool]) -> dict[str, bool]:
    """The top-level mount points *targets* need: ``/a`` for ``/a/b`` (a directory), or the target itself."""
    top: dict[str, bool] = {}
    for target, wants_dir in targets.items():
        first = "/" + target.split("/")[1]
        top[first] = top.get(first, False) or wants_dir or first != target
    return top


def _direct_root(rootfs: Path, targets: Mapping[str, bool]) -> tuple[list[str], list[str]]:
    """bwrap arguments binding *rootfs* read-only at ``/`` (it has every top-level mount point), each top-level
    directory that lacks a deeper mount point rebuilt on a tmpfs of its own; and the directories to remount
    read-only once the mounts are made."""
    args = ["--ro-bind", str(rootfs), "/"]
    remount: list[str] = []
    for name in sorted({t.split("/")[1] for t in targets}):
        inside = f"/{name}"
        if inside in targets or inside in _PROVIDED or not _must_rebuild(rootfs / name, inside, targets):
            continue  # a mount itself, a fresh mount bwrap makes, or nothing missing below it
        args += ["--tmpfs", inside, *_rebuild(rootfs / name, inside, targets)[2:]]
        remount.append(inside)
    return args, remount


def _rebuild(host_dir: Path, path: str, targets: Mapping[str, bool]) -> list[str]:
    """bwrap arguments recreating *host_dir* at *path* read-only, leaving room for the mount targets."""
    args = [] if path == "/" else ["--dir", path]
    try:
        entries = sorted(os.scandir(host_dir), key=lambda e: e.name)
    except OSError as exc:
        raise CnbError(f"sandbox: cannot read build image directory {host_dir}: {exc.strerror}") from exc
    for entry in entries:
        inside = f"{path.rstrip('/')}/{entry.name}"
        if inside in targets or (path == "/" and inside in _PROVIDED):
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(entry.path), inside]
        elif entry.is_dir(follow_symlinks=False) and _must_rebuild(Path(entry.path), inside, targets):
            args += _rebuild(Path(entry.path), inside, targets)
        else:
            args += ["--ro-bind", entry.path, inside]
    return args


def _child_ran(status_fd: int) -> bool:
    """Whether bwrap reported the command's exit (``--json-status-fd``): false when set-up or exec failed."""
    os.set_blocking(status_fd, False)
    data = b""
    try:
        while chunk := os.read(status_fd, 65536):
            data += chunk
    except BlockingIOError:
        pass
    for line in data.decode(errors="replace").splitlines():
        try:
            if "exit-code" in json.loads(line):
                return True
        except ValueError:
            continue
    return False


def _bwrap_reason(stderr: bytes) -> str:
    lines = [line for line in stderr.decode(errors="replace").splitlines() if line.startswith(("bwrap:", "nsenter:"))]
    return lines[-1].removeprefix("bwrap:").strip() if lines else ""
