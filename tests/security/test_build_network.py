"""Threat: a buildpack talks to services on this machine's loopback (issue 9 item 7).

Buildpacks are untrusted code that needs the network (package registries). With the host's network namespace they
can also reach every service on the host's ``127.0.0.1``. The default build network (``private``) is a network
namespace of the build's own that pasta connects to the outside world, with no port forwarded and the gateway not
mapped to the host; ``--network host`` is the explicit way back.

How the tests reach a package index although the sandbox cannot reach the host's loopback (and tests may only
target 127.0.0.0/8, so the index cannot listen on another host address): the index here plays the part of this
machine's HTTP proxy. cnb runs with ``HTTP_PROXY=http://127.0.0.1:PORT`` in its own environment, so it forwards
exactly that port into the build's namespace (``pasta -T PORT``) and hands the proxy variables to buildpacks; pip
asks the proxy for ``http://pypi.test/simple/…``, a name that resolves nowhere, and the proxy answers from the
index. That is the way a build behind a loopback proxy reaches PyPI; every other loopback port stays closed.
"""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cnbplatform.errors import SandboxUnavailableError
from cnbplatform.sandbox import BwrapSandbox, PrivateNetwork, RunRequest, loopback_proxy_ports
from cnbplatform.sandbox.bwrap import private_network_for
from cnbplatform.sandbox.network import DNS_FORWARD_ADDRESS, forwarded_resolv_conf
from cnbplatform.sandbox.protocol import children_of
from tests.buildpacks.helpers import lifecycle_metadata, make_project
from tests.buildpacks.packages import PyIndex, make_wheel
from tests.conftest import Cnb
from tests.security.helpers import copy_of_home
from tests.support.bookworm import language_images
from tests.support.builders import BUILDER, REPO
from tests.support.wheels import uv_wheel

pytestmark = pytest.mark.integration


class Probe:
    """An HTTP service on the host's 127.0.0.1 that counts the connections it accepted."""

    def __init__(self) -> None:
        self.hits = 0
        probe = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                probe.hits += 1
                body = b"secret of the host\n"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def probe() -> Iterator[Probe]:
    service = Probe()
    yield service
    service.close()


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny unpacked build image: the host's static busybox with sh and wget."""
    root = tmp_path_factory.mktemp("rootfs")
    (root / "bin").mkdir()
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "wget", "cat", "nslookup"):
        os.symlink("/bin/busybox", root / "bin" / applet)
    for name in ("etc", "tmp", "proc", "dev"):
        (root / name).mkdir()
    (root / "etc" / "resolv.conf").touch()
    return root


def pasta_processes() -> set[int]:
    """This test process's pasta children (other sessions on the machine may run builds of their own)."""
    found = set()
    for pid in children_of({os.getpid()}):
        try:
            if Path(f"/proc/{pid}/comm").read_text().startswith(("pasta", "passt")):  # passt.avx2 too
                found.add(pid)
        except OSError:
            continue
    return found


#: Runs a command as a child subreaper: whatever the command leaves running is reparented here, listed on the last
#: line of stdout (comm names) and then killed, so a test sees exactly the processes one cnb command left running.
SUBREAPER = """
import ctypes, os, signal, subprocess, sys, time
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
def descendants(root):
    parents, found = {root}, True
    while found:
        found = False
        for entry in os.listdir("/proc"):
            try:
                if entry.isdigit() and int(entry) not in parents:
                    if int(open(f"/proc/{entry}/stat").read().rpartition(")")[2].split()[1]) in parents:
                        parents.add(int(entry))
                        found = True
            except (OSError, IndexError):
                continue
    return parents - {root}
child = subprocess.Popen(sys.argv[1:])
if os.environ.get("KILL_WHEN_RUNNING"):  # SIGKILL the command once a descendant of that name runs
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        names = set()
        for pid in descendants(child.pid):
            try:
                names.add(open(f"/proc/{pid}/comm").read().strip())
            except OSError:
                pass
        if os.environ["KILL_WHEN_RUNNING"] in names:
            print("killing the command; running:", ",".join(sorted(names)))
            child.kill()
            break
        time.sleep(0.05)
child.wait()
done = child
def orphans():
    found = []
    for entry in os.listdir("/proc"):
        try:
            fields = open(f"/proc/{entry}/stat").read().rpartition(")")[2].split()
            if entry.isdigit() and int(fields[1]) == os.getpid() and fields[0] != "Z":  # zombies: ended, unreaped
                found.append((int(entry), open(f"/proc/{entry}/comm").read().strip()))
        except (OSError, IndexError):
            continue
    return found
# What dies with its parent (bwrap --die-with-parent, pasta) takes a moment, longer on a busy machine: wait up to
# 30 s for it to go; whatever is still here then was left running.
deadline = time.monotonic() + 30
left = orphans()
while left and time.monotonic() < deadline:
    time.sleep(0.1)
    left = orphans()
for pid, _ in left:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
print("left behind:", ",".join(sorted(name for _, name in left)))
sys.exit(done.returncode)
"""


def fetch(port: int, host: str = "127.0.0.1") -> RunRequest:
    url = f"http://{host}:{port}/"
    return RunRequest(["/bin/wget", "-q", "-O", "-", url], {"PATH": "/bin"}, "/", [], 1000, 1000, timeout=30)


def test_the_private_network_reaches_no_loopback_service_of_the_host(rootfs: Path, probe: Probe) -> None:
    """The same request, the same host service: refused under the default network, answered under ``host``; and the
    namespace and its pasta are gone once the sandbox is closed."""
    before = pasta_processes()
    private = BwrapSandbox(rootfs)
    try:
        refused = private.run(fetch(probe.port))
        v6 = private.run(fetch(probe.port, "[::1]"))
        assert len(pasta_processes() - before) == 1  # one network for every run of the sandbox
    finally:
        private.close()
    assert pasta_processes() - before == set()
    assert (refused.exit_code != 0, refused.stdout, v6.exit_code != 0, probe.hits) == (True, b"", True, 0)

    host = BwrapSandbox(rootfs, network="host")
    reached = host.run(fetch(probe.port))
    host.close()
    assert (reached.exit_code, reached.stdout, probe.hits) == (0, b"secret of the host\n", 1)


def test_begin_close_lets_the_network_go_down_early_and_a_later_run_gets_a_new_one(rootfs: Path, probe: Probe) -> None:
    """``begin_close`` (export is next: no more runs) does not wait; a run after it still gets a private network
    (a new one), and ``close`` leaves no pasta behind."""
    before = pasta_processes()
    box = BwrapSandbox(rootfs)
    try:
        box.run(fetch(probe.port))
        first = pasta_processes() - before
        box.begin_close()
        box.begin_close()  # idempotent
        again = box.run(fetch(probe.port))
        second = pasta_processes() - before
    finally:
        box.close()
    assert pasta_processes() - before == set()
    assert (len(first), len(second), first & second) == (1, 1, set())
    assert (again.exit_code != 0, probe.hits) == (True, 0)  # still the private network: no host loopback


def test_a_network_started_early_is_the_sandboxs_and_ends_with_it(rootfs: Path, probe: Probe) -> None:
    """``cnb build`` starts the private network while analyze works (``start_soon``) and hands it to the sandbox:
    the sandbox's runs use that one network (host loopback still closed), and closing ends it; a network started
    early and never used ends without a run, and leaves no pasta either."""
    before = pasta_processes()
    early = private_network_for()
    early.start_soon()
    assert len(pasta_processes() - before) == 1
    box = BwrapSandbox(rootfs, private_network=early)
    try:
        refused = box.run(fetch(probe.port))
        assert len(pasta_processes() - before) == 1
    finally:
        box.close()
    assert pasta_processes() - before == set()
    assert (refused.exit_code != 0, probe.hits) == (True, 0)

    unused = private_network_for()
    unused.start_soon()
    unused.close()
    assert pasta_processes() - before == set()


@pytest.mark.parametrize("early", [True, False], ids=["started-early", "started-by-the-first-runs"])
def test_runs_started_together_share_one_network(rootfs: Path, probe: Probe, early: bool) -> None:
    """detect runs the group's buildpacks at once: their first runs, in threads, start (or finish starting) one
    network together; none fails on another's half-started network, and all of them are in that one network."""
    before = pasta_processes()
    network = private_network_for()
    if early:
        network.start_soon()
    box = BwrapSandbox(rootfs, private_network=network)
    results: list[Any] = [None] * 4
    try:

        def run(index: int) -> None:
            try:
                results[index] = box.run(fetch(probe.port))
            except Exception as exc:  # the assertion below shows it
                results[index] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(results))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(pasta_processes() - before) == 1
    finally:
        box.close()
    assert [type(r).__name__ for r in results] == ["RunResult"] * len(results), results
    assert [r.exit_code != 0 for r in results] == [True] * len(results)
    assert probe.hits == 0
    assert pasta_processes() - before == set()


def test_only_a_loopback_proxys_port_is_forwarded(rootfs: Path, probe: Probe) -> None:
    """A proxy this machine's environment names on 127.0.0.1 stays reachable by its port; another host port does
    not. (The ports come from cnb's environment only: app and buildpack settings never open one.)"""
    other = Probe()
    try:
        env = {"HTTPS_PROXY": f"http://127.0.0.1:{probe.port}", "https_proxy": f"localhost:{probe.port}"}
        assert loopback_proxy_ports(env) == (probe.port,)
        remote = {"HTTP_PROXY": "http://proxy.example:3128", "ALL_PROXY": "socks5://[::1]"}
        assert loopback_proxy_ports(remote) == (1080,)
        sandbox = BwrapSandbox(rootfs, host_ports=loopback_proxy_ports(env))
        try:
            proxy, closed = sandbox.run(fetch(probe.port)), sandbox.run(fetch(other.port))
        finally:
            sandbox.close()
        assert (proxy.exit_code, proxy.stdout, probe.hits) == (0, b"secret of the host\n", 1)
        assert (closed.exit_code != 0, other.hits) == (True, 0)
    finally:
        other.close()


def test_a_network_that_cannot_start_is_one_clear_error(rootfs: Path, tmp_path: Path) -> None:
    failing = tmp_path / "pasta"
    failing.write_text("#!/bin/sh\necho 'pasta: no tap device here' >&2\nexit 1\n")
    failing.chmod(0o755)
    network = PrivateNetwork(pasta=str(failing))
    with pytest.raises(SandboxUnavailableError) as raised:
        network.enter()
    network.close()
    assert str(raised.value) == (
        "pasta could not connect the build network: pasta: no tap device here; use --network host or none"
    )


class FakeResolver:
    """A DNS server on the host's loopback (as systemd-resolved's 127.0.0.53) answering every A query with
    192.0.2.99, counting the queries."""

    ADDRESS = "127.0.0.153"

    def __init__(self) -> None:
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.ADDRESS, 53))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(512)
            except OSError:
                return
            self.queries += 1
            question = data[12 : data.index(b"\0", 12) + 5]
            answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([192, 0, 2, 99])
            flags = b"\x81\x80" if question[-4:-2] == b"\x00\x01" else b"\x81\x84"
            counts = b"\x00\x01\x00\x01\x00\x00\x00\x00" if flags == b"\x81\x80" else b"\x00\x01" + bytes(6)
            body = answer if flags == b"\x81\x80" else b""
            self.sock.sendto(data[:2] + flags + counts + question + body, peer)


def test_a_loopback_resolver_of_the_host_is_reached_through_pastas_dns_forwarder(rootfs: Path, tmp_path: Path) -> None:
    """Where /etc/resolv.conf names a loopback resolver (systemd-resolved), the private network still resolves
    names: the sandbox's resolv.conf names pasta's forwarder, which asks the host's resolver. The host file is
    replaced in a mount namespace of the test's own, for the sandbox and pasta alike."""
    assert forwarded_resolv_conf("search lan\nnameserver 127.0.0.53\noptions edns0\n") == (
        f"search lan\nnameserver {DNS_FORWARD_ADDRESS}\noptions edns0\n"
    )
    assert forwarded_resolv_conf("nameserver 10.0.0.1\n") is None
    resolver = FakeResolver()
    fake = tmp_path / "resolv.conf"
    fake.write_text(f"nameserver {FakeResolver.ADDRESS}\n")
    script = (
        "import sys; from pathlib import Path; from cnbplatform.sandbox import BwrapSandbox, RunRequest\n"
        "box = BwrapSandbox(Path(sys.argv[1]))\n"
        "run = lambda *argv: box.run(RunRequest(list(argv), {'PATH': '/bin'}, '/', [], 1000, 1000, timeout=30))\n"
        "conf, found = run('/bin/cat', '/etc/resolv.conf'), run('/bin/nslookup', 'pypi.test')\n"
        "box.close()\n"
        "print(conf.stdout.decode() + found.stdout.decode() + found.stderr.decode())\n"
    )
    shell = 'mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--", "sh", "-c", shell, "sh", str(fake), sys.executable, "-c", script, str(rootfs)],
            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        resolver.sock.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"nameserver {DNS_FORWARD_ADDRESS}\n"), done.stdout
    assert "Address: 192.0.2.99" in done.stdout, done.stdout
    assert resolver.queries >= 1


# -- through cnb build ---------------------------------------------------------------------------------------------

PROBE_BUILDPACK = {
    "buildpack.toml": 'api = "0.10"\n[buildpack]\nid = "test/probe"\nversion = "1.0.0"\n[[stacks]]\nid = "*"\n',
    "bin/detect": "#!/bin/sh\nexit 0\n",
    "bin/build": (
        "#!/bin/sh\n"
        "port=$(cat /workspace/port.txt)\n"
        'if wget -q -O - "http://127.0.0.1:$port/" >/dev/null 2>&1; then echo "probe: reached the host";'
        ' else echo "probe: no host service"; fi\n'
        "if [ -f /workspace/hang ]; then sleep 300; fi\n"
    ),
}


@pytest.fixture(scope="module")
def tiny_home(tiny_builder_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's CNB_HOME with the tiny builder, for this module's builds."""
    return copy_of_home(tiny_builder_home, tmp_path_factory, "network-home")


def build_probe(
    home: Path, tmp_path: Path, port: int, *network: str, kill_when_running: str = ""
) -> subprocess.CompletedProcess[str]:
    buildpack = tmp_path / "probe-bp"
    for rel, text in PROBE_BUILDPACK.items():
        (buildpack / rel).parent.mkdir(parents=True, exist_ok=True)
        (buildpack / rel).write_text(text)
        if rel.startswith("bin/"):
            (buildpack / rel).chmod(0o755)
    app = tmp_path / "app"
    app.mkdir()
    (app / "port.txt").write_text(f"{port}\n")
    if kill_when_running:
        (app / "hang").touch()
    env = {"CNB_HOME": str(home), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO),
           "KILL_WHEN_RUNNING": kill_when_running}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-c", SUBREAPER, sys.executable, "-m", "cnbplatform", "build", f"probe-{tmp_path.name}",
         "--builder", BUILDER, "--path", str(app), "--buildpack", str(buildpack), *network],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_cnb_build_keeps_buildpacks_off_the_hosts_loopback(tiny_home: Path, tmp_path: Path, probe: Probe) -> None:
    default = build_probe(tiny_home, tmp_path / "default", probe.port)
    assert default.returncode == 0, default.stderr
    assert "probe: no host service" in default.stdout + default.stderr
    assert probe.hits == 0
    assert default.stdout.splitlines()[-1] == "left behind: "  # no pasta, holder or sandbox outlives the build

    host = build_probe(tiny_home, tmp_path / "host", probe.port, "--network", "host")
    assert host.returncode == 0, host.stderr
    assert "probe: reached the host" in host.stdout + host.stderr
    assert probe.hits == 1


def test_a_build_killed_with_sigkill_leaves_no_network_running(tiny_home: Path, tmp_path: Path) -> None:
    """cnb itself SIGKILLed while a buildpack runs in the private network: bwrap dies with its parent, the holder
    sees its stdin end and kills pasta; a second later nothing of the build is running."""
    done = build_probe(tiny_home, tmp_path, 1, kill_when_running="sleep")
    lines = done.stdout.splitlines()
    killing = [line for line in lines if line.startswith("killing the command; running:")]
    assert killing, done.stdout + done.stderr
    assert "passt.avx2" in killing[0] or "passt" in killing[0] or "pasta" in killing[0], killing[0]
    assert done.returncode == -9 % 256  # the wrapper exits with the killed command's -9
    assert lines[-1] == "left behind: "


def test_an_unknown_network_is_refused(tiny_home: Path, tmp_path: Path) -> None:
    done = build_probe(tiny_home, tmp_path, 1, "--network", "bridge")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == "error: --network 'bridge': expected one of private, host, none"


# -- the python example behind a loopback proxy ----------------------------------------------------------------------


class ProxiedIndex(PyIndex):
    """The tests' PyPI index, answering as an HTTP proxy for ``http://pypi.test/…`` (absolute-form requests)."""

    def respond(self, path: str) -> tuple[int, str, bytes] | None:
        prefix = "http://pypi.test"
        if not path.startswith(prefix + "/"):
            return (502, "text/plain", b"this proxy only knows pypi.test\n")
        local = (self.root / path[len(prefix) + 1 :].split("#")[0]).resolve()
        if local.is_dir():
            local = local / "index.html"
        if not local.is_file() or self.root.resolve() not in local.parents:
            return (404, "text/plain", b"not found\n")
        kind = "text/html" if local.suffix == ".html" else "application/octet-stream"
        return (200, kind, local.read_bytes())


APP = "import alpha\nprint(alpha.greet())\n"


def test_the_python_buildpack_installs_through_a_loopback_proxy_under_the_default_network(
    tmp_path: Path, probe: Probe
) -> None:
    images = language_images()
    index = ProxiedIndex(tmp_path / "index")
    index.add(make_wheel(tmp_path / "wheels", "alpha", "1.0", code="def greet():\n    return 'hello from alpha'\n"))
    index.add(uv_wheel())  # the buildpack fetches uv with pip from the index too
    index.start()
    try:
        project = make_project(
            tmp_path / "project", ["python", "procfile"],
            {"app.py": APP, "requirements.txt": "alpha==1.0\n"},
            env={"PIP_INDEX_URL": "http://pypi.test/simple/", "PIP_TRUSTED_HOST": "pypi.test"},
        )  # fmt: skip
        home = tmp_path / "home"
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CNB_", "DOCKER_")) and "proxy" not in k.lower()
        }
        proxy = f"http://127.0.0.1:{index.port}"
        env.update(CNB_HOME=str(home), PYTHONPATH=str(REPO), HTTP_PROXY=proxy, http_proxy=proxy,
                   CNB_PLATFORM_API="0.15")  # fmt: skip
        layers = project.root / "layers"
        layers.mkdir()
        done = Cnb(home, env)(
            "lifecycle", "create",
            "--app", str(project.app), "--layers", str(layers), "--platform", str(project.platform),
            "--buildpacks", str(project.buildpacks), "--order", str(project.order),
            "--sandbox", "bwrap", "--build-image", images.build, "--run-image", images.run,
            "--cache-dir", str(project.root / "cache"), project.output, check=False,
        )  # fmt: skip
    finally:
        index.stop()
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert " + alpha==1.0\n" in output
    assert any(path.startswith("http://pypi.test/files/alpha-1.0") for path in index.requests), index.requests
    metadata = lifecycle_metadata(project.layout)
    assert [bp["key"] for bp in metadata["buildpacks"]][:1] == ["cnb/python"]
    assert probe.hits == 0
