"""The exporter's building blocks (docs/spec-notes.md §6.1-§6.3, §6.7; §16 items 35-40, 46): slice globs and app layers,
launcher and process-types layers, reading buildpack layer dirs, the config rules, and what is read back from a
reused layer. Layers are written with cnb's tar writer and read back with plain ``tarfile``."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from cnbplatform.errors import PhaseError
from cnbplatform.files.analyzed import Analyzed, RunImageInfo
from cnbplatform.files.metadata import BuildMetadata, ProcessEntry
from cnbplatform.files.run_toml import RunConfig, RunImage
from cnbplatform.launcher import LAUNCHER_SCRIPT
from cnbplatform.lifecycle.common import RecordingReporter
from cnbplatform.lifecycle.export.config import (
    default_process,
    image_env,
    run_image_for_export,
)
from cnbplatform.lifecycle.export.layers import (
    FORBIDDEN_TYPE_CHARS,
    check_process_type,
    launcher_spec,
    process_types_spec,
    read_buildpack_dir,
)
from cnbplatform.lifecycle.export.reuse import launch_skeleton
from cnbplatform.lifecycle.export.slices import BadPatternError, app_layer_specs, compile_glob
from cnbplatform.oci.image import FileLayer
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import LayerSpec
from cnbplatform.oci.layers.tarlayer import write_tar
from cnbplatform.oci.model import Descriptor, created_time
from tests.lifecycle.export_helpers import GID, NODE, UID, write_files

MTIME = 315532801  # 1980-01-01T00:00:01Z


def members(spec: LayerSpec) -> list[tarfile.TarInfo]:
    out = io.BytesIO()
    write_tar(spec, out)
    out.seek(0)
    with tarfile.open(fileobj=out, mode="r") as tar:
        return tar.getmembers()


def names(spec: LayerSpec) -> list[str]:
    return [m.name.rstrip("/") for m in members(spec)]


# -- slice globs: Go filepath.Match semantics -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("*.txt", "a.txt", True),
        ("*.txt", "dir/a.txt", False),  # '*' never crosses '/'
        ("**/*.txt", "dir/a.txt", True),  # '**' is two '*'
        ("**/*.txt", "a.txt", False),
        ("dir/*", "dir/sub", True),
        ("dir/*", "dir/sub/deeper", False),
        ("?.md", "a.md", True),
        ("?", "/", False),
        ("[a-c]x", "bx", True),
        ("[a-c]x", "dx", False),
        ("[^a-c]x", "dx", True),
        ("[^a-c]x", "ax", False),
        ("\\*", "*", True),
        ("\\*", "a", False),
        (".hidden*", ".hidden-file", True),
        ("*", ".env", True),  # Go's Match has no dotfile rule
        ("./static/", "static", True),  # cleaned like filepath.Join
        ("a/../static", "static", True),
        ("/workspace/static/*", "static/x", True),  # absolute inside the app dir
        ("/elsewhere/*", "x", False),
        ("../*", "x", False),  # leads outside the app dir: matches nothing
        (".", "", True),  # the app dir itself
    ],
)
def test_slice_globs_follow_go_filepath_match(pattern: str, path: str, expected: bool) -> None:
    """§16 item 46: slice paths are Go globs relative to the app dir."""
    assert compile_glob(pattern, "/workspace").matches(path) is expected


@pytest.mark.parametrize("pattern", ["[", "[]", "a\\", "[a-", "[z-a]"])
def test_malformed_slice_globs_are_errors(pattern: str) -> None:
    with pytest.raises(BadPatternError):
        compile_glob(pattern, "/workspace")


# -- app layers -------------------------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Path:
    app = write_files(
        tmp_path / "app",
        {
            "index.js": b"1",
            "README.md": b"2",
            "static/a.css": b"3",
            "static/img/b.png": b"4",
            "static/img/c.txt": b"5",
            "docs/guide.txt": b"6",
        },
    )
    (app / "empty").mkdir()
    os.symlink("static", app / "link")
    return app


def test_n_slices_give_n_plus_one_layers_and_earlier_slices_win(app: Path) -> None:
    """§16 item 46: n slices ⇒ n+1 layers; a file matched by an earlier slice is absent from later ones; a matched
    directory takes its subtree; parents are added; entries are owned by uid:gid."""
    slices = [["static/img"], ["static", "*.md"], ["nothing/*"]]
    specs = app_layer_specs(app, slices, app_mount="/workspace", uid=UID, gid=GID)
    assert len(specs) == 4
    first, second, third, rest = (names(s) for s in specs)
    img = ["workspace/static/img", "workspace/static/img/b.png", "workspace/static/img/c.txt"]
    assert first == ["workspace", "workspace/static", *img]
    assert "workspace/static/a.css" in second and "workspace/README.md" in second
    assert not any(n.startswith("workspace/static/img") for n in second)
    assert third == []  # a slice that matches nothing is an empty layer
    remaining = [
        "workspace/index.js",
        "workspace/docs",
        "workspace/docs/guide.txt",
        "workspace/empty",
        "workspace/link",
    ]
    assert sorted(rest) == sorted(["workspace", *remaining])
    every = [n for s in (first, second, rest) for n in s if not n.endswith(("workspace", "static", "img"))]
    assert len(every) == len(set(every)), "a file must be in exactly one app layer"
    for spec in specs:
        for m in members(spec):
            assert (m.uid, m.gid) == (UID, GID)


def test_no_slices_is_one_app_layer_with_everything(app: Path) -> None:
    specs = app_layer_specs(app, [], app_mount="/workspace", uid=UID, gid=GID)
    assert len(specs) == 1
    got = names(specs[0])
    assert "workspace/static/img/c.txt" in got and "workspace/link" in got and "workspace/empty" in got


def test_a_glob_does_not_look_through_a_symlinked_directory(app: Path) -> None:
    specs = app_layer_specs(app, [["link/*"]], app_mount="/workspace", uid=UID, gid=GID)
    assert names(specs[0]) == []
    assert "workspace/link" in names(specs[1])


def test_sliced_app_layers_are_cacheable_and_change_with_the_patterns(app: Path, tmp_path: Path) -> None:
    """Slices get a select_key, so the layer cache recognises an unchanged app (DESIGN §3 decision 4)."""
    cache = LayerCache(tmp_path / "lc", racy_margin_ns=0)
    blobs = tmp_path / "blobs"
    specs = app_layer_specs(app, [["static"]], app_mount="/workspace", uid=UID, gid=GID)
    first = [cache.create(s, blobs).blob.diff_id for s in specs]
    again = app_layer_specs(app, [["static"]], app_mount="/workspace", uid=UID, gid=GID)
    results = [cache.create(s, blobs) for s in again]
    assert [r.blob.diff_id for r in results] == first
    assert all(r.outcome == "fingerprint" for r in results)
    other = app_layer_specs(app, [["docs"]], app_mount="/workspace", uid=UID, gid=GID)
    assert cache.create(other[0], blobs).blob.diff_id != first[0]


# -- launcher and process types ----------------------------------------------------------------------------------


def test_launcher_layer_is_root_owned_and_executable(tmp_path: Path) -> None:
    """§16 items 35, 36: /cnb/lifecycle/launcher 0755 0:0, normalised mtime, no uname/gname."""
    got = {m.name.rstrip("/"): m for m in members(launcher_spec(None))}
    assert list(got) == ["cnb", "cnb/lifecycle", "cnb/lifecycle/launcher"]
    for m in got.values():
        assert (m.uid, m.gid, m.mode, m.mtime, m.uname, m.gname) == (0, 0, 0o755, MTIME, "", "")
    binary = tmp_path / "my-launcher"
    binary.write_bytes(b"\x7fELF fake")
    binary.chmod(0o700)
    out = io.BytesIO()
    write_tar(launcher_spec(binary), out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        member = tar.getmember("cnb/lifecycle/launcher")
        assert member.mode == 0o755
        source = tar.extractfile(member)
        assert source is not None and source.read() == b"\x7fELF fake"
    assert LAUNCHER_SCRIPT.startswith(b"#!/bin/sh")


def test_process_types_layer_has_a_root_owned_symlink_per_type() -> None:
    """§16 items 36, 37: /cnb/process/<type> -> /cnb/lifecycle/launcher, 0:0."""
    got = {m.name.rstrip("/"): m for m in members(process_types_spec(["worker", "web", "web"]))}
    assert list(got) == ["cnb", "cnb/process", "cnb/process/web", "cnb/process/worker"]
    for name in ("cnb/process/web", "cnb/process/worker"):
        assert got[name].issym() and got[name].linkname == "/cnb/lifecycle/launcher"
    for m in got.values():
        assert (m.uid, m.gid, m.mtime, m.uname, m.gname) == (0, 0, MTIME, "", "")
    assert (got["cnb/process"].mode, got["cnb"].mode) == (0o755, 0o755)


@pytest.mark.parametrize("char", list(FORBIDDEN_TYPE_CHARS))
def test_process_types_with_forbidden_characters_fail(char: str) -> None:
    """§6.1 item 7: a type containing any of /><:|&\\ is an export error (exit 62)."""
    with pytest.raises(PhaseError) as info:
        check_process_type(f"we{char}b")
    assert info.value.exit_code == 62


# -- buildpack layer dirs ----------------------------------------------------------------------------------------


def test_layer_tomls_are_read_sorted_and_reserved_names_skipped(tmp_path: Path) -> None:
    bp_dir = tmp_path / "example_node"
    write_files(bp_dir, {"b.toml": b"[types]\nlaunch = true\n", "a.toml": b"[types]\ncache = true\n"})
    write_files(bp_dir, {"launch.toml": b"", "store.toml": b"[metadata]\nk = 'v'\n", "build.toml": b""})
    (bp_dir / "a").mkdir()
    got = read_buildpack_dir(tmp_path, NODE)
    assert [(layer.name, layer.dir is not None) for layer in got.layers] == [("a", True), ("b", False)]
    assert got.store == {"k": "v"}


def test_an_unparsable_layer_toml_fails_the_export(tmp_path: Path) -> None:
    """§6.7: any layer toml that fails to parse ⇒ export error."""
    write_files(tmp_path / "example_node", {"x.toml": b"launch = true\n"})
    with pytest.raises(PhaseError) as info:
        read_buildpack_dir(tmp_path, NODE)
    assert info.value.exit_code == 62 and "x.toml" in str(info.value)


def test_a_symlinked_layer_dir_is_refused(tmp_path: Path) -> None:
    write_files(tmp_path / "example_node", {"x.toml": b"[types]\nlaunch = true\n"})
    os.symlink("/etc", tmp_path / "example_node" / "x")
    with pytest.raises(PhaseError, match="not a directory"):
        read_buildpack_dir(tmp_path, NODE)


# -- config rules ------------------------------------------------------------------------------------------------


def test_created_is_normalised_or_source_date_epoch() -> None:
    """§16 item 40."""
    assert created_time(None) == "1980-01-01T00:00:01Z"
    assert created_time(1700000000) == "2023-11-14T22:13:20Z"


def test_env_adds_the_cnb_variables_and_prefixes_path() -> None:
    """§16 item 39: existing names are replaced in place, PATH starts with /cnb/process."""
    env = image_env(
        ["A=1", "PATH=/usr/bin:/bin", "CNB_APP_DIR=/old"], layers_mount="/l", app_mount="/w", platform_api="0.13"
    )
    assert env == (
        "A=1",
        "PATH=/cnb/process:/cnb/lifecycle:/usr/bin:/bin",
        "CNB_APP_DIR=/w",
        "CNB_LAYERS_DIR=/l",
        "CNB_PLATFORM_API=0.13",
        "CNB_DEPRECATION_MODE=quiet",
    )
    assert (
        image_env([], layers_mount="/l", app_mount="/w", platform_api="0.15")[-1] == "PATH=/cnb/process:/cnb/lifecycle"
    )


def test_default_process_rules() -> None:
    """§16 item 38: requested type, else the buildpack default, else none (launcher); unknown requested ⇒ 62."""
    web, worker = ProcessEntry("web", ("a",)), ProcessEntry("worker", ("b",))
    md = BuildMetadata(processes=(web, worker), default_process_type="web")
    reporter = RecordingReporter()
    assert default_process(md, "worker", reporter) == worker
    assert default_process(md, None, reporter) == web
    assert default_process(BuildMetadata(processes=(web,)), None, reporter) is None
    assert default_process(BuildMetadata(processes=(web,), default_process_type="gone"), None, reporter) is None
    assert any("gone" in w for w in reporter.warnings)
    with pytest.raises(PhaseError) as info:
        default_process(md, "nope", reporter)
    assert info.value.exit_code == 62


def test_run_image_label_names_come_from_run_toml() -> None:
    """§5.2: the run.toml entry naming the run image (as image or mirror), else the first entry."""
    config = RunConfig((RunImage("r/one:1", ("m/one:1",)), RunImage("r/two:2", ("m/two:2",))))
    analyzed = Analyzed(run_image=RunImageInfo(reference="x@sha256:" + "0" * 64, image="m/two:2"))
    assert run_image_for_export(config, analyzed, BuildMetadata()).image == "r/two:2"
    other = Analyzed(run_image=RunImageInfo(reference="y", image="else/where:1"))
    assert run_image_for_export(config, other, BuildMetadata()).mirrors == ("m/one:1",)
    # without run.toml the label names the run image as the platform chose it, so a rebase can find it again
    assert run_image_for_export(None, analyzed, BuildMetadata()).image == "m/two:2"
    assert run_image_for_export(None, Analyzed(), BuildMetadata()).image == ""


# -- reused layers -----------------------------------------------------------------------------------------------


def test_launch_skeleton_recreates_what_the_launch_env_compiler_reads(tmp_path: Path) -> None:
    """§6.7 / DESIGN §3 decision 3: a reused layer's env files, bin/lib and exec.d names come back."""
    layer_dir = write_files(
        tmp_path / "node",
        {
            "env.launch/GREETING": b"hi",
            "env/PATH.prepend": b"/x",
            "env.launch/web/ONLY_WEB": b"1",
            "bin/node": b"#!/bin/sh\n",
            "exec.d/setup": b"#!/bin/sh\n",
            "big/data.bin": b"x" * 1000,
        },
    )
    (layer_dir / "lib").mkdir()
    blob = LayerCache(tmp_path / "lc").create_layer(
        layer_dir, prefix="/layers/example_node/node", uid=UID, gid=GID, blobs_dir=tmp_path / "blobs"
    )
    layer = FileLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, blob.path)
    out = launch_skeleton(layer, "/layers/example_node/node", tmp_path / "skeleton")
    assert (out / "env.launch" / "GREETING").read_bytes() == b"hi"
    assert (out / "env" / "PATH.prepend").read_bytes() == b"/x"
    assert (out / "env.launch" / "web" / "ONLY_WEB").read_bytes() == b"1"
    assert (out / "bin").is_dir() and (out / "lib").is_dir()
    assert (out / "exec.d" / "setup").exists()
    assert not (out / "big").exists()
