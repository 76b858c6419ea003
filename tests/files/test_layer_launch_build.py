"""Layer tomls, launch.toml, build.toml and store.toml (docs/spec-notes.md §3.4 to §3.6; §16 items 24, 28, 29, 50)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cnbplatform.files.build_toml import BuildToml, StoreToml
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.launch import BomEntry, Label, LaunchToml, Process, Slice
from cnbplatform.files.layer_toml import LayerToml, LayerTypes


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# -- layer toml -----------------------------------------------------------------------------------------------


def test_layer_toml_round_trip(tmp_path: Path) -> None:
    path = write(
        tmp_path / "node.toml",
        '[types]\nlaunch = true\ncache = true\n[metadata]\nversion = "18.1"\nexec-env = ["production"]\n',
    )
    layer = LayerToml.load(path)
    assert layer.types == LayerTypes(launch=True, build=False, cache=True)
    assert layer.metadata["version"] == "18.1"
    assert layer.exec_env == ("production",)
    out = tmp_path / "out.toml"
    layer.dump(out)
    assert LayerToml.load(out) == layer
    assert tomllib.loads(out.read_text())["types"] == {"launch": True, "build": False, "cache": True}


def test_layer_toml_without_types_is_all_false(tmp_path: Path) -> None:
    layer = LayerToml.load(write(tmp_path / "x.toml", '[metadata]\nk = "v"\n'))
    assert layer.types == LayerTypes()
    assert not layer.types.any


def test_missing_layer_toml_with_missing_ok(tmp_path: Path) -> None:
    assert LayerToml.load(tmp_path / "nope.toml", missing_ok=True) == LayerToml()
    with pytest.raises(SpecFileError, match=r"nope\.toml"):
        LayerToml.load(tmp_path / "nope.toml")


@pytest.mark.parametrize("flag", ["launch", "build", "cache"])
def test_flags_at_top_level_are_refused(tmp_path: Path, flag: str) -> None:
    path = write(tmp_path / "bad.toml", f"{flag} = true\n[metadata]\n")
    with pytest.raises(SpecFileError) as info:
        LayerToml.load(path)
    message = str(info.value)
    assert str(path) in message
    assert f"'{flag}'" in message
    assert "[types]" in message
    assert info.value.key == flag


def test_layer_toml_wrong_types_names_key(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.toml", '[types]\nlaunch = "yes"\n')
    with pytest.raises(SpecFileError, match=r"bad\.toml: key 'types\.launch': expected a boolean"):
        LayerToml.load(path)
    path = write(tmp_path / "bad2.toml", "[metadata]\nexec-env = [1]\n")
    with pytest.raises(SpecFileError, match=r"bad2\.toml: key 'metadata\.exec-env\[0\]'"):
        LayerToml.load(path)


def test_restored_dump_has_only_metadata(tmp_path: Path) -> None:
    layer = LayerToml(LayerTypes(launch=True, build=True, cache=True), {"version": "1"}, ("production",))
    out = tmp_path / "restored.toml"
    layer.dump_restored(out)
    data = tomllib.loads(out.read_text())
    assert data == {"metadata": {"version": "1", "exec-env": ["production"]}}
    reread = LayerToml.load(out)
    assert reread.types == LayerTypes()
    assert reread.exec_env == ("production",)


# -- launch.toml ----------------------------------------------------------------------------------------------

MODERN = """
[[labels]]
key = "org.example.x"
value = "y"
[[processes]]
type = "web"
command = ["node", "server.js"]
args = ["--port", "8080"]
default = true
working-dir = "/workspace/sub"
exec-env = ["production"]
[[processes]]
type = "worker.v1_x-y"
command = ["./work"]
[[slices]]
paths = ["static/*", "*.css"]
"""


@pytest.mark.parametrize("api", ["0.9", "0.10", "0.12"])
def test_launch_toml_modern(tmp_path: Path, api: str) -> None:
    launch = LaunchToml.load(write(tmp_path / "launch.toml", MODERN), api=api)
    assert launch.labels == (Label("org.example.x", "y"),)
    web, worker = launch.processes
    assert web == Process(
        type="web",
        command=("node", "server.js"),
        args=("--port", "8080"),
        direct=True,
        default=True,
        working_dir="/workspace/sub",
        exec_env=("production",),
    )
    assert worker.command == ("./work",) and worker.direct and not worker.default
    assert launch.slices == (Slice(("static/*", "*.css")),)
    assert launch.default_process == web
    out = tmp_path / "out.toml"
    launch.dump(out, api=api)
    assert LaunchToml.load(out, api=api) == launch


@pytest.mark.parametrize("api", ["0.7", "0.8"])
def test_launch_toml_legacy_string_command_and_direct(tmp_path: Path, api: str) -> None:
    text = """
[[processes]]
type = "web"
command = "node server.js"
args = ["--x"]
[[processes]]
type = "direct"
command = "/bin/app"
direct = true
"""
    launch = LaunchToml.load(write(tmp_path / "launch.toml", text), api=api)
    web, direct = launch.processes
    assert web.command == ("node server.js",) and web.direct is False and web.args == ("--x",)
    assert direct.command == ("/bin/app",) and direct.direct is True
    out = tmp_path / "out.toml"
    launch.dump(out, api=api)
    assert LaunchToml.load(out, api=api) == launch


def test_legacy_array_command_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "launch.toml", '[[processes]]\ntype = "web"\ncommand = ["a"]\n')
    with pytest.raises(SpecFileError, match=r"launch\.toml: key 'processes\[0\]\.command': expected a string"):
        LaunchToml.load(path, api="0.8")


def test_modern_string_command_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "launch.toml", '[[processes]]\ntype = "web"\ncommand = "node server.js"\n')
    with pytest.raises(SpecFileError, match=r"launch\.toml: key 'processes\[0\]\.command': expected an array"):
        LaunchToml.load(path, api="0.9")


def test_modern_direct_key_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "launch.toml", '[[processes]]\ntype = "web"\ncommand = ["a"]\ndirect = true\n')
    with pytest.raises(SpecFileError, match=r"launch\.toml: key 'processes\[0\]\.direct': not allowed"):
        LaunchToml.load(path, api="0.12")
    # the same file is fine for a 0.8 buildpack once the command is a string
    legacy = write(tmp_path / "legacy.toml", '[[processes]]\ntype = "web"\ncommand = "a"\ndirect = true\n')
    assert LaunchToml.load(legacy, api="0.8").processes[0].direct is True


def test_two_defaults_are_refused(tmp_path: Path) -> None:
    text = (
        '[[processes]]\ntype = "a"\ncommand = ["a"]\ndefault = true\n'
        '[[processes]]\ntype = "b"\ncommand = ["b"]\ndefault = true\n'
    )
    path = write(tmp_path / "launch.toml", text)
    with pytest.raises(SpecFileError) as info:
        LaunchToml.load(path, api="0.10")
    assert str(path) in str(info.value)
    assert info.value.key == "processes[1].default"


def test_duplicate_process_type_is_refused(tmp_path: Path) -> None:
    text = '[[processes]]\ntype = "a"\ncommand = ["a"]\n[[processes]]\ntype = "a"\ncommand = ["b"]\n'
    with pytest.raises(SpecFileError, match=r"key 'processes\[1\]\.type': process type 'a' is declared more"):
        LaunchToml.parse(text, "launch.toml", api="0.10")


@pytest.mark.parametrize("bad", ["web/x", "a b", "", "we:b", "ü"])
def test_invalid_process_type_is_refused(bad: str) -> None:
    text = f'[[processes]]\ntype = "{bad}"\ncommand = ["a"]\n'
    with pytest.raises(SpecFileError, match=r"launch\.toml: key 'processes\[0\]\.type': invalid process type"):
        LaunchToml.parse(text, "launch.toml", api="0.10")


def test_missing_command_and_empty_command(tmp_path: Path) -> None:
    with pytest.raises(SpecFileError, match=r"key 'processes\[0\]\.command': required"):
        LaunchToml.parse('[[processes]]\ntype = "a"\n', "launch.toml", api="0.10")
    with pytest.raises(SpecFileError, match=r"key 'processes\[0\]\.command': expected a non-empty array"):
        LaunchToml.parse('[[processes]]\ntype = "a"\ncommand = []\n', "launch.toml", api="0.10")


def test_labels_need_key_and_value() -> None:
    with pytest.raises(SpecFileError, match=r"launch\.toml: key 'labels\[0\]\.value': required"):
        LaunchToml.parse('[[labels]]\nkey = "k"\n', "launch.toml", api="0.10")


def test_working_dir_ignored_before_api_0_8() -> None:
    text = '[[processes]]\ntype = "a"\ncommand = "a"\nworking-dir = "/x"\n'
    launch = LaunchToml.parse(text, "launch.toml", api="0.7")
    assert launch.processes[0].working_dir == ""
    assert any("working-dir" in w for w in launch.warnings)
    assert LaunchToml.parse(text, "launch.toml", api="0.8").processes[0].working_dir == "/x"


def test_bom_entries() -> None:
    launch = LaunchToml.parse('[[bom]]\nname = "node"\n[bom.metadata]\nversion = "18"\n', "l.toml", api="0.10")
    assert launch.bom == (BomEntry("node", {"version": "18"}),)
    assert launch.warnings
    with pytest.raises(SpecFileError, match=r"key 'bom\[0\]\.version': a top-level version"):
        LaunchToml.parse('[[bom]]\nname = "node"\nversion = "18"\n', "l.toml", api="0.10")


def test_invalid_api_is_refused() -> None:
    with pytest.raises(SpecFileError, match="invalid buildpack API"):
        LaunchToml.parse("", "launch.toml", api="zero.nine")


def test_missing_launch_toml(tmp_path: Path) -> None:
    assert LaunchToml.load(tmp_path / "launch.toml", api="0.10", missing_ok=True) == LaunchToml()


def test_legacy_dump_moves_extra_command_entries_to_args(tmp_path: Path) -> None:
    launch = LaunchToml(processes=(Process("web", ("node", "s.js"), ("--x",), direct=True),))
    launch.dump(tmp_path / "l.toml", api="0.8")
    data = tomllib.loads((tmp_path / "l.toml").read_text())
    assert data["processes"][0] == {"type": "web", "command": "node", "args": ["s.js", "--x"], "direct": True}


# -- build.toml / store.toml ----------------------------------------------------------------------------------


def test_build_toml_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path / "build.toml", '[[unmet]]\nname = "npm"\n[[unmet]]\nname = "yarn"\n')
    build = BuildToml.load(path)
    assert build.unmet == ("npm", "yarn")
    build.dump(tmp_path / "out.toml")
    assert BuildToml.load(tmp_path / "out.toml") == build
    assert BuildToml.load(tmp_path / "missing.toml", missing_ok=True) == BuildToml()


def test_build_toml_unmet_needs_a_name(tmp_path: Path) -> None:
    path = write(tmp_path / "build.toml", "[[unmet]]\n")
    with pytest.raises(SpecFileError, match=r"build\.toml: key 'unmet\[0\]\.name': required"):
        BuildToml.load(path)
    path = write(tmp_path / "build.toml", '[[unmet]]\nname = ""\n')
    with pytest.raises(SpecFileError, match=r"build\.toml: key 'unmet\[0\]\.name': must not be empty"):
        BuildToml.load(path)


def test_store_toml_round_trip(tmp_path: Path) -> None:
    store = StoreToml({"k": "v", "nested": {"n": 1}})
    store.dump(tmp_path / "store.toml")
    assert StoreToml.load(tmp_path / "store.toml") == store
    bad = write(tmp_path / "bad.toml", 'metadata = "x"\n')
    with pytest.raises(SpecFileError, match=r"bad\.toml: key 'metadata': expected a table"):
        StoreToml.load(bad)
