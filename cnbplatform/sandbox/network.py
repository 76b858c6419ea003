"""A build's own network: it reaches the outside world (package registries) but not this machine's loopback.

Buildpacks are untrusted code (docs/security.md). Sharing the host's network namespace (``--network host``) would
let them talk to every service on the host's ``127.0.0.1``: a database, a Docker API on TCP, a cloud metadata proxy.
Pack gives each build a bridge network of its own for the same reason. The default network here is that,
without root or a daemon:

* a *holder* process (``unshare --user --map-root-user --net``) owns a fresh user and network namespace for the
  whole build (one per sandbox, not one per executable: starting it costs about 50 ms, joining it about 2 ms);
* ``pasta`` (Debian package ``passt``) attaches to it (``--netns``/``--userns``), configures an interface with the
  host's addresses and routes, and carries the namespace's TCP, UDP and ICMP to the outside through ordinary
  sockets of its own, like a NAT router. It forwards no port in either direction (``-t none -u none -T none
  -U none``) and does not map the gateway address to the host (``--no-map-gw``, which pasta does by default), so
  ``127.0.0.1``, ``::1`` and the gateway inside the namespace lead nowhere on the host;
* each sandboxed run joins the namespace with ``nsenter --user --net`` before bwrap starts (bwrap then keeps that
  network: ``--share-net``, but every other namespace is its own as before).

One exception is explicit: a proxy that this machine's own environment (``HTTP_PROXY``, ``HTTPS_PROXY``,
``ALL_PROXY``, upper or lower case) names on a loopback address. Its port (only that port) is forwarded from the
namespace's loopback to the host's (``-T PORT``), so the same URL works inside, and buildpacks get the proxy
variables, as pack passes them to its build containers. Values that an app or a buildpack controls (project.toml,
platform env files) never open a port.

Cleanup does not depend on cnb ending well: the holder reads its standard input, a pipe only cnb holds; when it
closes (``close()``, or cnb dies, even by SIGKILL), the holder kills pasta (whose pid it was given) and exits,
and the namespace is gone with the last process in it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import select
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import IO
from urllib.parse import urlsplit

from cnbplatform.errors import CnbError, SandboxUnavailableError, UsageError

#: The build networks: ``private`` (the default: own namespace, outside world yes, host loopback no), ``host``
#: (this machine's network namespace, everything on its 127.0.0.1 included), ``none`` (loopback only).
NETWORKS: tuple[str, ...] = ("private", "host", "none")
DEFAULT_NETWORK = "private"

PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")
_DEFAULT_PORTS = {"http": 80, "https": 443, "socks": 1080, "socks4": 1080, "socks4a": 1080, "socks5": 1080,
                  "socks5h": 1080}  # fmt: skip
_TOOL_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
# The holder: says it is inside the new namespaces, learns pasta's pid, and kills pasta once its stdin ends.
_HOLDER = 'echo ready; read pid; read _; [ -n "$pid" ] && kill "$pid" 2>/dev/null; exit 0'
#: Where the sandbox's resolver configuration points when the host's names a loopback resolver (systemd-resolved's
#: 127.0.0.53, a local dnsmasq): pasta answers there by forwarding the query to the host's resolver
#: (``--dns-forward``), the one loopback service besides a proxy that the private network reaches, and only on DNS.
DNS_FORWARD_ADDRESS = "169.254.0.53"
START_TIMEOUT = 20.0  # seconds for the holder and pasta to be ready (both take well under 0.1 s)
_STOP_TIMEOUT = 5.0


def check_network(network: str, option: str = "--network") -> str:
    """*network* if it names a build network, else a one-line usage error."""
    if network not in NETWORKS:
        raise UsageError(f"{option} {network!r}: expected one of {', '.join(NETWORKS)}")
    return network


def proxy_env(env: Mapping[str, str]) -> dict[str, str]:
    """The proxy variables of *env* (this machine's), to hand to buildpacks as pack does."""
    return {name: env[name] for name in (*PROXY_VARIABLES, *NO_PROXY_VARIABLES) if env.get(name)}


def loopback_proxy_ports(env: Mapping[str, str]) -> tuple[int, ...]:
    """The ports of the proxies that *env*'s proxy variables name on a loopback address (127.0.0.0/8, ::1,
    ``localhost``), sorted; a value that is not a URL with a host is ignored (the tools ignore it too)."""
    ports: set[int] = set()
    for name in PROXY_VARIABLES:
        value = env.get(name, "").strip()
        if not value:
            continue
        parts = urlsplit(value if "://" in value else f"http://{value}")
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            continue
        if host is None or not _is_loopback(host):
            continue
        port = port or _DEFAULT_PORTS.get(parts.scheme.lower())
        if port:
            ports.add(port)
    return tuple(sorted(ports))


def forwarded_resolv_conf(host_text: str) -> str | None:
    """The resolver configuration for the private network when *host_text* (the host's ``/etc/resolv.conf``)
    names a loopback nameserver, which the namespace cannot reach: those lines become one naming
    :data:`DNS_FORWARD_ADDRESS`, the rest stays. None when no nameserver is on loopback (the file works as it is)."""
    lines = host_text.splitlines()
    loopback = [
        i for i, line in enumerate(lines) if _nameserver(line) is not None and _is_loopback(_nameserver(line) or "")
    ]
    if not loopback:
        return None
    kept = [line for i, line in enumerate(lines) if i not in loopback]
    first_server = next((i for i, line in enumerate(kept) if _nameserver(line) is not None), len(kept))
    kept.insert(min(first_server, loopback[0]), f"nameserver {DNS_FORWARD_ADDRESS}")
    return "\n".join(kept) + "\n"


def _nameserver(line: str) -> str | None:
    fields = line.split()
    return fields[1].split("%")[0] if len(fields) >= 2 and fields[0] == "nameserver" else None


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tool(name: str) -> str:
    path = shutil.which(name, path=_TOOL_ENV["PATH"])
    if path is None:
        package = "passt" if name == "pasta" else "util-linux"
        raise SandboxUnavailableError(
            f"the build network needs {name} (Debian package {package}); install it, or use --network host or none"
        )
    return path


class PrivateNetwork:
    """A network namespace of its own for one build, connected to the outside by pasta; started on first use."""

    def __init__(self, *, host_ports: Sequence[int] = (), dns_forward: bool = False, pasta: str | None = None) -> None:
        for port in host_ports:
            if not 0 < port < 65536:
                raise UsageError(f"build network: invalid port {port}")
        self.host_ports = tuple(sorted(set(host_ports)))
        self.dns_forward = dns_forward
        self._pasta_path = pasta
        self._holder: subprocess.Popen[bytes] | None = None
        self._pasta: subprocess.Popen[bytes] | None = None
        self._finalizer: weakref.finalize[..., PrivateNetwork] | None = None
        self._stopping = False
        # begun by start_soon, not yet ready: holder, pasta, the read end of pasta's pid file, the tools' log
        self._starting: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes], int, IO[bytes]] | None = None
        # the phases run buildpacks concurrently (detect): their first runs must start (or finish starting) one
        # network together, not each their own or one closing the pipe another waits on
        self._lock = threading.RLock()

    @property
    def started(self) -> bool:
        return self._holder is not None

    def enter(self) -> list[str]:
        """The command prefix that runs a command in this network (starting the network the first time, or again
        after :meth:`begin_close`). Safe to call from several threads at once."""
        with self._lock:
            if self._stopping:
                self.close()
            if self._holder is None:
                if self._starting is None:
                    self._begin_start()
                self._finish_start()
            holder = self._holder
        assert holder is not None
        nsenter = _tool("nsenter")
        return [nsenter, f"--target={holder.pid}", "--user", "--net", "--preserve-credentials", "--"]

    def start_soon(self) -> None:
        """Start the network without waiting until it is ready (pasta takes some 25 ms to configure it), for a
        caller with other work to do before the first run; the first :meth:`enter` waits for the rest. A network
        that cannot start here is left unstarted, and that first :meth:`enter` tries again and says why."""
        with self._lock:
            if self._holder is not None or self._starting is not None or self._stopping:
                return
            try:
                self._begin_start()
            except CnbError:
                self.close()

    def pasta_command(self, holder_pid: int, pid_file: str) -> list[str]:
        """pasta's command line for the namespaces of *holder_pid* (exposed for tests and documentation)."""
        tcp_ns = ",".join(str(p) for p in self.host_ports) or "none"
        args = [self._pasta_path or _tool("pasta")]
        if os.geteuid() == 0:
            args += ["--runas", "0:0"]  # as root pasta would switch to nobody, who cannot open the namespaces
        return [
            *args, "--foreground", "--quiet", "--config-net", "--pid", pid_file,
            "--tcp-ports", "none", "--udp-ports", "none", "--tcp-ns", tcp_ns, "--udp-ns", "none", "--no-map-gw",
            *(["--dns-forward", DNS_FORWARD_ADDRESS] if self.dns_forward else []),
            "--userns", f"/proc/{holder_pid}/ns/user", "--netns", f"/proc/{holder_pid}/ns/net",
        ]  # fmt: skip

    def _begin_start(self) -> None:
        """The holder and its namespaces, then pasta started on them (not yet waited for: :meth:`_finish_start`)."""
        unshare = _tool("unshare")
        log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open until _finish_start, closed on every path)
        holder: subprocess.Popen[bytes] | None = None
        pasta: subprocess.Popen[bytes] | None = None
        ready_read = ready_write = -1
        try:
            holder = _spawn(
                [unshare, "--user", "--map-root-user", "--net", "--", "/bin/sh", "-c", _HOLDER],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            )  # fmt: skip
            assert holder.stdout is not None and holder.stdin is not None
            if _read_line(holder.stdout.fileno(), START_TIMEOUT) != b"ready\n":
                raise SandboxUnavailableError(
                    "cannot create the build network namespace"
                    f"{_reason(log)} (are unprivileged user namespaces disabled?); use --network host or none"
                )
            holder.stdout.close()
            if _namespace(holder.pid, "net") == _namespace(os.getpid(), "net"):
                raise SandboxUnavailableError("the build network namespace is the host's: refusing to use it")
            ready_read, ready_write = os.pipe()
            pasta = _spawn(
                self.pasta_command(holder.pid, f"/dev/fd/{ready_write}"),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, pass_fds=(ready_write,),
            )  # fmt: skip
            os.close(ready_write)
        except BaseException:
            for fd in (ready_read, ready_write):
                if fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            if holder is not None:
                _stop(holder, pasta)
            log.close()
            raise
        self._starting = (holder, pasta, ready_read, log)
        self._finalizer = weakref.finalize(self, _abandon, holder, pasta, ready_read, log)

    def _finish_start(self) -> None:
        """Wait until pasta has connected the namespace begun by :meth:`_begin_start`, then hand the holder its pid."""
        assert self._starting is not None
        holder, pasta, ready_read, log = self._starting
        try:
            if not _read_line(ready_read, START_TIMEOUT).strip():
                raise SandboxUnavailableError(
                    f"pasta could not connect the build network{_reason(log)}; use --network host or none"
                )
            assert holder.stdin is not None
            holder.stdin.write(f"{pasta.pid}\n".encode())
            holder.stdin.flush()
        except BaseException:
            self.close()
            raise
        os.close(ready_read)
        log.close()
        if self._finalizer is not None:
            self._finalizer.detach()
        self._starting = None
        self._holder, self._pasta = holder, pasta
        self._finalizer = weakref.finalize(self, _stop, holder, pasta)

    def begin_close(self) -> None:
        """Start ending the network without waiting for it: pasta is killed and the holder told to exit. Taking
        down a network namespace costs the kernel tens of milliseconds, which the caller can spend on work that
        needs no network (export) before :meth:`close` reaps both. A later :meth:`enter` starts a new network."""
        with self._lock:
            if self._holder is not None and not self._stopping:
                _signal_stop(self._holder, self._pasta)
                self._stopping = True

    def close(self) -> None:
        """End the network: the holder kills pasta and exits; both are reaped. Idempotent."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
            self._holder = self._pasta = self._finalizer = self._starting = None
            self._stopping = False


def _spawn(argv: list[str], **kwargs: object) -> subprocess.Popen[bytes]:
    """Start a helper in its own session (a Ctrl-C for the build must not end the network under a stopping step)."""
    try:
        return subprocess.Popen(argv, env=_TOOL_ENV, cwd="/", start_new_session=True, **kwargs)  # type: ignore[call-overload, no-any-return]
    except OSError as exc:
        raise SandboxUnavailableError(f"cannot start {argv[0]} for the build network: {exc.strerror or exc}") from exc


def _read_line(fd: int, timeout: float) -> bytes:
    """Bytes from *fd* up to a newline, EOF or *timeout* seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 256)
        if not chunk:
            break
        data += chunk
    return data


def _namespace(pid: int, kind: str) -> tuple[int, int]:
    info = os.stat(f"/proc/{pid}/ns/{kind}")
    return info.st_dev, info.st_ino


def _reason(log: IO[bytes]) -> str:
    log.seek(0)
    lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
    return f": {lines[-1]}" if lines else ""


def _signal_stop(holder: subprocess.Popen[bytes], pasta: subprocess.Popen[bytes] | None) -> None:
    """Kill pasta (our unreaped child, so its pid cannot have been reused) and close the holder's stdin (the
    holder exits; it would kill pasta itself had cnb died). Waits for neither."""
    if pasta is not None:
        with contextlib.suppress(OSError):
            pasta.kill()
    if holder.stdin is not None:
        with contextlib.suppress(OSError):
            holder.stdin.close()


def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Reap *process*, raising TimeoutExpired after *timeout* seconds. ``Popen.wait(timeout)`` polls with growing
    sleeps (up to 50 ms past the exit); a pidfd wakes up as soon as the process has ended."""
    if process.returncode is None and hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(process.pid)
        except OSError:
            pass  # no pidfd here (old kernel, seccomp): the polling wait below still works
        else:
            try:
                if not select.select([pidfd], [], [], timeout)[0]:
                    raise subprocess.TimeoutExpired(process.args, timeout)
            finally:
                os.close(pidfd)
    process.wait(timeout=timeout)


def _abandon(holder: subprocess.Popen[bytes], pasta: subprocess.Popen[bytes], ready_read: int, log: IO[bytes]) -> None:
    """End a network that was begun but never finished (:meth:`PrivateNetwork.start_soon`): as :func:`_stop`, and
    close what the start kept open."""
    try:
        _stop(holder, pasta)
    finally:
        with contextlib.suppress(OSError):
            os.close(ready_read)
        log.close()


def _stop(holder: subprocess.Popen[bytes], pasta: subprocess.Popen[bytes] | None) -> None:
    """End pasta and the holder (:func:`_signal_stop`) and reap both."""
    _signal_stop(holder, pasta)
    for process in (holder, pasta):
        if process is None:
            continue
        try:
            _wait_exit(process, _STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                process.kill()
            process.wait()
    if holder.stdout is not None:
        holder.stdout.close()
