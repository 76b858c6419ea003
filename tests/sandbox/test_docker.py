"""DockerSandbox against the session's real Docker engine with the busybox test image loaded into it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import docker
import pytest

from cnbplatform.errors import CnbError, NotFoundError
from cnbplatform.sandbox import DockerSandbox, Mount, RunRequest, make_sandbox
from cnbplatform.sandbox.docker import LABEL
from tests.support.dockerd import RunningDockerd

pytestmark = pytest.mark.integration
RequestFactory = Callable[..., RunRequest]


@pytest.fixture
def client(dockerd: RunningDockerd) -> Iterator[docker.DockerClient]:
    engine = docker.DockerClient(base_url=dockerd.base_url)
    yield engine
    engine.close()


@pytest.fixture
def sandbox(docker_image: str, dockerd: RunningDockerd) -> Iterator[DockerSandbox]:
    box = make_sandbox("docker", image=docker_image, docker_env={"DOCKER_HOST": dockerd.base_url})
    assert isinstance(box, DockerSandbox)
    yield box
    box.close()


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """Host dirs for /workspace (writable by uid 1000, as the lifecycle arranges) and /platform."""
    made = {"app": tmp_path / "app", "platform": tmp_path / "platform"}
    for path in made.values():
        path.mkdir()
    made["app"].chmod(0o777)
    (made["platform"] / "env").mkdir()
    (made["platform"] / "env" / "BP_X").write_text("x-value")
    return made


def mounts(dirs: dict[str, Path]) -> list[Mount]:
    return [Mount(dirs["app"], "/workspace"), Mount(dirs["platform"], "/platform", read_only=True)]


def sandbox_containers(client: docker.DockerClient) -> list[str]:
    return [c.id for c in client.containers.list(all=True, filters={"label": LABEL})]


def test_environment_user_and_cwd(
    sandbox: DockerSandbox, make_request: RequestFactory, dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNB_REGISTRY_AUTH", '{"registry.example":"Basic c2VjcmV0"}')
    monkeypatch.setenv("FOO", "from-the-host")
    env = {"PATH": "/bin", "CNB_LAYERS_DIR": "/layers/bp", "SPACED": "a b=c d", "EMPTY": ""}
    result = sandbox.run(make_request(["/bin/env"], env=env, cwd="/workspace", mounts=mounts(dirs)))
    assert result.exit_code == 0, result.stderr
    assert dict(line.split("=", 1) for line in result.stdout.decode().splitlines()) == {**env, "PWD": "/workspace"}
    who = sandbox.run(make_request(["/bin/sh", "-c", "pwd; id -u; id -g"], cwd="/platform", mounts=mounts(dirs)))
    assert who.stdout.decode().split() == ["/platform", "1000", "1000"]


def test_mounts_and_exit_codes_share_one_container(
    sandbox: DockerSandbox,
    make_request: RequestFactory,
    dirs: dict[str, Path],
    client: docker.DockerClient,
) -> None:
    script = "cat /platform/env/BP_X && echo written > /workspace/out.txt && ! echo no > /platform/new"
    result = sandbox.run(make_request(["/bin/sh", "-c", script], mounts=mounts(dirs)))
    assert (result.exit_code, result.stdout) == (0, b"x-value"), result.stderr
    assert (dirs["app"] / "out.txt").read_text() == "written\n"
    assert (dirs["app"] / "out.txt").stat().st_uid == 1000  # real uids in a container
    assert not (dirs["platform"] / "new").exists()
    for code in (0, 100, 51, 7):
        ran = sandbox.run(make_request(["/bin/sh", "-c", f"echo out; echo err >&2; exit {code}"], mounts=mounts(dirs)))
        assert (ran.exit_code, ran.stdout, ran.stderr, ran.timed_out) == (code, b"out\n", b"err\n", False)
    assert len(sandbox_containers(client)) == 1
    sandbox.close()
    assert sandbox_containers(client) == []


def test_other_mounts_get_a_fresh_container(
    sandbox: DockerSandbox, make_request: RequestFactory, dirs: dict[str, Path], tmp_path: Path
) -> None:
    first = sandbox.run(make_request(["/bin/ls", "/workspace"], mounts=mounts(dirs)))
    assert first.exit_code == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "seen").write_text("")
    second = sandbox.run(make_request(["/bin/ls", "/elsewhere"], mounts=[Mount(other, "/elsewhere")]))
    assert (second.exit_code, second.stdout) == (0, b"seen\n")
    gone = sandbox.run(make_request(["/bin/ls", "/workspace"], mounts=[Mount(other, "/elsewhere")]))
    assert gone.exit_code != 0


def test_timeout_kills_the_step(sandbox: DockerSandbox, make_request: RequestFactory, dirs: dict[str, Path]) -> None:
    script = "(sleep 0.3; touch /workspace/ran) & (sleep 6; touch /workspace/child-survived) & sleep 100 & wait"
    started = time.monotonic()
    result = sandbox.run(make_request(["/bin/sh", "-c", script], mounts=mounts(dirs), timeout=1))
    assert (result.timed_out, result.exit_code) == (True, 137)
    assert (dirs["app"] / "ran").exists()  # the step ran until its timeout, not less
    time.sleep(max(0.0, 6.5 - (time.monotonic() - started)))  # past the moment the child would write its marker
    assert not (dirs["app"] / "child-survived").exists()  # the whole tree was killed
    after = sandbox.run(make_request(["/bin/true"], mounts=mounts(dirs)))  # the container survived the kill
    assert (after.exit_code, after.timed_out) == (0, False)


def test_output_limit(sandbox: DockerSandbox, make_request: RequestFactory) -> None:
    total = [0]
    request = make_request(
        ["/bin/sh", "-c", "head -c 10000000 /dev/zero; exit 5"],
        output_limit=4096,
        stdout=lambda chunk: total.__setitem__(0, total[0] + len(chunk)),
    )
    result = sandbox.run(request)
    assert (result.exit_code, result.truncated, len(result.stdout), total[0]) == (5, True, 4096, 10000000)


def test_network_is_none_unless_requested(
    docker_image: str, dockerd: RunningDockerd, make_request: RequestFactory, http_server: str
) -> None:
    """``host``: the host's 127.0.0.1 is reachable (the default, ``private``, is the engine's bridge network, which
    the tests' engine does not have: tests/security/test_build_network.py)."""
    sandbox = DockerSandbox(docker_image, environment={"DOCKER_HOST": dockerd.base_url}, network="host")
    fetch = ["/bin/wget", "-q", "-O", "-", http_server]
    try:
        offline = sandbox.run(make_request(fetch, network=False, timeout=20))
        online = sandbox.run(make_request(fetch, network=True, timeout=20))
    finally:
        sandbox.close()
    assert offline.exit_code != 0 and offline.stdout == b""
    assert (online.exit_code, online.stdout) == (0, b"hello from the host\n")


def test_the_default_network_is_the_engines_bridge_not_the_host(
    docker_image: str, dockerd: RunningDockerd, make_request: RequestFactory, http_server: str
) -> None:
    """The default (private) network is the engine's bridge network, never the host's: the server on the host's
    127.0.0.1 that ``host`` reaches (test above) is out of reach."""
    sandbox = DockerSandbox(docker_image, environment={"DOCKER_HOST": dockerd.base_url})
    try:
        fetch = sandbox.run(make_request(["/bin/wget", "-q", "-O", "-", http_server], network=True, timeout=20))
        mode = sandbox._api().inspect_container(sandbox._container)["HostConfig"]["NetworkMode"]
    finally:
        sandbox.close()
    assert (fetch.exit_code != 0, fetch.stdout, mode) == (True, b"", "bridge")


def test_errors(dockerd: RunningDockerd, sandbox: DockerSandbox, make_request: RequestFactory) -> None:
    with pytest.raises(CnbError, match="could not run /bin/true"):
        sandbox.run(make_request(["/bin/true"], cwd="/no-such-dir"))
    missing = DockerSandbox("cnb-test/no-such-image:1", environment={"DOCKER_HOST": dockerd.base_url})
    try:
        with pytest.raises(NotFoundError, match="not in the Docker engine"):
            missing.run(make_request(["/bin/true"]))
    finally:
        missing.close()
