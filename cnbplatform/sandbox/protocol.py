"""The sandbox protocol: run one buildpack executable and report how it ended (docs/design.md section 3, decision 1).

A sandbox decides nothing about *what* runs. The caller (the detect and build phases) builds the argv, the
complete environment (already filtered per docs/spec-notes.md section 3.9, so registry credentials never enter it),
the working directory and the bind mounts at the paths docs/spec-notes.md section 1.1 names (``/layers``,
``/workspace``, ``/platform``, ``/cnb/buildpacks``); the sandbox runs it as ``CNB_USER_ID:CNB_GROUP_ID`` and
returns the exit code the caller interprets (docs/spec-notes.md sections 3.2 and 3.3: detect 0 = pass, 100 = fail).

This module also holds the process runner shared by the ``bwrap`` and ``host`` backends: both streams are
read concurrently with a selector in the calling thread (so callbacks run in the caller's thread), each
stream keeps at most ``output_limit`` bytes while the rest is still drained, and a timeout kills the whole
process group.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cnbplatform.errors import CnbError, NotFoundError, UsageError

OutputCallback = Callable[[bytes], None]

DEFAULT_OUTPUT_LIMIT = 8 * 1024 * 1024
READ_CHUNK = 64 * 1024
DRAIN_GRACE = 2.0  # seconds to keep reading after the process ended, for output still in flight
_POLL = 0.1  # seconds between checks of the process while its pipes stay open


@dataclass(frozen=True)
class Mount:
    """A host path made visible at *target* inside the sandbox (a bind mount; read-only if asked)."""

    source: Path
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class RunRequest:
    """One execution of a buildpack executable (``bin/detect`` or ``bin/build``; docs/spec-notes.md sections 3.2, 3.3).

    ``env`` is the complete environment: nothing of the caller's own environment is added. The one variable
    every backend sets is ``PWD``, to the working directory (bwrap always does, as a shell would). ``stdout`` and
    ``stderr`` receive every chunk as it is read (the whole output, also past ``output_limit``, which only
    bounds what the result keeps).
    """

    argv: Sequence[str]
    env: Mapping[str, str]
    cwd: str
    mounts: Sequence[Mount]
    uid: int
    gid: int
    network: bool = True
    timeout: float | None = None
    stdout: OutputCallback | None = None
    stderr: OutputCallback | None = None
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    stop_grace: float | None = None
    """Ctrl-C (KeyboardInterrupt) while the process runs: with a grace, the process gets SIGTERM and this many
    seconds to end, its output still streamed, before it is killed (a second Ctrl-C kills it at once); without
    one, it is killed at once and the KeyboardInterrupt propagates."""


@dataclass(frozen=True)
class RunResult:
    """How the executable ended: exit code (128 + N when killed by signal N), captured output, wall time."""

    exit_code: int
    timed_out: bool
    stdout: bytes
    stderr: bytes
    truncated: bool
    duration: float = 0.0


class Sandbox(Protocol):
    """Runs one executable of a buildpack in the build image's filesystem (docs/design.md section 3, decision 1)."""

    def run(self, request: RunRequest) -> RunResult: ...

    def close(self) -> None: ...


def validate_request(request: RunRequest) -> None:
    """Refuse a malformed request before anything starts: one clear line naming the bad field."""
    if not request.argv or not request.argv[0]:
        raise UsageError("sandbox: the command to run is empty")
    if any("\0" in arg for arg in request.argv):
        raise UsageError(f"sandbox: an argument of {request.argv[0]} contains a NUL byte")
    for name, value in request.env.items():
        if not name or "=" in name or "\0" in name or name.startswith("-"):
            raise UsageError(f"sandbox: invalid environment variable name {name!r}")
        if "\0" in value:
            raise UsageError(f"sandbox: environment variable {name} contains a NUL byte")
    check_sandbox_path(request.cwd, "working directory")
    if request.uid < 0 or request.gid < 0:
        raise UsageError(f"sandbox: invalid user {request.uid}:{request.gid}")
    if request.timeout is not None and request.timeout <= 0:
        raise UsageError(f"sandbox: timeout must be positive, not {request.timeout}")
    if request.output_limit < 0:
        raise UsageError(f"sandbox: output limit must not be negative, not {request.output_limit}")
    seen: set[str] = set()
    for mount in request.mounts:
        check_sandbox_path(mount.target, "mount target")
        if mount.target == "/":
            raise UsageError("sandbox: cannot mount over / (the build image is the root)")
        if mount.target in seen:
            raise UsageError(f"sandbox: two mounts at {mount.target}")
        seen.add(mount.target)
        if not os.path.exists(mount.source):
            raise NotFoundError(f"sandbox: mount source {mount.source} (for {mount.target}) does not exist")


def check_sandbox_path(path: str, what: str) -> None:
    """A path inside the sandbox must be absolute and normalised: no ``..``, ``.``, ``//`` or trailing ``/``."""
    if not path.startswith("/") or "\0" in path or (path != "/" and posixpath.normpath(path) != path):
        raise UsageError(f"sandbox: {what} {path!r} must be an absolute, normalised path")
    if ".." in path.split("/"):
        raise UsageError(f"sandbox: {what} {path!r} must not contain '..'")


def mounts_by_depth(mounts: Sequence[Mount]) -> list[Mount]:
    """Mounts ordered so that a parent target is mounted before the targets below it."""
    return sorted(mounts, key=lambda m: (m.target.count("/"), m.target))


class Capture:
    """Keeps the first *limit* bytes of a stream, passes every chunk to *callback*, counts what was dropped."""

    def __init__(self, callback: OutputCallback | None, limit: int) -> None:
        self.callback = callback
        self.limit = limit
        self.data = bytearray()
        self.truncated = False

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        room = self.limit - len(self.data)
        if room >= len(chunk):
            self.data += chunk
        else:
            if room > 0:
                self.data += chunk[:room]
            self.truncated = True
        if self.callback is not None:
            self.callback(chunk)


def signal_exit_code(returncode: int) -> int:
    """Shell convention: a process killed by signal N exits with 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _exited(pid: int) -> bool:
    """Whether *pid* has ended, without reaping it (so its process group id stays reserved)."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None


def children_of(parents: set[int]) -> list[int]:
    """The processes whose parent is one of *parents* (from ``/proc/<pid>/stat``)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                fields = handle.read().rpartition(b")")[2].split()
        except OSError:
            continue
        if len(fields) > 1 and int(fields[1]) in parents:
            found.append(int(entry))
    return found


def _kill_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _terminate_group(pgid: int) -> None:
    _kill_group(pgid, signal.SIGTERM)


def _await_exit(pid: int, deadline: float | None) -> bool:
    """Wait (without reaping) for *pid*, which closed its output; kill its group at *deadline*: whether it did."""
    delay = 0.001
    while not _exited(pid):
        if deadline is not None and time.monotonic() >= deadline:
            _kill_group(pid)
            return True
        time.sleep(delay)
        delay = min(delay * 2, _POLL)
    return False


def run_process(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    request: RunRequest,
    pass_fds: Sequence[int] = (),
    terminate: Callable[[int], None] | None = None,
) -> RunResult:
    """Run *argv* in its own session and process group with exactly *env*; stream, cap and time it.

    On timeout the whole process group gets SIGKILL. Once the process has ended, whatever is left in its
    process group is killed too, so no stray child keeps the pipes open or outlives the step. Callbacks run
    in this thread; if one raises, the process group is killed and the exception propagates. A Ctrl-C with
    ``request.stop_grace`` set calls *terminate(pid)* (default: SIGTERM to the process group) and waits.
    """
    started = time.monotonic()
    proc = _start(argv, env, cwd, pass_fds)
    assert proc.stdout is not None and proc.stderr is not None
    out = Capture(request.stdout, request.output_limit)
    err = Capture(request.stderr, request.output_limit)
    deadline = None if request.timeout is None else started + request.timeout
    try:
        timed_out, deadline = _pump(proc, out, err, deadline, request, terminate)
        timed_out = _await_exit(proc.pid, deadline) or timed_out
    finally:
        _kill_group(proc.pid)  # stragglers; the leader is not reaped yet, so its group id cannot be reused
        proc.stdout.close()
        proc.stderr.close()
        proc.wait()
    return RunResult(
        exit_code=signal_exit_code(proc.returncode),
        timed_out=timed_out,
        stdout=bytes(out.data),
        stderr=bytes(err.data),
        truncated=out.truncated or err.truncated,
        duration=time.monotonic() - started,
    )


def _start(argv: Sequence[str], env: Mapping[str, str], cwd: str, pass_fds: Sequence[int]) -> subprocess.Popen[bytes]:
    """*argv* started in its own session and process group, stdin empty, stdout and stderr piped."""
    try:
        return subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    except OSError as exc:
        raise CnbError(f"sandbox: cannot start {argv[0]} in {cwd}: {exc.strerror or exc}") from exc


def _pump(
    proc: subprocess.Popen[bytes],
    out: Capture,
    err: Capture,
    deadline: float | None,
    request: RunRequest,
    terminate: Callable[[int], None] | None,
) -> tuple[bool, float | None]:
    """Feed the process's output to *out* and *err* until both pipes close (or, once the leader has exited,
    :data:`DRAIN_GRACE` has passed); kill the group at *deadline*; a Ctrl-C with ``request.stop_grace`` asks it
    to stop. Returns whether it timed out and the deadline left for its exit."""
    assert proc.stdout is not None and proc.stderr is not None
    timed_out = False
    stopping = False
    ended_at: float | None = None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ, out)
        selector.register(proc.stderr, selectors.EVENT_READ, err)
        while selector.get_map():
            try:
                now = time.monotonic()
                if ended_at is None and _exited(proc.pid):
                    ended_at = now
                    _kill_group(proc.pid)
                if ended_at is None and deadline is not None and now >= deadline:
                    _kill_group(proc.pid)
                    timed_out = True
                    deadline = None
                if ended_at is not None and now - ended_at > DRAIN_GRACE:
                    break
                wait = _POLL if deadline is None else max(0.0, min(_POLL, deadline - now))
                for key, _ in selector.select(wait):
                    chunk = os.read(key.fd, READ_CHUNK)
                    if chunk:
                        key.data.feed(chunk)
                    else:
                        selector.unregister(key.fileobj)
            except KeyboardInterrupt:
                if request.stop_grace is None or stopping or ended_at is not None:
                    raise
                stopping = True
                (terminate or _terminate_group)(proc.pid)
                stop_at = time.monotonic() + request.stop_grace
                deadline = stop_at if deadline is None else min(deadline, stop_at)
    return timed_out, deadline
