"""The environment of ``bin/build`` (docs/spec-notes.md §3.3, §3.9; §16 items 26 and 27) and a full build through bwrap
on a busybox build image (exact environment, buildpack-side paths, isolation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnbplatform.files.metadata import BuildMetadata
from cnbplatform.lifecycle.build.phase import PLAN_MOUNT
from cnbplatform.sandbox import BwrapSandbox
from tests.lifecycle.build_helpers import BuildSetup, launch_toml, layer_toml, plan_of
from tests.support.rootfs import make_busybox_rootfs


@pytest.fixture
def setup(tmp_path: Path) -> BuildSetup:
    return BuildSetup.create(tmp_path)


def env_of(path: Path) -> dict[str, str]:
    """Parse ``env -0`` output."""
    out = {}
    for item in path.read_bytes().split(b"\0"):
        if item:
            name, _, value = item.decode().partition("=")
            out[name] = value
    return out


DUMP = 'env -0 > "env-{0}"'


def tool_layer(name: str, tool: str, *, build: bool) -> str:
    """sh lines: a layer with bin/<tool>, lib/, include/ and pkgconfig/."""
    return "\n".join(
        [
            layer_toml(name, build=build),
            f'mkdir -p "$1/{name}/bin" "$1/{name}/lib" "$1/{name}/include" "$1/{name}/pkgconfig"',
            f"printf '#!/bin/sh\\necho {tool} ran\\n' > \"$1/{name}/bin/{tool}\"",
            f'chmod +x "$1/{name}/bin/{tool}"',
        ]
    )


def test_build_layers_are_visible_to_later_buildpacks_later_first(setup: BuildSetup) -> None:
    """Item 26: build=true layers expose bin, lib, include, pkgconfig through PATH, LD_LIBRARY_PATH + LIBRARY_PATH,
    CPATH and PKG_CONFIG_PATH to later buildpacks, later buildpacks first; build=false layers are invisible."""
    setup.bp("t/a", "\n".join([tool_layer("tools", "tool-a", build=True), tool_layer("hidden", "hid", build=False)]))
    setup.bp("t/b", "\n".join([tool_layer("more", "tool-b", build=True), "tool-a > ran-a.txt", DUMP.format("b")]))
    setup.bp("t/c", "\n".join(["tool-a > c-ran-a.txt", "tool-b > c-ran-b.txt", DUMP.format("c")]))
    setup.run("t/a", "t/b", "t/c")
    a_tools, a_hidden, b_more = (str(setup.layers(*p)) for p in (("t_a", "tools"), ("t_a", "hidden"), ("t_b", "more")))
    assert setup.app("ran-a.txt").read_text() == "tool-a ran\n"
    assert setup.app("c-ran-b.txt").read_text() == "tool-b ran\n"
    env_b, env_c = env_of(setup.app("env-b")), env_of(setup.app("env-c"))
    assert env_b["PATH"].split(":")[0] == f"{a_tools}/bin"
    assert env_c["PATH"].split(":")[:2] == [f"{b_more}/bin", f"{a_tools}/bin"]
    assert env_c["PATH"].endswith(":/usr/local/bin:/usr/bin:/bin")
    for var in ("LD_LIBRARY_PATH", "LIBRARY_PATH"):
        assert env_c[var] == f"{b_more}/lib:{a_tools}/lib"
    assert env_c["CPATH"] == f"{b_more}/include:{a_tools}/include"
    assert env_c["PKG_CONFIG_PATH"] == f"{b_more}/pkgconfig:{a_tools}/pkgconfig"
    assert all(a_hidden not in value for value in env_c.values())
    assert not setup.app("env-a").exists()


def test_env_files_of_build_layers(setup: BuildSetup) -> None:
    """Item 27: none/.override set, .default only if empty, .prepend/.append with .delim (none ⇒ concatenation),
    unknown suffix ignored, contents verbatim; env.build/ applies, env.launch/ does not; build=false layers don't."""
    files = {
        "env/SET": "set\n",
        "env/OVR.override": "ovr",
        "env/DEF.default": "def",
        "env/HOME.default": "/not/used",
        "env/PRE.prepend": "pre",
        "env/PRE.delim": "|",
        "env/CAT.append": "cat",
        "env/IGN.weird": "ign",
        "env.build/ONLYBUILD": "b",
        "env.launch/ONLYLAUNCH": "l",
    }
    lines = [layer_toml("envs", build=True)]
    for rel, value in files.items():
        directory = rel.split("/")[0]
        lines.append(f'mkdir -p "$1/envs/{directory}"')
        escaped = value.replace("\n", "\\n")
        lines.append(f"printf '{escaped}' > \"$1/envs/{rel}\"")
    lines += [layer_toml("nobuild", launch=True), 'mkdir -p "$1/nobuild/env"', 'printf x > "$1/nobuild/env/NOPE"']
    setup.bp("t/a", "\n".join(lines))
    setup.bp("t/b", DUMP.format("b"))
    (setup.dirs.platform / "env" / "OVR").write_text("user")  # applied per invocation, after the layers
    exec_ = setup.execution(base_env={"PATH": "/usr/bin:/bin", "HOME": "/home/x", "PRE": "p0", "CAT": "c0"})
    setup.run("t/a", "t/b", execution=exec_)
    env = env_of(setup.app("env-b"))
    assert env["SET"] == "set\n"
    assert env["OVR"] == "user"
    assert env["DEF"] == "def"
    assert env["HOME"] == "/home/x"
    assert env["PRE"] == "pre|p0"
    assert env["CAT"] == "c0cat"
    assert env["ONLYBUILD"] == "b"
    for absent in ("IGN", "ONLYLAUNCH", "NOPE"):
        assert absent not in env


def test_platform_env_build_config_and_clear_env(setup: BuildSetup) -> None:
    """§3.9 step 3 (items 15, 16 during build): <platform>/env per invocation unless clear-env; build-config env
    always, no suffix = default. None of it accumulates into later buildpacks' env."""
    (setup.dirs.platform / "env" / "USERVAR").write_text("u")
    (setup.dirs.platform / "env" / "PATH").write_text("/user/bin")
    assert setup.dirs.build_config is not None
    (setup.dirs.build_config / "env" / "OPVAR").write_text("op")
    setup.bp("t/a", DUMP.format("a"))
    setup.bp("t/clear", DUMP.format("clear"), toml_extra="clear-env = true")
    setup.run("t/a", "t/clear")
    env_a, env_clear = env_of(setup.app("env-a")), env_of(setup.app("env-clear"))
    assert env_a["USERVAR"] == "u" and env_a["PATH"] == "/user/bin:/usr/local/bin:/usr/bin:/bin"
    assert env_a["OPVAR"] == "op"
    assert "USERVAR" not in env_clear and env_clear["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env_clear["OPVAR"] == "op"


def test_cnb_variables_cannot_be_changed_by_env_files(setup: BuildSetup) -> None:
    """§3.9 step 4: the CNB_* inputs are set last."""
    setup.bp(
        "t/a",
        "\n".join([layer_toml("l", build=True), 'mkdir "$1/l/env"', 'printf /evil > "$1/l/env/CNB_LAYERS_DIR"']),
    )
    setup.bp("t/b", DUMP.format("b"))
    (setup.dirs.platform / "env" / "CNB_EXEC_ENV").write_text("evil")
    setup.run("t/a", "t/b", exec_env="test")
    env = env_of(setup.app("env-b"))
    assert env["CNB_LAYERS_DIR"] == str(setup.layers("t_b"))
    assert env["CNB_EXEC_ENV"] == "test"


# --- a full build through bwrap -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_busybox_rootfs(tmp_path_factory.mktemp("build-rootfs"))
    (root / "root" / "rootfs-marker").write_text("image /root\n")
    return root


PROBE = """
probe() {{ if sh -c "$2" >/dev/null 2>&1; then echo "$1:allowed"; else echo "$1:denied"; fi; }}
{{
probe write-etc 'touch /etc/evil'
probe write-buildpacks 'touch /cnb/buildpacks/evil'
probe write-platform 'touch /platform/evil'
probe write-plan 'echo x > "$CNB_BP_PLAN_PATH"'
probe read-host '{secret}'
probe write-layers 'touch "$CNB_LAYERS_DIR/ok"'
probe write-app 'touch /workspace/ok'
}} > /workspace/probe.txt
ls -A /root > /workspace/root-listing.txt
"""


@pytest.mark.integration
def test_full_build_in_bwrap(setup: BuildSetup, rootfs: Path, tmp_path: Path) -> None:
    """A group built through bwrap on a busybox image: buildpacks see /layers, /workspace, /platform,
    /cnb/buildpacks and the plan at the spec's paths with exactly the expected environment (items 13/21/26 there),
    cannot write the image, the buildpacks or the platform dir, nor read the host; the build result still adds up."""
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only\n")
    (setup.dirs.platform / "env" / "USERVAR").write_text("u")
    setup.bp(
        "org/first",
        "\n".join([tool_layer("tools", "tool-a", build=True), PROBE.format(secret=f"cat {secret}")]),
        version="1.0.0",
    )
    setup.bp(
        "org/second",
        "\n".join(
            [
                'env -0 > /workspace/env-second\ncat "$CNB_BP_PLAN_PATH" > /workspace/plan-second.toml',
                "tool-a > /workspace/tool.txt",
                layer_toml("web", launch=True),
                launch_toml('[[processes]]\ntype = "web"\ncommand = ["serve"]\ndefault = true'),
            ]
        ),
        version="2.0.0",
    )
    ex = setup.execution(BwrapSandbox(rootfs), base_env={"PATH": "/usr/bin:/bin", "HOME": "/home/cnb"}, network=False)
    plan = plan_of(("dep", ["org/second"], [{"version": "1"}]))
    result = setup.run("org/first", "org/second", plan=plan, execution=ex)

    probe = dict(line.split(":") for line in setup.app("probe.txt").read_text().split())
    assert probe == {
        "write-etc": "denied",
        "write-buildpacks": "denied",
        "write-platform": "denied",
        "write-plan": "denied",
        "read-host": "denied",
        "write-layers": "allowed",
        "write-app": "allowed",
    }
    assert setup.app("root-listing.txt").read_text().split() == ["rootfs-marker"]
    assert setup.app("tool.txt").read_text() == "tool-a ran\n"
    env = env_of(setup.app("env-second"))
    assert env.pop("SHLVL") == "1"  # set by the buildpack's own sh
    assert env == {
        "PATH": "/layers/org_first/tools/bin:/usr/bin:/bin",
        "LD_LIBRARY_PATH": "/layers/org_first/tools/lib",
        "LIBRARY_PATH": "/layers/org_first/tools/lib",
        "CPATH": "/layers/org_first/tools/include",
        "PKG_CONFIG_PATH": "/layers/org_first/tools/pkgconfig",
        "HOME": "/home/cnb",
        "USERVAR": "u",
        "CNB_BUILDPACK_DIR": "/cnb/buildpacks/org_second/2.0.0",
        "CNB_LAYERS_DIR": "/layers/org_second",
        "CNB_PLATFORM_DIR": "/platform",
        "CNB_BP_PLAN_PATH": f"{PLAN_MOUNT}/org_second/plan.toml",
        "CNB_TARGET_OS": "linux",
        "CNB_TARGET_ARCH": "amd64",
        "CNB_TARGET_DISTRO_NAME": "busybox",
        "CNB_TARGET_DISTRO_VERSION": "1.35",
        "CNB_EXEC_ENV": "production",
        "PWD": "/workspace",
    }
    assert 'name = "dep"' in setup.app("plan-second.toml").read_text()
    assert [b.id for b in result.buildpacks] == ["org/first", "org/second"]
    assert all(b.duration > 0 for b in result.buildpacks)
    assert {x.name: x.types.build for x in result.buildpacks[0].layers} == {"tools": True}
    assert result.buildpacks[1].met == ("dep",)
    metadata = BuildMetadata.load(setup.layers("config", "metadata.toml"))
    assert metadata.default_process_type == "web"
    assert [p.buildpack_id for p in metadata.processes] == ["org/second"]
