"""BwrapSandbox with the real bwrap over a busybox rootfs: isolation, environment, mounts, limits, timeouts."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cnbplatform.errors import CnbError, NotFoundError, UsageError
from cnbplatform.sandbox import BwrapSandbox, HostSandbox, Mount, RunRequest, check_bwrap, make_sandbox

pytestmark = pytest.mark.integration
RequestFactory = Callable[..., RunRequest]


@pytest.fixture
def sandbox(rootfs: Path) -> Iterator[BwrapSandbox]:
    box = BwrapSandbox(rootfs)
    yield box
    box.close()


def parse_env(output: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in output.decode().splitlines())


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_environment_is_exactly_the_request(
    sandbox: BwrapSandbox, make_request: RequestFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CNB_REGISTRY_AUTH", '{"registry.example":"Basic c2VjcmV0"}')
    monkeypatch.setenv("FOO", "from-the-host")
    env = {"PATH": "/bin", "CNB_LAYERS_DIR": "/layers/bp", "SPACED": "a b=c d", "EMPTY": ""}
    result = sandbox.run(make_request(["/bin/env"], env=env))
    assert result.exit_code == 0, result.stderr
    assert parse_env(result.stdout) == {**env, "PWD": "/"}


@pytest.mark.parametrize(("uid", "gid"), [(1000, 1000), (2000, 3000)])
def test_cwd_and_user_are_the_requested_ones(
    sandbox: BwrapSandbox, make_request: RequestFactory, tmp_path: Path, uid: int, gid: int
) -> None:
    mount = Mount(tmp_path, "/workspace")
    result = sandbox.run(
        make_request(["/bin/sh", "-c", "pwd; id -u; id -g"], cwd="/workspace", mounts=[mount], uid=uid, gid=gid)
    )
    assert result.stdout.decode().split() == ["/workspace", str(uid), str(gid)]


def test_mounts_are_visible_read_only_enforced_and_writes_reach_the_host(
    sandbox: BwrapSandbox, make_request: RequestFactory, tmp_path: Path
) -> None:
    app, platform, buildpacks, plan = tmp_path / "app", tmp_path / "platform", tmp_path / "bps", tmp_path / "plan"
    for directory in (app, platform, buildpacks):
        directory.mkdir()
    (app / "source.txt").write_text("app source\n")
    (platform / "env").mkdir()
    (platform / "env" / "BP_X").write_text("x-value")
    (buildpacks / "bp.txt").write_text("a buildpack\n")
    plan.write_text("[[entries]]\n")
    mounts = [
        Mount(app, "/workspace"),
        Mount(platform, "/platform", read_only=True),
        Mount(buildpacks, "/cnb/buildpacks", read_only=True),  # /cnb does not exist in the image
        Mount(plan, "/etc/cnb/plan.toml", read_only=True),  # /etc exists, /etc/cnb does not
    ]
    script = (
        "cat /workspace/source.txt /platform/env/BP_X /cnb/buildpacks/bp.txt /etc/cnb/plan.toml /etc/group"
        " && echo written > /workspace/out.txt && mkdir /workspace/layer"
        " && ! echo no > /platform/new && ! echo no > /cnb/buildpacks/new && ! echo no > /etc/cnb/other"
        " && ! echo no > /etc/cnb/plan.toml"
    )
    result = sandbox.run(make_request(["/bin/sh", "-c", script], cwd="/workspace", mounts=mounts))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.decode() == "app source\nx-value" + "a buildpack\n[[entries]]\nroot:x:0:\ncnb:x:1000:\n"
    assert (app / "out.txt").read_text() == "written\n"
    assert (app / "layer").is_dir()
    # One uid is mapped: on the host the file belongs to whoever ran bwrap, not to CNB_USER_ID.
    assert (app / "out.txt").stat().st_uid == os.getuid()
    assert sorted(os.listdir(platform)) == ["env"] and sorted(os.listdir(buildpacks)) == ["bp.txt"]
    assert plan.read_text() == "[[entries]]\n"


def test_the_host_filesystem_stays_out_of_reach(
    sandbox: BwrapSandbox, make_request: RequestFactory, rootfs: Path, tmp_path: Path
) -> None:
    secret = Path("/root") / f"cnb-sandbox-secret-{uuid.uuid4().hex}"
    secret.write_text("host secret\n")
    escape_name = f"cnb-sandbox-escape-{uuid.uuid4().hex}"
    app = tmp_path / "app"
    app.mkdir()
    before = tree(rootfs)
    try:
        attempts = {
            "read_host_root": f"cat {secret}",
            "read_host_usr": "ls /usr",
            "write_etc": "echo x > /etc/x",
            "write_usr": "mkdir -p /usr && echo x > /usr/x",
            "write_root_dir": "echo x > /x",
            "write_image_root": "echo x > /root/x",
            "write_image_bin": "echo x > /bin/busybox",
            "dotdot_etc": "echo x > /workspace/../../../etc/pwned",
            "dotdot_root": f"cat /workspace/../../..{secret}",
            "host_pid_visible": f"test -e /proc/{os.getpid()}/environ",
        }
        for name, command in attempts.items():
            result = sandbox.run(make_request(["/bin/sh", "-c", command], mounts=[Mount(app, "/workspace")]))
            assert result.exit_code != 0, f"{name} succeeded: {result.stdout!r}"
            assert b"host secret" not in result.stdout
        own_root = sandbox.run(make_request(["/bin/cat", "/root/marker"], uid=0, gid=0))
        assert own_root.stdout == (rootfs / "root" / "marker").read_bytes()
        dotdot_tmp = sandbox.run(
            make_request(
                ["/bin/sh", "-c", f"echo x > /workspace/../../tmp/{escape_name} && ls /"],
                mounts=[Mount(app, "/workspace")],
            )
        )
        assert dotdot_tmp.exit_code == 0
        assert sorted(dotdot_tmp.stdout.decode().split()) == [
            "bin",
            "dev",
            "etc",
            "home",
            "proc",
            "root",
            "tmp",
            "workspace",
        ]
    finally:
        secret.unlink()
    assert not (Path("/tmp") / escape_name).exists()
    assert tree(rootfs) == before
    assert os.listdir(app) == []


def test_root_in_the_sandbox_cannot_remount_the_image_writable(
    sandbox: BwrapSandbox, make_request: RequestFactory, rootfs: Path
) -> None:
    result = sandbox.run(make_request(["/bin/sh", "-c", "echo x > /etc/x || echo x > /bin/x"], uid=0, gid=0))
    assert result.exit_code != 0
    assert not (rootfs / "etc" / "x").exists() and not (rootfs / "bin" / "x").exists()


@pytest.mark.parametrize("code", [0, 100, 51, 7])
def test_exit_codes_propagate(sandbox: BwrapSandbox, make_request: RequestFactory, code: int) -> None:
    result = sandbox.run(make_request(["/bin/sh", "-c", f"echo out; echo err >&2; exit {code}"]))
    assert (result.exit_code, result.timed_out) == (code, False)
    assert (result.stdout, result.stderr) == (b"out\n", b"err\n")


def test_timeout_kills_the_whole_tree(sandbox: BwrapSandbox, make_request: RequestFactory, tmp_path: Path) -> None:
    script = "(sleep 0.3; touch /workspace/ran) & (sleep 4; touch /workspace/child-survived) & sleep 100 & wait"
    started = time.monotonic()
    result = sandbox.run(make_request(["/bin/sh", "-c", script], mounts=[Mount(tmp_path, "/workspace")], timeout=1))
    assert result.timed_out
    assert result.exit_code == 137
    assert (tmp_path / "ran").exists()  # the step ran until its timeout, not less
    time.sleep(max(0.0, 4.5 - (time.monotonic() - started)))  # past the moment the child would write its marker
    assert not (tmp_path / "child-survived").exists()  # the whole tree was killed


def test_huge_output_is_truncated_but_drained(sandbox: BwrapSandbox, make_request: RequestFactory) -> None:
    seen = {"stdout": 0, "stderr": 0}

    def count(stream: str) -> object:
        return lambda chunk: seen.__setitem__(stream, seen[stream] + len(chunk))

    script = "head -c 52428800 /dev/zero; head -c 3000000 /dev/zero >&2; exit 3"
    request = make_request(["/bin/sh", "-c", script], stdout=count("stdout"), stderr=count("stderr"), timeout=60)
    result = sandbox.run(request)
    assert (result.exit_code, result.timed_out, result.truncated) == (3, False, True)
    assert len(result.stdout) == 8 * 1024 * 1024 and set(result.stdout) == {0}
    assert len(result.stderr) == 3000000
    assert seen == {"stdout": 52428800, "stderr": 3000000}
    small = sandbox.run(make_request(["/bin/sh", "-c", "echo 0123456789"], output_limit=4))
    assert (small.stdout, small.truncated) == (b"0123", True)


def test_stdin_is_empty(sandbox: BwrapSandbox, make_request: RequestFactory) -> None:
    result = sandbox.run(make_request(["/bin/cat"], timeout=10))
    assert (result.exit_code, result.stdout, result.timed_out) == (0, b"", False)


def test_network_is_off_unless_requested(rootfs: Path, make_request: RequestFactory, http_server: str) -> None:
    """With the host network a request reaches a server on the host's 127.0.0.1; without the network it does not
    (the default private network is tests/security/test_build_network.py's)."""
    sandbox = BwrapSandbox(rootfs, network="host")
    fetch = ["/bin/wget", "-q", "-O", "-", http_server]
    online = sandbox.run(make_request(fetch, network=True, timeout=20))
    assert (online.exit_code, online.stdout) == (0, b"hello from the host\n")
    offline = sandbox.run(make_request(fetch, network=False, timeout=20))
    assert offline.exit_code != 0 and offline.stdout == b""


def test_set_up_failures_are_errors(sandbox: BwrapSandbox, make_request: RequestFactory, tmp_path: Path) -> None:
    with pytest.raises(CnbError, match="bwrap could not run /bin/missing"):
        sandbox.run(make_request(["/bin/missing"]))
    with pytest.raises(CnbError, match="bwrap could not run"):
        sandbox.run(make_request(["/bin/true"], cwd="/nowhere"))
    with pytest.raises(NotFoundError, match="mount source"):
        sandbox.run(make_request(["/bin/true"], mounts=[Mount(tmp_path / "absent", "/layers")]))
    for target in ("/layers/../etc", "layers", "/layers/", "/"):
        with pytest.raises(UsageError):
            sandbox.run(make_request(["/bin/true"], mounts=[Mount(tmp_path, target)]))
    with pytest.raises(UsageError, match="environment variable"):
        sandbox.run(make_request(["/bin/true"], env={"A=B": "c"}))
    with pytest.raises(NotFoundError, match="not a directory"):
        BwrapSandbox(tmp_path / "no-rootfs")
    with pytest.raises(CnbError, match="bwrap not found: install bubblewrap or use --sandbox host"):
        check_bwrap("cnb-no-such-bwrap")


def test_a_machine_where_bwrap_cannot_make_a_sandbox_is_named_at_the_first_run(
    rootfs: Path, make_request: RequestFactory, tmp_path: Path
) -> None:
    """bwrap is not probed up front (that costs a start per command); a run that cannot start says why."""
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create a new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    sandbox = BwrapSandbox(rootfs, bwrap=str(fake))  # no probe yet
    with pytest.raises(CnbError, match=r"cannot create a sandbox here: .*user namespaces disabled"):
        sandbox.run(make_request(["/bin/true"]))


def test_factory(rootfs: Path) -> None:
    assert isinstance(make_sandbox("bwrap", rootfs=rootfs), BwrapSandbox)
    assert isinstance(make_sandbox("host"), HostSandbox)
    with pytest.raises(UsageError, match="needs the unpacked build image"):
        make_sandbox("bwrap")
    with pytest.raises(UsageError, match="unknown sandbox"):
        make_sandbox("chroot")


def test_many_calls_in_a_row_each_start_clean(sandbox: BwrapSandbox, make_request: RequestFactory) -> None:
    """Fifty sandboxes one after another all run (what they cost per call is measured in bench/, not here)."""
    for _ in range(50):
        result = sandbox.run(make_request(["/bin/sh", "-c", "echo $$"]))
        assert (result.exit_code, result.stdout.strip().isdigit()) == (0, True)


def test_the_network_comes_with_a_resolver_configuration(
    rootfs: Path, make_request: RequestFactory, tmp_path: Path
) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\n")
    sandbox = BwrapSandbox(rootfs, resolv_conf=resolv, network="host")  # private: tests/security/test_build_network.py
    read = ["/bin/cat", "/etc/resolv.conf"]
    assert sandbox.run(make_request(read, network=True)).stdout == b"nameserver 127.0.0.1\n"
    assert sandbox.run(make_request(read, network=False)).exit_code != 0
    own = tmp_path / "own.conf"
    own.write_text("nameserver 127.0.0.2\n")
    mine = sandbox.run(make_request(read, network=True, mounts=[Mount(own, "/etc/resolv.conf", read_only=True)]))
    assert mine.stdout == b"nameserver 127.0.0.2\n"
    listing = sandbox.run(make_request(["/bin/ls", "/etc"], network=True))
    assert listing.stdout.decode().split() == ["group", "passwd", "resolv.conf"]
    assert not (rootfs / "etc" / "resolv.conf").exists()
