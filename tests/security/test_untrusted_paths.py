"""Threat: text from an app, a buildpack or an image names a host path (issue 9 item 1).

A buildpack's ``version`` becomes ``<buildpacks>/<escaped id>/<version>``, which ``cnb build`` used to remove and
replace: ``version = "/some/host/dir"`` deleted that host directory. Every way a buildpack.toml reaches cnb
(an app's project.toml, ``--buildpack DIR``, builder.toml, package.toml) must refuse such a value with one line
naming buildpack.toml and the key, and leave a marker directory at the named host path alone.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cnbplatform.errors import PhaseError
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.group import GroupFile
from cnbplatform.files.launch import LaunchToml
from cnbplatform.files.order import Order
from cnbplatform.files.project_toml import ProjectDescriptor
from cnbplatform.files.untrusted import UntrustedValueError, check_module_id, join
from cnbplatform.lifecycle.build.layers import process_layers
from cnbplatform.platform.build_workspace import copy_app, write_order
from tests.security.helpers import cnb, copy_of_home
from tests.support.builders import BUILDER

pytestmark = pytest.mark.integration

#: the TOML text of a bad version; ``{marker}`` is the marker dir's absolute path (the deep ``..`` reaches ``/``
#: from anywhere, so that one names the marker too)
BAD_VERSIONS = {
    "absolute": "{marker}",
    "dotdot": "../../x",
    "deep-dotdot": "../../../../../../../../../../../../../../..{marker}",
    "slash": "a/b",
    "nul": "a\\u0000b",
}
bad_versions = pytest.mark.parametrize("template", BAD_VERSIONS.values(), ids=BAD_VERSIONS.keys())


@pytest.fixture(scope="module")
def home(tiny_builder_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's CNB_HOME with the tiny builder, for this module's builds."""
    return copy_of_home(tiny_builder_home, tmp_path_factory, "untrusted-home")


def make_marker(tmp_path: Path) -> Path:
    marker = tmp_path / "host" / "precious"
    marker.mkdir(parents=True)
    (marker / "keep.txt").write_text("do not delete")
    return marker


def write_bad_buildpack(directory: Path, version_toml: str) -> Path:
    (directory / "bin").mkdir(parents=True)
    (directory / "buildpack.toml").write_text(
        f'api = "0.10"\n[buildpack]\nid = "evil/bp"\nversion = "{version_toml}"\n'
    )
    for name in ("detect", "build"):
        (directory / "bin" / name).write_text("#!/bin/sh\nexit 0\n")
        (directory / "bin" / name).chmod(0o755)
    return directory


def assert_refused(done: subprocess.CompletedProcess[str], marker: Path, home: Path) -> None:
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "buildpack.toml" in last and "'buildpack.version'" in last, done.stderr
    assert (marker / "keep.txt").read_text() == "do not delete"
    assert sorted(p.name for p in marker.iterdir()) == ["keep.txt"]  # nothing copied into it either
    assert not [p for p in home.rglob("x") if p.name == "x"], "a '../../x' dir was made inside CNB_HOME"


def _version(template: str, marker: Path) -> str:
    return template.format(marker=marker)


@bad_versions
def test_an_apps_project_toml_buildpack(home: Path, tmp_path: Path, template: str) -> None:
    marker = make_marker(tmp_path)
    app = tmp_path / "app"
    write_bad_buildpack(app / "bp", _version(template, marker))
    (app / "project.toml").write_text('[_]\nschema-version = "0.2"\n[[io.buildpacks.group]]\nuri = "bp"\n')
    (app / "Procfile").write_text("web: echo hi\n")
    done = cnb(home, "build", f"evil-app-{tmp_path.name}", "--builder", BUILDER, "--path", str(app))
    assert_refused(done, marker, home)


@bad_versions
def test_a_buildpack_flag_dir(home: Path, tmp_path: Path, template: str) -> None:
    marker = make_marker(tmp_path)
    bp = write_bad_buildpack(tmp_path / "bp", _version(template, marker))
    app = tmp_path / "app"
    app.mkdir()
    (app / "Procfile").write_text("web: echo hi\n")
    done = cnb(
        home, "build", f"evil-flag-{tmp_path.name}", "--builder", BUILDER, "--path", str(app), "--buildpack", str(bp)
    )
    assert_refused(done, marker, home)


@bad_versions
def test_a_builder_toml_buildpack(home: Path, tmp_path: Path, template: str) -> None:
    marker = make_marker(tmp_path)
    write_bad_buildpack(tmp_path / "bp", _version(template, marker))
    config = tmp_path / "builder.toml"
    config.write_text(
        '[[buildpacks]]\nuri = "bp"\n[[order]]\n[[order.group]]\nid = "evil/bp"\n'
        '[build]\nimage = "cnb/tiny-build"\n[[run.images]]\nimage = "cnb/tiny-run"\n'
    )
    done = cnb(home, "builder", "create", f"evil-builder-{tmp_path.name}", "--config", str(config))
    assert_refused(done, marker, home)


@bad_versions
def test_a_package_toml_buildpack(home: Path, tmp_path: Path, template: str) -> None:
    marker = make_marker(tmp_path)
    bp = write_bad_buildpack(tmp_path / "bp", _version(template, marker))
    (bp / "package.toml").write_text('[buildpack]\nuri = "."\n')
    out = tmp_path / "evil.cnb"
    done = cnb(home, "buildpack", "package", str(out), "--config", str(bp / "package.toml"))
    assert_refused(done, marker, home)
    assert not out.exists()


# -- the checks themselves, where the files are read -----------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "key"),
    [
        ('id = "../../x"\nscript = { api = "0.10", inline = "true" }', "'io.buildpacks.group[0].id'"),
        ('id = "a"\nversion = "/etc"', "'io.buildpacks.group[0].version'"),
        ('uri = "/etc"', "'io.buildpacks.group[0].uri'"),
        ('uri = "file:///etc"', "'io.buildpacks.group[0].uri'"),
        ('uri = "../outside"', "'io.buildpacks.group[0].uri'"),
        ('uri = "bp\\u0000"', "'io.buildpacks.group[0].uri'"),
    ],
)
def test_project_toml_group_entries_that_name_host_paths(tmp_path: Path, entry: str, key: str) -> None:
    path = tmp_path / "project.toml"
    path.write_text(f'[_]\nschema-version = "0.2"\n[[io.buildpacks.group]]\n{entry}\n')
    with pytest.raises(UntrustedValueError) as info:
        ProjectDescriptor.load(path)
    assert str(info.value).startswith(f"{path}: key {key}: ")


def test_a_project_toml_uri_through_a_symlink_that_leads_out_is_refused(home: Path, tmp_path: Path) -> None:
    outside = write_bad_buildpack(tmp_path / "elsewhere", "1.0.0")
    app = tmp_path / "app"
    app.mkdir()
    (app / "bp").symlink_to(outside)
    (app / "project.toml").write_text('[_]\nschema-version = "0.2"\n[[io.buildpacks.group]]\nuri = "bp"\n')
    done = cnb(home, "build", f"evil-link-{tmp_path.name}", "--builder", BUILDER, "--path", str(app))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "project.toml" in last and "leads outside" in last, done.stderr


def test_the_join_refuses_symlink_escapes_and_keeps_inner_links(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "inner").mkdir(parents=True)
    (root / "to-inner").symlink_to("inner")
    (root / "to-host").symlink_to("/etc")
    assert join(root, "to-inner", "x") == root / "to-inner" / "x"
    with pytest.raises(SpecFileError, match="leads outside"):
        join(root, "to-host", "passwd")
    with pytest.raises(SpecFileError, match=r"'\.\.'"):
        join(root, "inner/../../x")
    with pytest.raises(SpecFileError, match="absolute"):
        join(root, "/etc")


@pytest.mark.parametrize("good", ["a", "a/b", "under_score/x", "io.buildpacks.x-y"])
def test_ids_the_go_lifecycle_accepts(good: str) -> None:
    assert check_module_id(good) == good


def test_a_non_utf8_name_is_refused() -> None:
    name = os.fsdecode(b"layer-\xff")
    with pytest.raises(UntrustedValueError, match="not valid UTF-8"):
        join(Path("/tmp"), name)


# -- buildpack outputs and lifecycle files that name directories ------------------------------------------------


@pytest.mark.parametrize(
    ("toml_name", "problem"),
    [("..toml", "'.' is not allowed"), ("...toml", "'..' is not allowed"), (b"web\xff.toml", "not valid UTF-8")],
)
def test_a_layer_toml_whose_name_is_not_a_path_segment_fails_the_build(
    tmp_path: Path, toml_name: str | bytes, problem: str
) -> None:
    layers = tmp_path / "layers"
    bp_dir = layers / "evil_bp"
    bp_dir.mkdir(parents=True)
    with open(os.path.join(os.fsencode(bp_dir), os.fsencode(toml_name)), "w") as f:
        f.write("[types]\nlaunch = true\n")
    with pytest.raises(PhaseError) as info:
        process_layers(bp_dir, layers, buildpack="evil/bp@1")
    assert info.value.exit_code == 52 and "evil/bp@1" in info.value.message and problem in info.value.message
    assert sorted(os.listdir(layers)) == ["evil_bp"]  # nothing renamed to ".ignore" next to it


@pytest.mark.parametrize("ptype", ["..", ".", "a/b", "web\\u0000"])
def test_launch_toml_process_types_that_are_not_one_path_segment(ptype: str) -> None:
    text = f'[[processes]]\ntype = "{ptype}"\ncommand = ["true"]\n'
    with pytest.raises(SpecFileError, match=r"launch\.toml: key 'processes\[0\]\.type'"):
        LaunchToml.parse(text, "/layers/bp/launch.toml", api="0.12")


@pytest.mark.parametrize(("key", "value"), [("id", "../x"), ("id", "a//b"), ("version", "/etc"), ("version", "..")])
def test_group_toml_ids_and_versions_name_no_other_directory(key: str, value: str) -> None:
    entry = {"id": "a/b", "version": "1.0.0", "api": "0.12", key: value}
    text = "[[group]]\n" + "".join(f'{k} = "{v}"\n' for k, v in entry.items())
    with pytest.raises(UntrustedValueError, match=rf"group\.toml: key 'group\[0\]\.{key}'"):
        GroupFile.parse(text, "/layers/group.toml")


def test_the_app_copy_takes_files_and_links_only(tmp_path: Path) -> None:
    """An app dir is the user's, but may hold what no image should: FIFOs and sockets are left out (a build used
    to stop at them), a symlink to a host file stays a symlink, a name that is not UTF-8 is copied as it is."""
    import socket

    app = tmp_path / "app"
    app.mkdir()
    (app / "main.sh").write_text("echo hi\n")
    os.mkfifo(app / "fifo")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(app / "sock"))
        (app / "passwd").symlink_to("/etc/passwd")
        odd = os.path.join(os.fsencode(app), b"odd\xff")
        open(odd, "wb").close()
        out = tmp_path / "out"
        assert copy_app(app, out, None) == 3
    assert sorted(os.listdir(os.fsencode(out))) == [b"main.sh", b"odd\xff", b"passwd"]
    assert os.readlink(out / "passwd") == "/etc/passwd"


@pytest.mark.parametrize("builder", ["/home/someone/builder", "./b", "../b", "~/b", "a\\u0000"])
def test_an_apps_project_toml_names_a_builder_image_not_a_host_directory(tmp_path: Path, builder: str) -> None:
    path = tmp_path / "project.toml"
    path.write_text(f'[_]\nschema-version = "0.2"\n[io.buildpacks]\nbuilder = "{builder}"\n')
    with pytest.raises(UntrustedValueError) as info:
        ProjectDescriptor.load(path)
    assert str(info.value).startswith(f"{path}: key 'io.buildpacks.builder': ")


def test_a_project_toml_builder_that_exists_as_a_path_is_refused(home: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "project.toml").write_text('[_]\nschema-version = "0.2"\n[io.buildpacks]\nbuilder = "builders/tiny"\n')
    done = cnb(home, "build", f"evil-builder-{tmp_path.name.lower()}", "--path", str(app))  # cwd: the repo
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "names a path on this machine" in done.stderr


def test_the_order_cnb_writes_keeps_a_quoted_version_as_one_value(tmp_path: Path) -> None:
    """A version is one path segment but may hold quotes and newlines: order.toml must not let it add keys."""
    version = '1.0"\noptional = true\n[x]\na = "'
    write_order(tmp_path / "order.toml", [[("a/b", version, False)]])
    (entry,) = Order.load(tmp_path / "order.toml").groups[0].entries
    assert (entry.id, entry.version, entry.optional) == ("a/b", version, False)
