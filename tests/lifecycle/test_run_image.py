"""The one run-image chooser the analyzer and the rebaser share, and run.toml entry lookup by image name."""

from __future__ import annotations

from cnbplatform.files.run_toml import RunConfig
from cnbplatform.lifecycle.run_image import first_readable, run_image_entry
from cnbplatform.oci.address import image_name, registry_of

RUN = """
[[images]]
  image = "registry.example/run:jammy"
  mirrors = ["mirror.example/run:jammy", "localhost:5000/run:jammy"]
[[images]]
  image = "registry.example/run-alt:1"
"""


def test_first_readable_prefers_the_output_registry() -> None:
    refs = RunConfig.parse(RUN).images[0].refs
    assert first_readable(refs, "localhost:5000", lambda name: True) == "localhost:5000/run:jammy"
    assert first_readable(refs, "", lambda name: True) == "registry.example/run:jammy"
    assert first_readable(refs, "localhost:5000", lambda name: "mirror" in name) == "mirror.example/run:jammy"
    assert first_readable(refs, "localhost:5000", lambda name: False) is None


def test_first_readable_asks_once_per_candidate() -> None:
    asked: list[str] = []

    def readable(name: str) -> bool:
        asked.append(name)
        return False

    assert first_readable(["a.test/r", "b.test/r", "a.test/r"], "a.test", readable) is None
    assert asked == ["a.test/r", "b.test/r"]


def test_registry_of_names_the_host() -> None:
    assert registry_of("busybox") == "docker.io"
    assert registry_of("index.docker.io/library/busybox") == "docker.io"
    assert registry_of("localhost:5000/run:jammy") == "localhost:5000"
    assert registry_of("oci:/tmp/layout:run") is None
    assert registry_of("Not A Reference") is None


def test_find_run_image_ignores_digests_and_adds_latest() -> None:
    run = RunConfig.parse(
        '[[images]]\nimage = "busybox"\n[[images]]\nimage = "r.example/run:2"\nmirrors = ["m.ex/r"]\n'
    )
    digest = "sha256:" + "a" * 64
    assert image_name(f"busybox@{digest}") == "docker.io/library/busybox:latest"
    assert run_image_entry(run, f"index.docker.io/library/busybox:latest@{digest}") == run.images[0]
    assert run_image_entry(run, "m.ex/r:latest") == run.images[1]
    assert run_image_entry(run, "r.example/run:3") is None
    assert run_image_entry(run, "other") is None
