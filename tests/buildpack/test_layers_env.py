"""The build env accumulated from build layers (docs/spec-notes.md §3.9 step 2, §3.8; §16 items 26 and 27)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnbplatform.buildpack.layers_env import BuildEnv, BuildLayer, build_layer_ops, check_confined, root_dir_ops
from cnbplatform.files.common import SpecFileError


def layer(root: Path, bp: str, name: str, *subdirs: str, env: dict[str, str] | None = None) -> BuildLayer:
    host = root / bp / name
    host.mkdir(parents=True)
    for sub in subdirs:
        (host / sub).mkdir()
    for rel, value in (env or {}).items():
        path = host / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(value.encode())
    return BuildLayer(host, f"/layers/{bp}/{name}")


def test_root_dirs_go_to_their_path_variables(tmp_path: Path) -> None:
    """Item 26: bin → PATH, lib → LD_LIBRARY_PATH and LIBRARY_PATH, include → CPATH, pkgconfig → PKG_CONFIG_PATH."""
    lay = layer(tmp_path, "bp", "l", "bin", "lib", "include", "pkgconfig")
    env = BuildEnv({"PATH": "/usr/bin:/bin", "CPATH": ""})
    env.add_layers([lay])
    out = env.snapshot()
    assert out["PATH"] == "/layers/bp/l/bin:/usr/bin:/bin"
    assert out["LD_LIBRARY_PATH"] == "/layers/bp/l/lib"
    assert out["LIBRARY_PATH"] == "/layers/bp/l/lib"
    assert out["CPATH"] == "/layers/bp/l/include"  # no trailing ':' when the old value is empty
    assert out["PKG_CONFIG_PATH"] == "/layers/bp/l/pkgconfig"


def test_only_existing_dirs_are_added(tmp_path: Path) -> None:
    """Item 26: a layer without lib/ adds nothing to LD_LIBRARY_PATH."""
    lay = layer(tmp_path, "bp", "l", "bin")
    ops = root_dir_ops(lay)
    assert {op.name for op in ops} == {"PATH"}
    env = BuildEnv({"PATH": "/bin"})
    env.add_layers([lay])
    assert "LD_LIBRARY_PATH" not in env.snapshot()


def test_later_buildpacks_come_first_and_later_layers_of_one_buildpack_too(tmp_path: Path) -> None:
    """Item 26 (later buildpacks first) and LC's order within one buildpack (layer by layer, so the last is first)."""
    env = BuildEnv({"PATH": "/bin"})
    env.add_layers([layer(tmp_path, "a", "x", "bin"), layer(tmp_path, "a", "y", "bin")])
    env.add_layers([layer(tmp_path, "b", "z", "bin")])
    assert env.snapshot()["PATH"] == "/layers/b/z/bin:/layers/a/y/bin:/layers/a/x/bin:/bin"


def test_env_then_env_build_with_suffix_rules(tmp_path: Path) -> None:
    """Item 27: no suffix and .override set; .default only if empty; .prepend/.append with .delim; unknown ignored;
    values verbatim (trailing newline kept). env/ is applied before env.build/."""
    lay = layer(
        tmp_path,
        "bp",
        "l",
        env={
            "env/PLAIN": "plain\n",
            "env/OVR.override": "ovr",
            "env/DEF.default": "def",
            "env/KEEP.default": "not used",
            "env/PRE.prepend": "pre",
            "env/PRE.delim": ";",
            "env/APP.append": "app",
            "env/CAT.append": "cat",
            "env/JUNK.unknown": "junk",
            "env.build/PLAIN.override": "from env.build",
        },
    )
    env = BuildEnv({"OVR": "old", "KEEP": "kept", "PRE": "p0", "APP": "a0", "CAT": "c0", "DEF": ""})
    env.add_layers([lay])
    out = env.snapshot()
    assert out["PLAIN"] == "from env.build"
    assert out["OVR"] == "ovr"
    assert out["DEF"] == "def"
    assert out["KEEP"] == "kept"
    assert out["PRE"] == "pre;p0"
    assert out["APP"] == "a0app"  # append without .delim: plain concatenation
    assert out["CAT"] == "c0cat"
    assert "JUNK" not in out


def test_verbatim_trailing_newline(tmp_path: Path) -> None:
    """Item 27: contents are used verbatim."""
    lay = layer(tmp_path, "bp", "l", env={"env/V": "value\n"})
    env = BuildEnv({})
    env.add_layers([lay])
    assert env.snapshot()["V"] == "value\n"


def test_env_launch_is_not_a_build_env(tmp_path: Path) -> None:
    """§3.8: env.launch/ applies at launch only."""
    lay = layer(tmp_path, "bp", "l", env={"env.launch/ONLY_LAUNCH": "x"})
    env = BuildEnv({})
    env.add_layers([lay])
    assert "ONLY_LAUNCH" not in env.snapshot()


def test_paths_are_prepended_before_env_files(tmp_path: Path) -> None:
    """§3.9 step 2: the bin prepend happens first, so an env/PATH.override replaces it."""
    lay = layer(tmp_path, "bp", "l", "bin", env={"env/PATH.override": "/only"})
    assert [op.name for op in build_layer_ops(lay)] == ["PATH", "PATH"]
    env = BuildEnv({"PATH": "/bin"})
    env.add_layers([lay])
    assert env.snapshot()["PATH"] == "/only"


def test_snapshot_is_a_copy(tmp_path: Path) -> None:
    env = BuildEnv({"A": "1"})
    snap = env.snapshot()
    snap["A"] = "2"
    assert env.snapshot()["A"] == "1"


def test_symlinked_env_file_outside_the_layers_dir_is_refused(tmp_path: Path) -> None:
    """A buildpack must not make the lifecycle read host files into the env (docs/design.md §3 decision 1)."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret")
    layers = tmp_path / "layers"
    lay = layer(layers, "bp", "l", "env")
    os.symlink(secret, lay.host_dir / "env" / "STOLEN")
    env = BuildEnv({"PATH": "/bin"})
    with pytest.raises(SpecFileError, match="leads outside"):
        env.add_layers([lay], boundary=layers)
    assert env.snapshot() == {"PATH": "/bin"}


def test_symlinked_env_dir_outside_the_layers_dir_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "X").write_text("x")
    layers = tmp_path / "layers"
    lay = layer(layers, "bp", "l")
    os.symlink(outside, lay.host_dir / "env.build")
    with pytest.raises(SpecFileError, match=r"env\.build"):
        BuildEnv({}).add_layers([lay], boundary=layers)


def test_symlink_inside_the_layers_dir_is_followed(tmp_path: Path) -> None:
    layers = tmp_path / "layers"
    lay = layer(layers, "bp", "l", "env")
    (lay.host_dir / "value").write_text("inside")
    os.symlink("../value", lay.host_dir / "env" / "V")
    env = BuildEnv({})
    env.add_layers([lay], boundary=layers)
    assert env.snapshot()["V"] == "inside"


def test_check_confined(tmp_path: Path) -> None:
    inside = tmp_path / "root" / "a"
    inside.mkdir(parents=True)
    check_confined(inside, tmp_path / "root")
    check_confined(tmp_path / "root" / "missing", tmp_path / "root")
    with pytest.raises(SpecFileError):
        check_confined(tmp_path, tmp_path / "root")
