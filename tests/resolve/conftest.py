"""Images in the session registry for the resolve tests, pushed with skopeo (an independent tool)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.images import Entry, make_multiplatform_index, tag_in_layout, write_image
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo


@dataclass(frozen=True)
class Pushed:
    host: str
    digests: dict[str, str]  # "repo:tag" -> manifest digest, as skopeo pushed it


def push_small_image(registry: RunningRegistry, layout: Path, name: str, seed: str) -> str:
    """A one-file image tagged *seed* in *layout*, copied to ``registry/name``; returns its digest."""
    desc = write_image(layout, [[Entry("hello.txt", "file", 0o644, f"{seed}\n".encode())]], arch="amd64")
    tag_in_layout(layout, desc, seed)
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:{seed}", f"docker://{registry.host}/{name}")
    return str(desc["digest"])


# repo:tag -> the seed of its one-file image (the content, hence the digest, is fixed: kbld/ holds kbld's output)
SMALL_IMAGES = {
    "rs/web:1.0": "web-1.0",
    "rs/worker:2": "worker-2",
    "rs/sidecar:latest": "sidecar",
    "rs/crd-app:v3": "crd-app",
    "rs/json-app:7": "json-app",
}


@pytest.fixture(scope="session")
def pushed(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Pushed:
    layout = tmp_path_factory.mktemp("resolve-images")
    digests = {name: push_small_image(registry, layout, name, seed) for name, seed in SMALL_IMAGES.items()}
    index = make_multiplatform_index(layout, "multi")
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", f"docker://{registry.host}/rs/multi:1")
    digests["rs/multi:1"] = index
    return Pushed(registry.host, digests)
