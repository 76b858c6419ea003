"""metadata.toml, analyzed.toml, report.toml, project-metadata.toml (docs/spec-notes.md §5.1, §5.3, §5.4; §16 item 30)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from cnbplatform.files import analyzed, report
from cnbplatform.files.analyzed import Analyzed, ImageIdentifier, RunImageInfo, TargetInfo
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.labels import BuildMetadataLabel, LauncherInfo
from cnbplatform.files.launch import Label, Process, Slice
from cnbplatform.files.layer_toml import LayerToml, LayerTypes
from cnbplatform.files.layers_metadata import (
    BuildpackLayers,
    LayerEntry,
    LayersMetadata,
    RunImageForRebase,
    RunImageRef,
)
from cnbplatform.files.metadata import BuildMetadata, BuildpackRef, ProcessEntry
from cnbplatform.files.project_metadata import ProjectMetadata, ProjectSource
from cnbplatform.files.report import Report

# -- metadata.toml ------------------------------------------------------------------------------------------------


def sample_build_metadata() -> BuildMetadata:
    return BuildMetadata(
        buildpacks=(BuildpackRef("example/node", "1.2.3", "0.12", "https://node"), BuildpackRef("b/x", "0.1", "0.8")),
        extensions=(BuildpackRef("example/apt", "0.1.0", "0.12"),),
        labels=(Label("org.example", "v"),),
        processes=(
            ProcessEntry("worker", ("./work",), (), True, "b/x"),
            ProcessEntry(
                "web", ("node", "s.js"), ("--port", "8080"), True, "example/node", "/workspace/sub", ("prod",)
            ),
            ProcessEntry("admin", ("bash -c x",), (), False, "b/x"),
        ),
        slices=(Slice(("static/*",)),),
        default_process_type="web",
    )


def test_metadata_toml_sorts_processes_and_round_trips(tmp_path: Path) -> None:
    md = sample_build_metadata()
    path = tmp_path / "config" / "metadata.toml"
    md.dump(path)
    data = tomllib.loads(path.read_text())
    assert [p["type"] for p in data["processes"]] == ["admin", "web", "worker"]
    assert data["buildpack-default-process-type"] == "web"
    assert data["buildpacks"][0] == {
        "id": "example/node",
        "version": "1.2.3",
        "api": "0.12",
        "homepage": "https://node",
    }
    assert data["extensions"] == [{"id": "example/apt", "version": "0.1.0", "api": "0.12"}]
    web = data["processes"][1]
    assert web == {
        "type": "web",
        "command": ["node", "s.js"],
        "args": ["--port", "8080"],
        "direct": True,
        "buildpack-id": "example/node",
        "working-dir": "/workspace/sub",
        "exec-env": ["prod"],
    }
    admin = data["processes"][0]
    assert "working-dir" not in admin and "exec-env" not in admin and "default" not in admin
    assert BuildMetadata.load(path) == md.sorted()
    assert BuildMetadata.load(path).process("web") == md.processes[1]


def test_metadata_toml_reads_legacy_string_command() -> None:
    text = '[[processes]]\ntype = "web"\ncommand = "node"\nargs = ["s.js"]\ndirect = false\nbuildpack-id = "a"\n'
    md = BuildMetadata.parse(text, "metadata.toml")
    assert md.processes[0].command == ("node",)
    assert md.processes[0].direct is False


def test_metadata_toml_errors_name_file_and_key() -> None:
    with pytest.raises(SpecFileError, match=r"metadata\.toml: key 'processes\[0\]\.command': required"):
        BuildMetadata.parse('[[processes]]\ntype = "web"\n', "metadata.toml")
    with pytest.raises(SpecFileError, match=r"metadata\.toml: key 'buildpacks\[0\]\.id': required"):
        BuildMetadata.parse('[[buildpacks]]\nversion = "1"\n', "metadata.toml")


def test_process_entry_from_launch_process() -> None:
    proc = Process("web", ("node",), ("a",), True, True, "/w", ("prod",))
    entry = ProcessEntry.from_process(proc, "example/node")
    assert entry == ProcessEntry("web", ("node",), ("a",), True, "example/node", "/w", ("prod",))


# -- analyzed.toml ------------------------------------------------------------------------------------------------

ANALYZED = """
[image]
reference = "registry/app@sha256:aaa"
[run-image]
reference = "registry/run@sha256:bbb"
image = "registry/run:jammy"
extend = true
[run-image.target]
id = "io.example.base"
os = "linux"
arch = "arm64"
arch-variant = "v8"
[run-image.target.distro]
name = "ubuntu"
version = "22.04"
[build-image]
reference = "registry/build@sha256:ccc"
[metadata]
app = [{sha = "sha256:a1"}, {sha = "sha256:a2"}]
[metadata.sbom]
sha = "sha256:sb"
[metadata.config]
sha = "sha256:cf"
[metadata.launcher]
sha = "sha256:la"
[metadata.process-types]
sha = "sha256:pt"
[metadata.run-image]
top-layer = "sha256:top"
reference = "registry/run@sha256:bbb"
image = "registry/run:jammy"
mirrors = ["mirror/run:jammy"]
[metadata.stack.run-image]
image = "registry/run:jammy"
mirrors = ["mirror/run:jammy"]
[[metadata.buildpacks]]
key = "example/node"
version = "1.2.3"
[metadata.buildpacks.store.metadata]
k = "v"
[metadata.buildpacks.layers.node]
sha = "sha256:n1"
build = false
launch = true
cache = true
[metadata.buildpacks.layers.node.metadata]
version = "18.1"
"""


def expected_layers_metadata() -> LayersMetadata:
    return LayersMetadata(
        app=("sha256:a1", "sha256:a2"),
        sbom="sha256:sb",
        config="sha256:cf",
        launcher="sha256:la",
        process_types="sha256:pt",
        buildpacks=(
            BuildpackLayers(
                key="example/node",
                version="1.2.3",
                layers={"node": LayerEntry("sha256:n1", {"version": "18.1"}, build=False, launch=True, cache=True)},
                store={"k": "v"},
            ),
        ),
        run_image=RunImageForRebase(
            "sha256:top", "registry/run@sha256:bbb", "registry/run:jammy", ("mirror/run:jammy",)
        ),
        stack=RunImageRef("registry/run:jammy", ("mirror/run:jammy",)),
    )


def test_analyzed_parses_lc_keys(tmp_path: Path) -> None:
    analyzed = Analyzed.load(_write(tmp_path, ANALYZED))
    assert analyzed.previous_image == ImageIdentifier("registry/app@sha256:aaa")
    assert analyzed.previous_image_ref == "registry/app@sha256:aaa"
    assert analyzed.run_image == RunImageInfo(
        reference="registry/run@sha256:bbb",
        image="registry/run:jammy",
        extend=True,
        target=TargetInfo("linux", "arm64", "v8", "ubuntu", "22.04", "io.example.base"),
    )
    assert analyzed.build_image == ImageIdentifier("registry/build@sha256:ccc")
    assert analyzed.metadata == expected_layers_metadata()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "analyzed.toml"
    path.write_text(text)
    return path


def test_analyzed_round_trip_keeps_toml_key_names(tmp_path: Path) -> None:
    analyzed = Analyzed.load(_write(tmp_path, ANALYZED))
    out = tmp_path / "out.toml"
    analyzed.dump(out)
    data = tomllib.loads(out.read_text())
    md = data["metadata"]
    assert md["run-image"]["top-layer"] == "sha256:top"
    assert "runImage" not in md and "topLayer" not in md["run-image"]
    assert md["buildpacks"][0]["layers"]["node"]["metadata"] == {"version": "18.1"}
    assert "data" not in md["buildpacks"][0]["layers"]["node"]
    assert md["stack"]["run-image"]["mirrors"] == ["mirror/run:jammy"]
    assert data["run-image"]["target"]["arch-variant"] == "v8"
    assert Analyzed.load(out) == analyzed


def test_analyzed_reads_variant_too() -> None:
    text = '[run-image]\nreference = "r"\n[run-image.target]\nos = "linux"\narch = "arm"\nvariant = "v7"\n'
    analyzed = Analyzed.parse(text, "analyzed.toml")
    assert analyzed.run_image is not None and analyzed.run_image.target is not None
    assert analyzed.run_image.target.arch_variant == "v7"
    assert analyzed.run_image.target.distro_name == ""


def test_minimal_analyzed(tmp_path: Path) -> None:
    analyzed = Analyzed(previous_image=ImageIdentifier(""), run_image=RunImageInfo(reference="r@sha256:1"))
    analyzed.dump(tmp_path / "a.toml")
    data = tomllib.loads((tmp_path / "a.toml").read_text())
    assert data["image"] == {"reference": ""}
    assert data["run-image"] == {"reference": "r@sha256:1"}
    assert "build-image" not in data
    reread = Analyzed.load(tmp_path / "a.toml")
    assert reread == analyzed
    assert reread.metadata.sbom is None and reread.metadata.for_buildpack("x") is None
    assert Analyzed().previous_image_ref == "" and Analyzed().run_image_ref == ""


def test_analyzed_empty_sha_means_none() -> None:
    analyzed = Analyzed.parse('[metadata.config]\nsha = ""\n', "analyzed.toml")
    assert analyzed.metadata.config is None


def test_analyzed_errors_name_file_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "[metadata.run-image]\ntop-layer = 5\n")
    with pytest.raises(SpecFileError, match=r"analyzed\.toml: key 'metadata\.run-image\.top-layer': expected a string"):
        Analyzed.load(path)
    path = _write(tmp_path, "[[metadata.buildpacks]]\nkey = 'a'\n[metadata.buildpacks.layers]\nnode = 1\n")
    with pytest.raises(SpecFileError, match=r"key 'metadata\.buildpacks\[0\]\.layers\.node': expected a table"):
        Analyzed.load(path)


def test_layer_entry_and_layer_toml_convert() -> None:
    toml = LayerToml(LayerTypes(launch=True, cache=True), {"v": 1}, ("production",))
    entry = LayerEntry.from_layer_toml(toml, "sha256:x")
    assert entry == LayerEntry("sha256:x", {"v": 1, "exec-env": ["production"]}, build=False, launch=True, cache=True)
    back = entry.to_layer_toml()
    assert back.types == toml.types and back.exec_env == ("production",)


# -- report.toml / project-metadata.toml --------------------------------------------------------------------------


def test_report_round_trip(tmp_path: Path) -> None:
    report = Report(tags=("r/app:latest", "r/app:v1"), digest="sha256:d", manifest_size=1234)
    report.dump(tmp_path / "report.toml")
    data = tomllib.loads((tmp_path / "report.toml").read_text())
    assert data == {"image": {"tags": ["r/app:latest", "r/app:v1"], "digest": "sha256:d", "manifest-size": 1234}}
    assert Report.load(tmp_path / "report.toml") == report
    daemon = Report(tags=("app",), image_id="sha256:i")
    assert daemon.to_dict() == {"image": {"tags": ["app"], "image-id": "sha256:i"}}


def test_report_ignores_legacy_build_table_and_checks_types() -> None:
    assert Report.parse('[image]\ntags = ["a"]\n[build]\nbom = []\n').tags == ("a",)
    with pytest.raises(SpecFileError, match=r"report\.toml: key 'image\.manifest-size': expected an integer"):
        Report.parse('[image]\nmanifest-size = "12"\n', "report.toml")


def test_project_metadata_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "project-metadata.toml"
    path.write_text('[source]\ntype = "git"\n[source.version]\ncommit = "abc"\n[source.metadata]\nrepo = "r"\n')
    pm = ProjectMetadata.load(path)
    assert pm.source == ProjectSource("git", {"commit": "abc"}, {"repo": "r"})
    pm.dump(tmp_path / "out.toml")
    assert ProjectMetadata.load(tmp_path / "out.toml") == pm
    assert ProjectMetadata.load(tmp_path / "missing.toml", missing_ok=True) == ProjectMetadata()
    assert ProjectMetadata().to_dict() == {}
    with pytest.raises(SpecFileError, match=r"key 'source\.type': expected a string"):
        ProjectMetadata.parse("[source]\ntype = 1\n", "project-metadata.toml")


# -- where the types live ---------------------------------------------------------------------------------------


def test_moved_types_stay_importable_from_their_old_modules() -> None:
    """The label's value types moved to layers_metadata.py and project-metadata.toml's to project_metadata.py;
    analyzed.py re-exports the former, report.py hands out the latter on first use."""
    assert (analyzed.LayerEntry, analyzed.BuildpackLayers, analyzed.LayersMetadata) == (
        LayerEntry,
        BuildpackLayers,
        LayersMetadata,
    )
    assert (analyzed.RunImageRef, analyzed.RunImageForRebase) == (RunImageRef, RunImageForRebase)
    assert (report.ProjectMetadata, report.ProjectSource) == (ProjectMetadata, ProjectSource)
    with pytest.raises(AttributeError, match="Nothing"):
        _ = report.Nothing


# -- the forms of Platform API < 0.10 (https://github.com/buildpacks/spec/blob/platform/v0.9/platform.md) --------

OLD_FORM = BuildMetadata(
    buildpacks=(BuildpackRef("bp/a", "1.0.0", "0.9"),),
    processes=(ProcessEntry("web", ("node", "server.js", "--prod"), ("--port", "80"), True, "bp/a"),),
    bom=({"name": "dep", "metadata": {"version": "1"}, "buildpack": {"id": "bp/a", "version": "1.0.0"}},),
)


@pytest.mark.parametrize(
    ("api", "command", "args", "bom"),
    [
        ("0.8", "node", ["server.js", "--prod", "--port", "80"], True),
        ("0.9", "node", ["server.js", "--prod", "--port", "80"], False),
        ("0.10", ["node", "server.js", "--prod"], ["--port", "80"], False),
    ],
)
def test_metadata_toml_per_platform_api(tmp_path: Path, api: str, command: object, args: list[str], bom: bool) -> None:
    path = tmp_path / "metadata.toml"
    OLD_FORM.dump(path, api)
    written = tomllib.loads(path.read_text())
    assert written["processes"][0]["command"] == command
    assert written["processes"][0]["args"] == args
    assert ("bom" in written) == bom
    back = BuildMetadata.load(path)  # both forms read back
    assert back.processes[0].command[0] == "node"
    assert back.bom == (OLD_FORM.bom if bom else ())


def test_build_metadata_label_per_platform_api() -> None:
    no_bom = BuildMetadata(processes=OLD_FORM.processes, buildpacks=OLD_FORM.buildpacks)
    old = BuildMetadataLabel.from_build_metadata(no_bom, LauncherInfo(), "0.8").to_json_dict()
    assert old["bom"] is None  # below 0.9 the key is there, null without entries (LC's json:"bom")
    assert old["processes"][0]["command"] == "node"
    assert old["processes"][0]["args"] == ["server.js", "--prod", "--port", "80"]
    assert "bom" not in BuildMetadataLabel.from_build_metadata(OLD_FORM, LauncherInfo(), "0.9").to_json_dict()
    new = BuildMetadataLabel.from_build_metadata(OLD_FORM, LauncherInfo(), "0.10").to_json_dict()
    assert new["processes"][0]["command"] == ["node", "server.js", "--prod"]
    assert new["processes"][0]["args"] == ["--port", "80"]
