"""The Node.js examples of each package manager, built by cnb/node and served (issue 11 "must show").

``examples/node-pnpm`` (pnpm-lock.yaml, pnpm 9) and ``examples/node-yarn`` (yarn.lock of Yarn 4) are built with
``cnb lifecycle create --sandbox bwrap`` on bookworm, whose nodejs 18 has no corepack: the buildpack installs
corepack with npm into its corepack cache layer, and corepack fetches the package manager named by
``packageManager`` from the npm registry (this machine's CA bundle, which trusts its TLS-intercepting proxy, is in
the platform dir and named by ``NODE_EXTRA_CA_CERTS``; its registry mirror keeps no npm signatures, hence
``COREPACK_INTEGRITY_KEYS=0``). Each image serves its page through ``cnb run``; its SBOM lists exactly the
lockfile's production packages with ``pkg:npm`` purls (the devDependency is neither installed nor listed). A
rebuild with nothing changed starts no package manager and no node process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.buildpacks.conftest import LanguageImages
from tests.buildpacks.helpers import create, fetch_page, image_sbom, make_project
from tests.conftest import REPO, Cnb

HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
CASES = {
    "node-pnpm": ("pnpm-lock.yaml", "pnpm install --frozen-lockfile --prod (pnpm@9.15.9)"),
    "node-yarn": ("yarn.lock", "yarn workspaces focus --all --production (yarn@4.9.2)"),
}


@pytest.mark.integration
@pytest.mark.parametrize("example", sorted(CASES))
def test_example_builds_serves_and_lists_its_locked_dependencies(
    example: str, tmp_path: Path, bp_cnb: Cnb, languages: LanguageImages
) -> None:
    source, install = CASES[example]
    env = {"NODE_EXTRA_CA_CERTS": "/platform/ca.pem", "COREPACK_INTEGRITY_KEYS": "0"}
    project = make_project(tmp_path, ["node", "procfile"], {}, env=env)
    shutil.copytree(REPO / "examples" / example, project.app, dirs_exist_ok=True)
    shutil.copyfile(HOST_CA, project.platform / "ca.pem")
    done = create(bp_cnb, project, languages)
    output = done.stdout + done.stderr
    assert f"dependencies from {source}" in output
    assert f"cnb/node: {install}" in output
    assert "the build image has no corepack; installing it with npm into the corepack cache layer" in output

    sbom = json.loads(image_sbom(project.layout, "launch/cnb_node/modules/sbom.cdx.json"))
    assert [(c["name"], c["version"], c["purl"]) for c in sbom["components"]] == [
        ("debug", "4.4.3", "pkg:npm/debug@4.4.3"),
        ("ms", "2.1.3", "pkg:npm/ms@2.1.3"),
    ]
    page = fetch_page(bp_cnb, project.output)
    assert page == f"Hello from cnb! ({example}, a day is 86400000 ms)\n"

    again = create(bp_cnb, project, languages, "--no-network")
    output = again.stdout + again.stderr
    assert f"cnb/node: reusing node_modules ({source} unchanged)" in output
    assert install not in output
    assert "web process (scripts.start)" not in output  # printed by plan.js: no node process ran
