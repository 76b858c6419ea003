"""cnb/go on trixie (issue 11 "must show"): the go-stdlib and go-vendored examples built with ``cnb lifecycle create
--sandbox bwrap`` on the trixie build image (Debian 13's Go) onto the static run image (no /bin/sh: the process's
own command is the entrypoint, docs/design.md decision 3), served through ``cnb run``, their SBOMs listing the
modules linked in with pkg:golang purls."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.buildpacks.helpers import config, create, fetch_page, image_sbom, make_project
from tests.conftest import REPO, Cnb
from tests.support.bookworm import trixie_images

CASES = {
    "go-stdlib": ("Hello from cnb! (go-stdlib)\n", []),
    "go-vendored": (
        "Hello from cnb! (go-vendored, greeting v0.1.0)\n",
        [("example.com/cnb/greeting", "v0.1.0", "pkg:golang/example.com/cnb/greeting@v0.1.0")],
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("example", sorted(CASES))
def test_go_example_serves_from_the_static_run_image(example: str, tmp_path: Path, bp_cnb: Cnb) -> None:
    page, components = CASES[example]
    images = trixie_images()
    project = make_project(tmp_path, ["go", "procfile"], {})
    shutil.copytree(REPO / "examples" / example, project.app, dirs_exist_ok=True)
    done = create(bp_cnb, project, (images.build, images.static))
    output = done.stdout + done.stderr
    assert "cnb/go: go version go1.2" in output  # Debian 13's Go, not bookworm's 1.19
    assert f"cnb/go: go build -trimpath . -> {example}" in output

    entrypoint = config(project.layout)["config"]["Entrypoint"]
    assert entrypoint == [f"/layers/cnb_go/app/bin/{example}"]
    sbom = json.loads(image_sbom(project.layout, "launch/cnb_go/app/sbom.cdx.json"))
    assert [(c["name"], c["version"], c["purl"]) for c in sbom["components"]] == components
    assert fetch_page(bp_cnb, project.output) == page
