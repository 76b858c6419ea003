"""The rebase phase (docs/spec-notes.md §8; §16 items 57-60) on in-memory images and a recording store."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cnbplatform.errors import PhaseError
from cnbplatform.files.labels import LIFECYCLE_METADATA_LABEL, LifecycleMetadata
from cnbplatform.files.report import Report
from cnbplatform.lifecycle.common import RecordingReporter
from cnbplatform.lifecycle.rebase import (
    RebaseInputs,
    app_metadata,
    choose_run_image,
    compatibility_problems,
    rebase,
)
from cnbplatform.oci.address import image_name as run_image_name
from cnbplatform.oci.image import Artifact, Image
from cnbplatform.oci.store.protocol import Progress, StoredRef, WriteResult
from tests.support.rebase import app_image, base_image

DISTRO = {"io.buildpacks.base.distro.name": "busybox", "io.buildpacks.base.distro.version": "1.35"}
OLD_LABELS = {**DISTRO, "io.buildpacks.base.id": "tiny", "io.buildpacks.base.released": "old", "io.buildpacks.rebasable": "true"}  # fmt: skip
NEW_LABELS = {**DISTRO, "io.buildpacks.base.id": "tiny", "io.buildpacks.base.released": "new", "io.buildpacks.stack.id": "tiny"}  # fmt: skip


@dataclass
class RecordingStore:
    """An ImageStore that keeps what it is given."""

    written: list[tuple[Image, str | None]] = field(default_factory=list)

    @property
    def description(self) -> str:
        return "memory/app"

    def read(self, ref: str | None) -> Artifact:
        raise AssertionError("not used")

    def write(self, artifact: Artifact, ref: str | None, progress: Progress | None = None) -> WriteResult:
        self.written.append((artifact, ref))  # type: ignore[arg-type]
        return WriteResult(descriptor=artifact.descriptor)

    def delete(self, ref: str) -> None:
        raise AssertionError("not used")

    def list(self) -> Sequence[StoredRef]:
        return []

    def tag(self, ref: str, new_ref: str) -> None:
        raise AssertionError("not used")


def old_base() -> Image:
    return base_image(["os-1", "os-2"], labels=OLD_LABELS)


def new_base(**kwargs: object) -> Image:
    labels = kwargs.pop("labels", NEW_LABELS)
    return base_image(["os-1", "os-2", "os-3"], labels=labels, **kwargs)  # type: ignore[arg-type]


def inputs(app: Image, new: Image, store: RecordingStore, **extra: object) -> RebaseInputs:
    values: dict[str, object] = {
        "app_image": app,
        "app_name": "app",
        "new_run_image": new,
        "new_run_image_name": "run",
        "new_run_image_reference": "run@sha256:new",
        "destinations": [(store, "app:latest"), (store, "app:v2")],
    }
    values.update(extra)
    return RebaseInputs(**values)  # type: ignore[arg-type]


def test_rebase_updates_layers_metadata_labels_and_saves_every_tag(tmp_path: Path) -> None:
    old, new = old_base(), new_base()
    app = app_image(old, labels={"custom": "kept"})
    store = RecordingStore()
    reporter = RecordingReporter()
    result = rebase(inputs(app, new, store, report_path=tmp_path / "report.toml"), reporter)
    assert [ref for _, ref in store.written] == ["app:latest", "app:v2"]
    image = store.written[0][0]
    assert image.descriptor == result.descriptor
    assert image.config.diff_ids[:3] == new.config.diff_ids
    assert image.config.diff_ids[3:] == app.config.diff_ids[2:] == result.kept
    labels = image.config.labels
    metadata = LifecycleMetadata.from_json_strict(labels[LIFECYCLE_METADATA_LABEL])
    assert metadata.run_image.top_layer == new.config.diff_ids[-1]
    assert metadata.run_image.reference == "run@sha256:new"
    assert metadata.run_image.image == "run"  # a recorded name: unchanged
    assert metadata.app == LifecycleMetadata.from_json_strict(app.config.labels[LIFECYCLE_METADATA_LABEL]).app
    # §8 step 6: base and stack labels are the new run image's; others stay; rebasable is untouched
    assert labels["io.buildpacks.base.released"] == "new"
    assert labels["io.buildpacks.stack.id"] == "tiny"
    assert labels["custom"] == "kept"
    assert labels["io.buildpacks.rebasable"] == "true"
    assert image.config.config.entrypoint == app.config.config.entrypoint
    report = Report.load(tmp_path / "report.toml")
    assert report.tags == ("memory/app:app:latest", "memory/app:app:v2")
    assert report.digest == result.descriptor.digest
    assert report.manifest_size == len(image.raw_manifest)
    assert not reporter.warnings


REFUSALS = [
    ("rebasable", {"labels": {"io.buildpacks.rebasable": "false"}}, {}, "io.buildpacks.rebasable=false"),
    ("arch", {}, {"architecture": "arm64"}, "linux/arm64"),
    ("variant", {}, {"variant": "v7"}, "variant is v7, the app's is none"),  # only the new run image has one
    ("distro", {}, {"labels": {**NEW_LABELS, "io.buildpacks.base.distro.name": "ubuntu"}}, "ubuntu"),
    ("distro version", {}, {"labels": {**NEW_LABELS, "io.buildpacks.base.distro.version": "2"}}, "busybox 2"),
]


@pytest.mark.parametrize(("what", "app_kwargs", "new_kwargs", "needle"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_checks_refuse_with_72_and_force_overrides_with_a_warning(
    what: str, app_kwargs: dict[str, object], new_kwargs: dict[str, object], needle: str | None
) -> None:
    app = app_image(old_base(), **app_kwargs)  # type: ignore[arg-type]
    new = new_base(**new_kwargs)
    if needle is None:
        assert compatibility_problems(app, new) == []
        return
    with pytest.raises(PhaseError) as caught:
        rebase(inputs(app, new, RecordingStore()), RecordingReporter())
    assert caught.value.exit_code == 72
    assert needle in caught.value.message and "--force" in caught.value.message
    reporter = RecordingReporter()
    store = RecordingStore()
    result = rebase(inputs(app, new, store, force=True), reporter)
    assert len(store.written) == 2 and result.forced
    assert any(needle in w for w in reporter.warnings)


def test_variant_mismatch_when_both_have_one() -> None:
    app = app_image(base_image(["os-1"], labels=OLD_LABELS, variant="v8", architecture="arm64"))
    problems = compatibility_problems(app, base_image(["x"], variant="v7", architecture="arm64", labels=NEW_LABELS))
    assert [check for check, _ in problems] == ["target"]


def test_variant_mismatch_when_only_the_app_has_one() -> None:
    app = app_image(base_image(["os-1"], labels=OLD_LABELS, variant="v8", architecture="arm64"))
    problems = compatibility_problems(app, base_image(["x"], variant=None, architecture="arm64", labels=NEW_LABELS))
    assert problems == [("target", "the run image's variant is none, the app's is v8")]


def test_a_run_image_not_recorded_is_refused_and_forced_replaces_the_names() -> None:
    app = app_image(old_base(), image="registry.test/run:1", mirrors=["mirror.test/run:1"])
    with pytest.raises(PhaseError, match="other-run is not the run image") as caught:
        rebase(inputs(app, new_base(), RecordingStore(), new_run_image_name="other-run"), RecordingReporter())
    assert caught.value.exit_code == 72
    store = RecordingStore()
    rebase(inputs(app, new_base(), store, new_run_image_name="other-run", force=True), RecordingReporter())
    metadata = LifecycleMetadata.from_json_strict(store.written[0][0].config.labels[LIFECYCLE_METADATA_LABEL])
    assert (metadata.run_image.image, metadata.run_image.mirrors) == ("other-run", ())
    assert metadata.stack is not None and (metadata.stack.image, metadata.stack.mirrors) == ("other-run", ())


def test_a_mirror_or_another_spelling_of_the_name_is_accepted() -> None:
    app = app_image(old_base(), image="registry.test/run", mirrors=["mirror.test/run:1"])
    for name in ("registry.test/run:latest", "registry.test/run@sha256:" + "a" * 64, "docker://mirror.test/run:1"):
        store = RecordingStore()
        rebase(inputs(app, new_base(), store, new_run_image_name=name), RecordingReporter())
        assert store.written


def test_an_image_not_built_by_buildpacks_is_refused() -> None:
    plain = base_image(["os-1"])
    with pytest.raises(PhaseError, match="not an image built by buildpacks") as caught:
        rebase(inputs(plain, new_base(), RecordingStore(), force=True), RecordingReporter())
    assert caught.value.exit_code == 72


def test_an_undecodable_label_is_refused() -> None:
    app = app_image(old_base(), labels={LIFECYCLE_METADATA_LABEL: "{not json"})
    with pytest.raises(PhaseError, match=LIFECYCLE_METADATA_LABEL):
        app_metadata(app, "app")


def test_a_missing_top_layer_is_refused() -> None:
    old = old_base()
    app = app_image(old)
    other_label = json.loads(app.config.labels[LIFECYCLE_METADATA_LABEL])
    other_label["runImage"]["topLayer"] = "sha256:" + "0" * 64
    broken = app_image(old, labels={LIFECYCLE_METADATA_LABEL: json.dumps(other_label)})
    with pytest.raises(PhaseError, match="has no layer") as caught:
        rebase(inputs(broken, new_base(), RecordingStore(), force=True), RecordingReporter())
    assert caught.value.exit_code == 72


def test_old_platform_api_apps_check_stack_id_and_mixins() -> None:
    old = base_image(["os-1"], labels={"io.buildpacks.stack.id": "s", "io.buildpacks.stack.mixins": '["a", "run:b"]'})
    app = app_image(old, platform_api="0.11")
    same = base_image(["x"], labels={"io.buildpacks.stack.id": "s", "io.buildpacks.stack.mixins": '["a", "b", "c"]'})
    assert compatibility_problems(app, same) == []
    other = base_image(["x"], labels={"io.buildpacks.stack.id": "t", "io.buildpacks.stack.mixins": '["a"]'})
    assert [c for c, _ in compatibility_problems(app, other)] == ["stack", "mixins"]
    # with an old API the rebasable label and the target are not checked
    unrebasable = app_image(old, platform_api=None, labels={"io.buildpacks.rebasable": "false"})
    assert compatibility_problems(unrebasable, same) == []


def test_choose_run_image_prefers_a_readable_mirror_on_the_apps_registry() -> None:
    app = app_image(old_base(), image="a.test/run", mirrors=["b.test/run", "c.test/run"])
    metadata = app_metadata(app, "app")
    assert choose_run_image(metadata, "c.test", lambda name: True) == "c.test/run"
    assert choose_run_image(metadata, "c.test", lambda name: name != "c.test/run") == "a.test/run"
    assert choose_run_image(metadata, "", lambda name: name.startswith("b.")) == "b.test/run"
    with pytest.raises(PhaseError, match="none of") as caught:
        choose_run_image(metadata, "", lambda name: False)
    assert caught.value.exit_code == 72
    unnamed = app_metadata(app_image(old_base(), image=""), "app")
    with pytest.raises(PhaseError, match="--run-image is required"):
        choose_run_image(unnamed, "", lambda name: True)


def test_run_image_names_compare_without_digest() -> None:
    assert run_image_name("tiny-run") == run_image_name("local:docker.io/library/tiny-run:latest")
    assert run_image_name("r.test/x@sha256:" + "b" * 64) == "r.test/x:latest"
    assert run_image_name("r.test/x:1") != run_image_name("r.test/x:2")
    assert run_image_name("oci:/tmp/l:run@sha256:" + "c" * 64) == "oci:/tmp/l:run"
