"""``oci.mutate.rebase``: the layer surgery of docs/spec-notes.md §8 step 4 as a pure function (docs/design.md §3 decision 6)."""

from __future__ import annotations

import json

import pytest

from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.model import NORMALIZED_CREATED, History
from cnbplatform.oci.mutate import BuiltImage, RebaseError, base_layer_count, rebase
from tests.support.rebase import app_image, base_image, fake_layer


def test_app_layers_are_kept_and_the_base_is_replaced() -> None:
    old = base_image(["os-1", "os-2"])
    new = base_image(["os-1", "os-2b", "os-3"], variant=None, env=("PATH=/usr/bin",))
    app = app_image(old)
    rebased = rebase(app, old.config.diff_ids[-1], new)
    app_layers = list(app.layers())[2:]
    assert list(rebased.layers())[:3] == list(new.layers())
    assert list(rebased.layers())[3:] == app_layers  # the very same Layer objects
    assert rebased.config.diff_ids == (*new.config.diff_ids, *(layer.diff_id for layer in app_layers))
    assert [d.digest for d in rebased.manifest.layers] == [
        *(d.digest for d in new.manifest.layers),
        *(layer.descriptor.digest for layer in app_layers),
    ]
    # the container config is the app's (env, entrypoint, workdir, labels), not the new base's
    assert rebased.config.config == app.config.config
    assert rebased.config.config.env == app.config.config.env
    assert rebased.config.created == NORMALIZED_CREATED
    config_json = json.loads(rebased.raw_config)
    assert config_json["rootfs"]["diff_ids"] == list(rebased.config.diff_ids)


def test_platform_comes_from_the_new_base_and_created_is_as_given() -> None:
    old = base_image(["os-1"])
    new = base_image(["os-1b"], architecture="arm64", variant="v8")
    rebased = rebase(app_image(old), old.config.diff_ids[-1], new, created="2024-01-02T03:04:05Z")
    assert (rebased.config.os, rebased.config.architecture, rebased.config.variant) == ("linux", "arm64", "v8")
    assert rebased.config.created == "2024-01-02T03:04:05Z"


def test_history_is_the_new_base_then_the_app_entries_aligned_with_layers() -> None:
    old = base_image(
        ["os-1"], history=[History(created_by="base os-1"), History(created_by="ENV X=1", empty_layer=True)]
    )
    new = base_image(
        ["os-1b", "os-2b"],
        history=[History(created_by="new os-1b"), History(created_by="new os-2b"), History(created_by="LABEL", empty_layer=True)],
    )  # fmt: skip
    app = app_image(old)
    rebased = rebase(app, old.config.diff_ids[-1], new)
    by = [h.created_by for h in rebased.config.history]
    assert by == ["new os-1b", "new os-2b", "LABEL", "app bp-layer", "app app", "app launcher"]
    assert sum(1 for h in rebased.config.history if not h.empty_layer) == len(rebased.manifest.layers)


def test_misaligned_history_gets_blank_entries() -> None:
    old = base_image(["os-1"], history=[])
    new = base_image(["os-1b"], history=[])
    app = app_image(old)
    rebased = rebase(app, old.config.diff_ids[-1], new)
    assert len(rebased.config.history) == len(rebased.manifest.layers)


def test_the_old_top_layer_must_be_in_the_app() -> None:
    old = base_image(["os-1"])
    with pytest.raises(RebaseError, match="has no layer"):
        rebase(app_image(old), fake_layer("elsewhere").diff_id, base_image(["x"]))
    with pytest.raises(RebaseError, match="does not record"):
        rebase(app_image(old), "", base_image(["x"]))


def test_a_known_old_base_must_be_a_prefix() -> None:
    old = base_image(["os-1", "os-2"])
    app = app_image(old)
    top = old.config.diff_ids[-1]
    assert base_layer_count(app, top, old.config.diff_ids) == 2
    other = base_image(["other", "os-2"]).config.diff_ids
    with pytest.raises(RebaseError, match="not the layers"):
        rebase(app, top, base_image(["x"]), old_base_diff_ids=other)
    with pytest.raises(RebaseError, match="top layer is not"):
        rebase(app, top, base_image(["x"]), old_base_diff_ids=old.config.diff_ids[:1])


def test_the_first_occurrence_of_the_top_layer_ends_the_base() -> None:
    """An app layer with the same diffID as the base's top (e.g. two empty tars) stays an app layer."""
    old = base_image(["empty"])
    app = app_image(old, ["bp", "empty"])
    rebased = rebase(app, old.config.diff_ids[-1], base_image(["new"]))
    assert rebased.config.diff_ids[1:] == app.config.diff_ids[1:]
    assert len(rebased.config.diff_ids) == 3


def test_manifest_type_docker_only_when_every_layer_is_docker() -> None:
    old = base_image(["os-1"])
    oci_app = app_image(old)
    docker_app = BuiltImage(oci_app.config, oci_app.layers(), media_type=mt.DOCKER_MANIFEST)
    # fake layers carry OCI layer types: a Docker manifest cannot list them
    rebased = rebase(docker_app, old.config.diff_ids[-1], base_image(["new"]))
    assert rebased.manifest.media_type == mt.OCI_MANIFEST
    assert rebased.manifest.config.media_type == mt.OCI_CONFIG
    docker_layers = [fake_layer(f"d{i}", mt.DOCKER_LAYER_GZIP) for i in range(3)]
    docker_base = BuiltImage(old.config, docker_layers[:1], media_type=mt.DOCKER_MANIFEST)
    all_docker = BuiltImage(oci_app.config, docker_layers, media_type=mt.DOCKER_MANIFEST)
    new_base = BuiltImage(old.config, [fake_layer("n", mt.DOCKER_LAYER_GZIP)], media_type=mt.DOCKER_MANIFEST)
    rebased = rebase(all_docker, docker_base.config.diff_ids[-1], new_base)
    assert rebased.manifest.media_type == mt.DOCKER_MANIFEST
    assert rebased.manifest.config.media_type == mt.DOCKER_CONFIG


def test_rebase_is_deterministic() -> None:
    old, new = base_image(["os-1"]), base_image(["os-1b"])
    app = app_image(old)
    first = rebase(app, old.config.diff_ids[-1], new)
    second = rebase(app, old.config.diff_ids[-1], new)
    assert first.descriptor == second.descriptor
    assert first.descriptor != app.descriptor
