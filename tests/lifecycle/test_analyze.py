"""The analyze phase (docs/spec-notes.md §2.1, §5.1): analyzed.toml, the previous image's SBOM layer, run image selection."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from cnbplatform.errors import PhaseError
from cnbplatform.files.analyzed import Analyzed, BuildpackLayers, LayerEntry, LayersMetadata, RunImageForRebase
from cnbplatform.files.labels import (
    BASE_DISTRO_NAME_LABEL,
    BASE_DISTRO_VERSION_LABEL,
    BASE_ID_LABEL,
    LIFECYCLE_METADATA_LABEL,
    LifecycleMetadata,
)
from cnbplatform.lifecycle.analyze import AnalyzeInputs, analyze, select_run_image
from cnbplatform.lifecycle.common import RecordingReporter
from cnbplatform.oci.image import Image
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.store.layout import LayoutStore
from tests.lifecycle.test_cache import make_blob, make_tree, write_image

RUN_LABELS = {
    BASE_DISTRO_NAME_LABEL: "debian",
    BASE_DISTRO_VERSION_LABEL: "12",
    BASE_ID_LABEL: "io.example.base",
}


class Images:
    """A layout store with a run image and a previous app image built by cnb's layer writer."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.store = LayoutStore(tmp_path / "store")
        self.layer_cache = LayerCache(tmp_path / "layer-cache")
        self.blobs = tmp_path / "blobs"
        base = make_blob(
            self.layer_cache, make_tree(tmp_path / "rootfs", {"etc/os-release": b"ID=debian\n"}), "/", self.blobs
        )
        self.run = write_image(self.store, "run", [base], RUN_LABELS, arch="arm64", variant="v8")
        web = make_blob(
            self.layer_cache, make_tree(tmp_path / "web", {"app.js": b"1"}), "/layers/example_bp/web", self.blobs
        )
        sbom_tree = make_tree(tmp_path / "sbom", {"example_bp/web/sbom.cdx.json": b'{"bomFormat": "CycloneDX"}'})
        self.sbom = make_blob(self.layer_cache, sbom_tree, "/layers/sbom/launch", self.blobs)
        self.web = web
        self.metadata = LayersMetadata(
            sbom=self.sbom.diff_id,
            buildpacks=(
                BuildpackLayers(
                    key="example/bp",
                    version="1.2.3",
                    layers={"web": LayerEntry(sha=web.diff_id, metadata={"version": "18"}, launch=True)},
                    store={"k": "v"},
                ),
            ),
            run_image=RunImageForRebase(
                top_layer=base.diff_id, reference="reg/run@sha256:" + "1" * 64, image="reg/run"
            ),
        )

    def previous(self, label: str | None = None) -> Image:
        text = LifecycleMetadata.from_layers_metadata(self.metadata).to_json() if label is None else label
        return write_image(self.store, "previous", [self.web, self.sbom], {LIFECYCLE_METADATA_LABEL: text})

    def inputs(self, previous: Image | None, **options: Any) -> AnalyzeInputs:
        fields: dict[str, Any] = {
            "previous_image": previous,
            "previous_reference": f"{self.tmp / 'store'}@{previous.descriptor.digest}" if previous else "",
            "run_image": self.run,
            "run_image_name": "reg/run:bookworm",
            "run_image_reference": f"reg/run@{self.run.descriptor.digest}",
            "layers_dir": self.tmp / "layers",
            "analyzed_path": self.tmp / "layers" / "analyzed.toml",
        }
        fields.update(options)
        return AnalyzeInputs(**fields)


def load(path: Path) -> dict[str, Any]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def test_analyzed_toml_records_both_images_and_the_metadata(tmp_path: Path) -> None:
    """§5.1: [image] reference, [run-image] reference/image/target (distro from labels), [metadata] in TOML keys."""
    images = Images(tmp_path)
    previous = images.previous()
    inputs = images.inputs(previous)
    result = analyze(inputs, RecordingReporter())
    written = load(inputs.analyzed_path)

    assert written["image"] == {"reference": f"{tmp_path / 'store'}@{previous.descriptor.digest}"}
    assert written["run-image"] == {
        "reference": f"reg/run@{images.run.descriptor.digest}",
        "image": "reg/run:bookworm",
        "target": {
            "id": "io.example.base",
            "os": "linux",
            "arch": "arm64",
            "arch-variant": "v8",
            "distro": {"name": "debian", "version": "12"},
        },
    }
    metadata = written["metadata"]
    assert metadata["sbom"] == {"sha": images.sbom.diff_id}
    assert metadata["run-image"]["top-layer"] == images.metadata.run_image.top_layer
    assert metadata["buildpacks"] == [
        {
            "key": "example/bp",
            "version": "1.2.3",
            "layers": {
                "web": {
                    "sha": images.web.diff_id,
                    "metadata": {"version": "18"},
                    "build": False,
                    "launch": True,
                    "cache": False,
                }
            },
            "store": {"metadata": {"k": "v"}},
        }
    ]
    assert Analyzed.load(inputs.analyzed_path) == result
    assert result.metadata == images.metadata


def test_previous_sbom_layer_is_restored(tmp_path: Path) -> None:
    """§2.1 step 4: the SBOM layer's /layers/sbom/... entries land in the host layers dir."""
    images = Images(tmp_path)
    analyze(images.inputs(images.previous()), RecordingReporter())
    layers = tmp_path / "layers"
    assert (layers / "sbom/launch/example_bp/web/sbom.cdx.json").read_bytes() == b'{"bomFormat": "CycloneDX"}'
    assert sorted(p.name for p in layers.iterdir()) == ["analyzed.toml", "sbom"]


@pytest.mark.parametrize("options", [{"skip_layers": True}, {"platform_api": "0.7"}])
def test_sbom_layer_not_restored_with_skip_layers_or_old_platforms(tmp_path: Path, options: dict[str, Any]) -> None:
    images = Images(tmp_path)
    result = analyze(images.inputs(images.previous(), **options), RecordingReporter())
    assert not (tmp_path / "layers" / "sbom").exists()
    assert result.metadata.sbom == images.sbom.diff_id


def test_corrupt_sbom_layer_fails_and_leaves_nothing(tmp_path: Path) -> None:
    images = Images(tmp_path)
    previous = images.previous()
    sbom_blob = tmp_path / "store" / "blobs" / "sha256" / images.sbom.digest.split(":", 1)[1]
    data = bytearray(sbom_blob.read_bytes())
    data[-10] ^= 0xFF
    sbom_blob.write_bytes(bytes(data))
    with pytest.raises(PhaseError) as info:
        analyze(images.inputs(previous), RecordingReporter())
    assert info.value.exit_code == 32 and "SBOM layer" in str(info.value)
    assert not (tmp_path / "layers" / "sbom").exists()


def test_sbom_layer_missing_from_the_previous_image_fails(tmp_path: Path) -> None:
    images = Images(tmp_path)
    images.metadata = LayersMetadata(sbom="sha256:" + "9" * 64)
    with pytest.raises(PhaseError, match="no such layer") as info:
        analyze(images.inputs(images.previous()), RecordingReporter())
    assert info.value.exit_code == 32


@pytest.mark.parametrize("label", ["{not json", "[1, 2]", '{"buildpacks": "nope"}', ""])
def test_undecodable_label_is_empty_metadata(tmp_path: Path, label: str) -> None:
    """§2.1 step 3: an undecodable label silently becomes empty metadata (and nothing is restored)."""
    images = Images(tmp_path)
    previous = images.previous(label)
    reporter = RecordingReporter()
    result = analyze(images.inputs(previous), reporter)
    assert result.metadata == LayersMetadata()
    assert result.previous_image_ref.endswith(previous.descriptor.digest)
    assert load(tmp_path / "layers" / "analyzed.toml")["metadata"] == LayersMetadata().to_dict()
    assert reporter.warnings == []
    assert not (tmp_path / "layers" / "sbom").exists()


def test_no_previous_image(tmp_path: Path) -> None:
    images = Images(tmp_path)
    result = analyze(images.inputs(None), RecordingReporter())
    assert load(tmp_path / "layers" / "analyzed.toml")["image"] == {"reference": ""}
    assert result.metadata == LayersMetadata()


def test_run_image_without_os_fails_with_32(tmp_path: Path) -> None:
    images = Images(tmp_path)
    no_os = write_image(images.store, "no-os", [images.web], {}, os_name="")
    with pytest.raises(PhaseError, match="no os") as info:
        analyze(images.inputs(None, run_image=no_os), RecordingReporter())
    assert info.value.exit_code == 32
    assert not (tmp_path / "layers" / "analyzed.toml").exists()


# -- select_run_image (§2.1 step 2) ----------------------------------------------------------------------------


def test_mirror_on_the_output_registry_wins() -> None:
    images = [("docker.io/cnb/run:1", ["mirror.example/cnb/run:1", "out.example:5000/cnb/run:1"]), ("other/x", [])]
    asked: list[str] = []

    def readable(ref: str) -> bool:
        asked.append(ref)
        return True

    assert select_run_image(images, "out.example:5000", readable) == "out.example:5000/cnb/run:1"
    assert "other/x" not in asked


def test_unreadable_mirror_on_the_output_registry_is_passed_over() -> None:
    images = [("cnb/run:1", ["out.example/cnb/run:1", "mirror.example/cnb/run:1"])]
    readable = {"mirror.example/cnb/run:1"}
    assert select_run_image(images, "out.example", readable.__contains__) == "mirror.example/cnb/run:1"


def test_docker_hub_names_match_the_docker_hub_registry() -> None:
    images = [("mirror.example/run:1", ["cnb/run:1"])]
    assert select_run_image(images, "index.docker.io", lambda ref: True) == "cnb/run:1"


def test_first_readable_when_none_is_on_the_output_registry() -> None:
    images = [("a.example/run:1", ["b.example/run:1", "c.example/run:1"])]
    assert select_run_image(images, "out.example", lambda ref: not ref.startswith("a.")) == "b.example/run:1"


def test_no_run_image_metadata_or_nothing_readable_fails() -> None:
    with pytest.raises(PhaseError, match="-run-image is required") as info:
        select_run_image([], "out.example", lambda ref: True)
    assert info.value.exit_code == 32
    with pytest.raises(PhaseError, match="readable"):
        select_run_image([("a.example/run:1", ["b.example/run:1"])], "out.example", lambda ref: False)
