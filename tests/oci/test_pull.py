"""oci/pull: which registry a name is pulled from (mirrors), and the reference recorded for what was read."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnbplatform.errors import NotFoundError, UsageError
from cnbplatform.oci.address import parse_address
from cnbplatform.oci.reference import parse_reference
from cnbplatform.oci.store.pull import fetch, mirror_for, record_reference
from cnbplatform.oci.store.stores import StoreOptions, Stores
from tests.support.images import make_busybox_image
from tests.support.registry import RunningRegistry, free_port

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("name", "mirrors", "expected"),
    [
        ("ubuntu", {"docker.io": "127.0.0.1:5000"}, "127.0.0.1:5000/library/ubuntu:latest"),
        ("ubuntu", {"index.docker.io": "mirror.example"}, "mirror.example/library/ubuntu:latest"),
        ("paketobuildpacks/run:1", {"*": "https://mirror.example/hub/"}, "mirror.example/hub/paketobuildpacks/run:1"),
        ("gcr.io/x/y:2", {"docker.io": "m.example"}, None),
        ("gcr.io/x/y:2", {"gcr.io": "m.example", "*": "other.example"}, "m.example/x/y:2"),
        ("ubuntu", {}, None),
    ],
)
def test_mirror_for(name: str, mirrors: dict[str, str], expected: str | None) -> None:
    mirrored = mirror_for(parse_reference(name), mirrors)
    assert (str(mirrored) if mirrored else None) == expected


def test_recorded_references_are_image_references_where_there_is_a_name() -> None:
    assert record_reference(parse_address("local:cnb/run"), DIGEST) == f"docker.io/cnb/run@{DIGEST}"
    assert record_reference(parse_address("127.0.0.1:5000/x:1"), DIGEST) == f"127.0.0.1:5000/x@{DIGEST}"
    assert record_reference(parse_address("oci:/tmp/l:t"), DIGEST) == f"oci:/tmp/l:t@{DIGEST}"


def test_fetch_reads_local_names_and_never_pulls_under_never(tmp_path: Path) -> None:
    home = tmp_path / "home"
    layout = tmp_path / "layout"
    digest = make_busybox_image(layout, "bb")
    with Stores(StoreOptions(home=home)) as stores:
        copied = fetch(stores, f"oci:{layout}:bb")
        assert copied.image.descriptor.digest == digest and copied.source == "layout"
        stores.local().write(copied.image, "cnb/bb:1")
        local = fetch(stores, "cnb/bb:1", pull_policy="never")
        assert local.source == "local" and local.reference == f"docker.io/cnb/bb@{digest}"
        assert local.address == f"local:docker.io/cnb/bb@{digest}"
        with pytest.raises(NotFoundError, match="--pull-policy is never"):
            fetch(stores, "cnb/absent:1", pull_policy="never")
        with pytest.raises(UsageError, match="--pull-policy must be one of"):
            fetch(stores, "cnb/bb:1", pull_policy="sometimes")


@pytest.mark.integration
def test_a_registry_image_is_pulled_into_the_local_store_through_the_mirror_else_from_the_registry(
    tmp_path: Path, registry: RunningRegistry
) -> None:
    layout = tmp_path / "layout"
    make_busybox_image(layout, "bb")
    dead_mirror = f"127.0.0.1:{free_port()}"
    options = StoreOptions(home=tmp_path / "home", mirrors={registry.host: dead_mirror}, retries=1, backoff=0.01)
    with Stores(options) as stores:
        image = fetch(stores, f"oci:{layout}:bb").image
        stores.remote(parse_reference(f"{registry.host}/pull/bb:1")).write(image, "1")
        pulled = fetch(stores, f"{registry.host}/pull/bb:1")  # the mirror is down: the registry itself
    assert pulled.source == "pulled" and pulled.address.startswith(f"local:{registry.host}/pull/bb@")
    with Stores(StoreOptions(home=tmp_path / "home")) as stores:  # the local copy, without any registry
        assert fetch(stores, f"{registry.host}/pull/bb:1", pull_policy="never").image.descriptor == image.descriptor
