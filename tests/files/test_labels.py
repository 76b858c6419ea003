"""Image labels and cache metadata JSON with LC field names (docs/spec-notes.md §6.4 to §6.6, §7.1; §16 item 41)."""

from __future__ import annotations

import datetime
import json
from dataclasses import FrozenInstanceError, replace

import pytest

from cnbplatform.files.common import SpecFileError
from cnbplatform.files.labels import (
    BASE_LABEL_PREFIX,
    BUILD_METADATA_LABEL,
    CACHE_METADATA_LABEL,
    EXEC_ENV_LABEL,
    LIFECYCLE_METADATA_LABEL,
    PROJECT_METADATA_LABEL,
    REBASABLE_LABEL,
    STACK_ID_LABEL,
    BuildMetadataLabel,
    CacheMetadata,
    LauncherInfo,
    LifecycleMetadata,
    ProjectMetadataLabel,
)
from cnbplatform.files.launch import Label, Slice
from cnbplatform.files.layers_metadata import (
    BuildpackLayers,
    LayerEntry,
    LayersMetadata,
    RunImageForRebase,
    RunImageRef,
)
from cnbplatform.files.metadata import BuildMetadata, BuildpackRef, ProcessEntry
from cnbplatform.files.project_metadata import ProjectMetadata, ProjectSource


def test_label_names() -> None:
    assert LIFECYCLE_METADATA_LABEL == "io.buildpacks.lifecycle.metadata"
    assert BUILD_METADATA_LABEL == "io.buildpacks.build.metadata"
    assert PROJECT_METADATA_LABEL == "io.buildpacks.project.metadata"
    assert CACHE_METADATA_LABEL == "io.buildpacks.lifecycle.cache.metadata"
    assert REBASABLE_LABEL == "io.buildpacks.rebasable"
    assert EXEC_ENV_LABEL == "io.buildpacks.exec-env"
    assert STACK_ID_LABEL == "io.buildpacks.stack.id"
    assert BASE_LABEL_PREFIX == "io.buildpacks.base."


def sample_lifecycle() -> LifecycleMetadata:
    return LifecycleMetadata(
        app=("sha256:a1", "sha256:a2"),
        sbom="sha256:sb",
        config="sha256:cf",
        launcher="sha256:la",
        process_types="sha256:pt",
        buildpacks=(
            BuildpackLayers(
                "example/node",
                "1.2.3",
                {"node": LayerEntry("sha256:n", {"version": "18.1"}, build=False, launch=True, cache=True)},
                store={"k": "v"},
            ),
            BuildpackLayers("example/empty", "0.1"),
        ),
        run_image=RunImageForRebase("sha256:top", "r/run@sha256:b", "r/run:jammy", ("m/run:jammy",)),
        stack=RunImageRef("r/run:jammy", ("m/run:jammy",)),
    )


def test_lifecycle_metadata_json_uses_lc_field_names() -> None:
    data = json.loads(sample_lifecycle().to_json())
    assert data["app"] == [{"sha": "sha256:a1"}, {"sha": "sha256:a2"}]
    assert data["sbom"] == {"sha": "sha256:sb"}
    assert data["process-types"] == {"sha": "sha256:pt"}
    assert data["runImage"] == {
        "topLayer": "sha256:top",
        "reference": "r/run@sha256:b",
        "image": "r/run:jammy",
        "mirrors": ["m/run:jammy"],
    }
    assert data["stack"] == {"runImage": {"image": "r/run:jammy", "mirrors": ["m/run:jammy"]}}
    node = data["buildpacks"][0]
    assert node["key"] == "example/node"
    assert node["layers"]["node"] == {
        "sha": "sha256:n",
        "data": {"version": "18.1"},
        "build": False,
        "launch": True,
        "cache": True,
    }
    assert node["store"] == {"metadata": {"k": "v"}}
    assert data["buildpacks"][1] == {"key": "example/empty", "version": "0.1", "layers": {}}
    assert "run-image" not in data


def test_lifecycle_metadata_json_is_canonical_and_round_trips() -> None:
    md = sample_lifecycle()
    text = md.to_json()
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert LifecycleMetadata.from_json_strict(text) == md
    assert LifecycleMetadata.from_json(text) == md


def test_lifecycle_metadata_without_optional_layers() -> None:
    data = json.loads(LifecycleMetadata().to_json())
    assert data == {"app": [], "buildpacks": [], "runImage": {"topLayer": "", "reference": ""}}


def test_conversions_to_and_from_analyzed_layers_metadata() -> None:
    label = sample_lifecycle()
    toml_form = label.to_layers_metadata()
    assert type(toml_form) is LayersMetadata
    toml_dict = toml_form.to_dict()
    assert toml_dict["run-image"]["top-layer"] == "sha256:top"
    assert toml_dict["buildpacks"][0]["layers"]["node"]["metadata"] == {"version": "18.1"}
    assert LayersMetadata.from_dict(toml_dict) == toml_form
    assert LifecycleMetadata.from_layers_metadata(toml_form) == label


def test_lifecycle_metadata_is_a_frozen_value_of_its_own_class() -> None:
    """LifecycleMetadata inherits LayersMetadata's generated methods (it is not decorated again)."""
    label = sample_lifecycle()
    assert label != label.to_layers_metadata()
    assert replace(label, app=()).app == () and type(replace(label, app=())) is LifecycleMetadata
    assert repr(label).startswith("LifecycleMetadata(app=")
    with pytest.raises(FrozenInstanceError):
        label.app = ()  # type: ignore[misc]


def test_lc_written_label_with_nulls_and_empty_shas() -> None:
    lc = (
        '{"app":[{"sha":"sha256:a"}],"config":{"sha":""},"launcher":{"sha":"sha256:l"},"process-types":{"sha":""},'
        '"buildpacks":[{"key":"bp","version":"1","layers":{"l":{"sha":"sha256:x","data":null,"build":false,'
        '"launch":true,"cache":false}},"store":null}],"runImage":{"topLayer":"sha256:t","reference":"r"},'
        '"stack":{"runImage":{"image":"r/run","mirrors":null}}}'
    )
    md = LifecycleMetadata.from_json_strict(lc)
    assert md.config is None and md.process_types is None and md.launcher == "sha256:l"
    layer = md.buildpacks[0].layers["l"]
    assert layer.metadata == {} and layer.launch and md.buildpacks[0].store is None
    assert md.stack == RunImageRef("r/run")


def test_old_single_app_object_is_read() -> None:
    md = LifecycleMetadata.from_json_strict('{"app":{"sha":"sha256:only"},"runImage":{"topLayer":"t"}}')
    assert md.app == ("sha256:only",)


@pytest.mark.parametrize("bad", ["", "not json", "[1,2]", '{"app": "nope"}', '{"runImage": {"topLayer": 5}}'])
def test_tolerant_decode_gives_empty_metadata(bad: str) -> None:
    assert LifecycleMetadata.from_json(bad) == LifecycleMetadata()
    assert CacheMetadata.from_json(bad) == CacheMetadata()
    assert BuildMetadataLabel.from_json(bad) == BuildMetadataLabel()
    assert ProjectMetadataLabel.from_json(bad) == ProjectMetadataLabel()
    assert LifecycleMetadata.from_json(None) == LifecycleMetadata()


def test_strict_decode_names_label_and_key() -> None:
    with pytest.raises(SpecFileError, match=r"io\.buildpacks\.lifecycle\.metadata: key 'runImage\.topLayer'"):
        LifecycleMetadata.from_json_strict('{"runImage": {"topLayer": 5}}')
    with pytest.raises(SpecFileError, match=r"io\.buildpacks\.lifecycle\.metadata: label is not valid JSON"):
        LifecycleMetadata.from_json_strict("{")
    with pytest.raises(SpecFileError, match=r"io\.buildpacks\.lifecycle\.cache\.metadata: key 'buildpacks\[0\]'"):
        CacheMetadata.from_json_strict('{"buildpacks": [3]}')
    with pytest.raises(SpecFileError, match=r"io\.buildpacks\.build\.metadata: key 'processes\[0\]\.command'"):
        BuildMetadataLabel.from_json_strict('{"processes": [{"type": "web"}]}')


def test_toml_dates_in_free_form_data_become_strings() -> None:
    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    md = LifecycleMetadata(buildpacks=(BuildpackLayers("bp", "1", {"l": LayerEntry("s", {"at": when})}),))
    data = json.loads(md.to_json())
    assert data["buildpacks"][0]["layers"]["l"]["data"]["at"] == "2024-01-02T03:04:05Z"


def sample_build_metadata() -> BuildMetadata:
    return BuildMetadata(
        buildpacks=(BuildpackRef("example/node", "1.2.3", "0.12", "https://n"), BuildpackRef("b", "1", "0.9")),
        extensions=(BuildpackRef("example/apt", "0.1", "0.12"),),
        labels=(Label("k", "v"),),
        processes=(
            ProcessEntry(
                "web", ("node", "s.js"), ("--port", "8080"), True, "example/node", "/workspace/sub", ("prod",)
            ),
            ProcessEntry("admin", ("sh",), (), True, "b"),
        ),
        slices=(Slice(("static/*",)),),
        default_process_type="web",
    )


def test_build_metadata_label_json() -> None:
    launcher = LauncherInfo("0.1.0", "github.com/example/cnb", "abc123")
    label = BuildMetadataLabel.from_build_metadata(sample_build_metadata(), launcher)
    data = json.loads(label.to_json())
    assert [p["type"] for p in data["processes"]] == ["admin", "web"]
    assert data["processes"][1] == {
        "type": "web",
        "command": ["node", "s.js"],
        "args": ["--port", "8080"],
        "direct": True,
        "buildpackID": "example/node",
        "working-dir": "/workspace/sub",
        "exec-env": ["prod"],
    }
    assert "buildpack-id" not in data["processes"][0] and "default" not in data["processes"][0]
    assert data["buildpacks"] == [
        {"id": "example/node", "version": "1.2.3", "homepage": "https://n"},
        {"id": "b", "version": "1"},
    ]
    assert data["extensions"] == [{"id": "example/apt", "version": "0.1"}]
    assert data["launcher"] == {
        "version": "0.1.0",
        "source": {"git": {"repository": "github.com/example/cnb", "commit": "abc123"}},
    }
    assert data["buildpack-default-process-type"] == "web"
    assert "labels" not in data and "slices" not in data
    back = BuildMetadataLabel.from_json_strict(label.to_json())
    assert back.processes == label.processes
    assert back.launcher == launcher
    assert back.buildpacks[0] == BuildpackRef("example/node", "1.2.3", "", "https://n")  # api not in the label


def test_build_metadata_label_reads_legacy_string_command() -> None:
    label = BuildMetadataLabel.from_json_strict('{"processes":[{"type":"w","command":"run","buildpackID":"b"}]}')
    assert label.processes[0].command == ("run",) and label.processes[0].buildpack_id == "b"


def test_project_metadata_label() -> None:
    assert ProjectMetadataLabel().to_json() == "{}"
    pm = ProjectMetadata(ProjectSource("git", {"commit": "abc"}, {"repository": "r"}))
    label = ProjectMetadataLabel.from_project_metadata(pm)
    assert json.loads(label.to_json()) == {
        "source": {"type": "git", "version": {"commit": "abc"}, "metadata": {"repository": "r"}}
    }
    assert ProjectMetadataLabel.from_json_strict(label.to_json()).to_project_metadata() == pm
    assert json.loads(ProjectMetadataLabel(ProjectSource("git")).to_json()) == {"source": {"type": "git"}}


def test_cache_metadata_json() -> None:
    cache = CacheMetadata(
        sbom="sha256:sb",
        buildpacks=(BuildpackLayers("bp", "1", {"deps": LayerEntry("sha256:d", {"v": 1}, build=True, cache=True)}),),
    )
    data = json.loads(cache.to_json())
    assert data == {
        "sbom": {"sha": "sha256:sb"},
        "buildpacks": [
            {
                "key": "bp",
                "version": "1",
                "layers": {
                    "deps": {"sha": "sha256:d", "data": {"v": 1}, "build": True, "launch": False, "cache": True}
                },
            }
        ],
    }
    assert CacheMetadata.from_json(cache.to_json()) == cache
    assert cache.for_buildpack("bp") is cache.buildpacks[0] and cache.for_buildpack("x") is None
    assert CacheMetadata.from_json('{"sbom":{"sha":""},"buildpacks":null}') == CacheMetadata()
