"""HostSandbox: sandbox paths rewritten to host paths, exact environment, limits and timeouts on the host."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cnbplatform.errors import CnbError, UsageError
from cnbplatform.sandbox import HostSandbox, Mount, RunRequest
from cnbplatform.sandbox.host import rewrite_path, rewrite_value

RequestFactory = Callable[..., RunRequest]
HOST_PATH = "/usr/local/bin:/usr/bin:/bin"


def parse_env(output: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.decode().splitlines())


def test_rewrite_replaces_whole_path_components_longest_target_first(tmp_path: Path) -> None:
    layers, bp_layers, app = tmp_path / "layers", tmp_path / "bp-layers", tmp_path / "app"
    mounts = [Mount(layers, "/layers"), Mount(bp_layers, "/layers/bp"), Mount(app, "/workspace")]
    assert rewrite_path("/layers", mounts) == str(layers)
    assert rewrite_path("/layers/x/y", mounts) == f"{layers}/x/y"
    assert rewrite_path("/layers/bp/launch.toml", mounts) == f"{bp_layers}/launch.toml"
    assert rewrite_path("/layersx/y", mounts) == "/layersx/y"
    assert rewrite_path("/usr/bin", mounts) == "/usr/bin"
    assert rewrite_path("relative/layers", mounts) == "relative/layers"
    assert rewrite_value("/layers/x/bin:/usr/bin:/workspace/bin", mounts) == f"{layers}/x/bin:/usr/bin:{app}/bin"
    assert rewrite_value("http://proxy.example:3128", mounts) == "http://proxy.example:3128"
    assert rewrite_value("", mounts) == ""


def test_argv_env_and_cwd_are_rewritten_to_host_paths(make_request: RequestFactory, tmp_path: Path) -> None:
    buildpacks, layers, app, platform = (tmp_path / n for n in ("buildpacks", "layers", "app", "platform"))
    for directory in (layers, app, platform):
        directory.mkdir()
    (layers / "bp").mkdir()
    script = buildpacks / "bp" / "1.0" / "bin" / "build"
    script.parent.mkdir(parents=True)
    script.write_text('#!/bin/sh\necho "$1|$CNB_LAYERS_DIR|$(pwd)|$PATH"\necho built > "$CNB_LAYERS_DIR/marker"\n')
    script.chmod(0o755)
    mounts = [
        Mount(buildpacks, "/cnb/buildpacks"),
        Mount(layers, "/layers"),
        Mount(app, "/workspace"),
        Mount(platform, "/platform"),
    ]
    request = make_request(
        ["/cnb/buildpacks/bp/1.0/bin/build", "/layers/bp", "/platform"],
        env={"CNB_LAYERS_DIR": "/layers/bp", "PATH": f"/layers/bp/tool/bin:{HOST_PATH}"},
        cwd="/workspace",
        mounts=mounts,
    )
    result = HostSandbox().run(request)
    assert result.exit_code == 0, result.stderr
    first, layers_dir, cwd, path = result.stdout.decode().strip().split("|")
    assert (first, layers_dir, cwd) == (f"{layers}/bp", f"{layers}/bp", str(app))
    assert path == f"{layers}/bp/tool/bin:{HOST_PATH}"
    assert (layers / "bp" / "marker").read_text() == "built\n"


def test_environment_is_exactly_the_request(
    make_request: RequestFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CNB_REGISTRY_AUTH", '{"registry.example":"Basic c2VjcmV0"}')
    monkeypatch.setenv("FOO", "from-the-host")
    env = {"PATH": HOST_PATH, "CNB_PLATFORM_DIR": "/platform", "SPACED": "a b=c", "EMPTY": ""}
    request = make_request(["/usr/bin/env"], env=env, cwd="/workspace", mounts=[Mount(tmp_path, "/workspace")])
    result = HostSandbox().run(request)
    assert result.exit_code == 0, result.stderr
    assert parse_env(result.stdout) == {**env, "PWD": str(tmp_path)}


@pytest.mark.parametrize("code", [0, 100, 51, 7])
def test_exit_codes_propagate(make_request: RequestFactory, code: int) -> None:
    result = HostSandbox().run(make_request(["/bin/sh", "-c", f"echo out; echo err >&2; exit {code}"]))
    assert (result.exit_code, result.stdout, result.stderr, result.timed_out) == (code, b"out\n", b"err\n", False)


def test_timeout_kills_the_process_group(make_request: RequestFactory, tmp_path: Path) -> None:
    marker = tmp_path / "child-survived"
    early = tmp_path / "ran-until-killed"
    script = f"(sleep 0.3; touch {early}) & (sleep 4; touch {marker}) & sleep 100 & wait"
    started = time.monotonic()
    result = HostSandbox().run(make_request(["/bin/sh", "-c", script], env={"PATH": HOST_PATH}, timeout=1))
    assert (result.timed_out, result.exit_code) == (True, 137)
    assert early.exists()  # the step ran until its timeout, not less
    time.sleep(max(0.0, 4.5 - (time.monotonic() - started)))  # past the moment the child would write its marker
    assert not marker.exists()  # the whole group was killed


def test_a_background_child_holding_the_pipes_does_not_hang_the_run(make_request: RequestFactory) -> None:
    result = HostSandbox().run(make_request(["/bin/sh", "-c", "sleep 60 & echo $!"], env={"PATH": HOST_PATH}))
    assert (result.exit_code, result.timed_out) == (0, False)
    child = int(result.stdout)
    try:
        os.kill(child, 0)  # still sleeping: the run returned without waiting for the child that holds the pipes
    finally:
        os.kill(child, signal.SIGKILL)


def test_output_limit_and_streaming(make_request: RequestFactory) -> None:
    chunks: list[bytes] = []
    script = "head -c 20000000 /dev/zero; echo tail"
    request = make_request(["/bin/sh", "-c", script], env={"PATH": HOST_PATH}, output_limit=1000, stdout=chunks.append)
    result = HostSandbox().run(request)
    assert (result.exit_code, result.truncated, len(result.stdout)) == (0, True, 1000)
    streamed = b"".join(chunks)
    assert len(streamed) == 20000005 and streamed.endswith(b"tail\n")


def test_a_failing_callback_stops_the_process(make_request: RequestFactory, tmp_path: Path) -> None:
    def explode(chunk: bytes) -> None:
        raise RuntimeError("caller gave up")

    pid_file = tmp_path / "pid"
    script = f"echo $$ > {pid_file}; echo first; exec sleep 30"
    with pytest.raises(RuntimeError, match="caller gave up"):
        HostSandbox().run(make_request(["/bin/sh", "-c", script], env={"PATH": HOST_PATH}, stdout=explode))
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left sleeping
        os.kill(int(pid_file.read_text()), 0)


def test_errors(make_request: RequestFactory, tmp_path: Path) -> None:
    with pytest.raises(CnbError, match="cannot start /nonexistent/build"):
        HostSandbox().run(make_request(["/nonexistent/build"]))
    with pytest.raises(CnbError, match="cannot start"):
        HostSandbox().run(make_request(["/bin/true"], cwd="/cnb-no-such-dir", mounts=[Mount(tmp_path, "/other")]))
    with pytest.raises(UsageError, match="timeout"):
        HostSandbox().run(make_request(["/bin/true"], timeout=0))
    with pytest.raises(UsageError, match="empty"):
        HostSandbox().run(make_request([]))


def test_a_process_that_closes_its_output_early_is_waited_for(make_request: RequestFactory) -> None:
    script = "echo early; exec >&- 2>&-; sleep 0.3; exit 3"
    result = HostSandbox().run(make_request(["/bin/sh", "-c", script], env={"PATH": HOST_PATH}, timeout=10))
    assert (result.exit_code, result.timed_out, result.stdout) == (3, False, b"early\n")
    late = HostSandbox().run(
        make_request(["/bin/sh", "-c", "exec >&- 2>&-; sleep 30"], env={"PATH": HOST_PATH}, timeout=1)
    )
    assert (late.exit_code, late.timed_out) == (137, True)
