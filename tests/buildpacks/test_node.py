"""cnb/node end to end (issue 4 item 4, item 7 "must show"): ``cnb lifecycle create --sandbox bwrap`` on bookworm.

Packages come from an npm registry on 127.0.0.1 made by the test (left needs @demo/right; extra), with a
package-lock.json naming them. The first build runs ``npm ci`` and serves a page through ``cnb run``; a rebuild
after a one-line code edit reuses node_modules without npm (registry untouched) and changes only the app layer; a
dependency removed from the lockfile installs with ``--no-network`` from the npm cache layer; a new one makes the
offline attempt fail and npm use the registry. The node helper
scripts are also unit-tested with the host's node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.buildpacks.conftest import LanguageImages
from tests.buildpacks.helpers import (
    Project,
    buildpack_layer_digest,
    create,
    fetch_page,
    image_sbom,
    layer_digests,
    layer_of,
    lifecycle_metadata,
    make_project,
)
from tests.buildpacks.packages import NpmPackage, NpmRegistry
from tests.conftest import REPO, Cnb

LIB = REPO / "buildpacks" / "node" / "lib"
SERVER = """\
const http = require("http");
const left = require("left");
http.createServer((req, res) => res.end(`node test app: ${left}\\n`)).listen(Number(process.env.PORT || 8080));
"""


def package_json(dependencies: dict[str, str], **extra: object) -> str:
    manifest = {"name": "node-test-app", "version": "1.0.0", "private": True, "scripts": {"start": "node server.js"},
                "dependencies": dependencies, **extra}  # fmt: skip
    return json.dumps(manifest, indent=2) + "\n"


@pytest.fixture(scope="module")
def registry_packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NpmRegistry, list[NpmPackage]]]:
    server = NpmRegistry(tmp_path_factory.mktemp("npm-registry"))
    server.start()
    right = server.add("@demo/right", "2.0.0", license="(MIT OR Apache-2.0)", code='module.exports = "right 2.0.0";\n')
    left = server.add("left", "1.0.0", dependencies={"@demo/right": "^2.0.0"},
                      code='module.exports = "left 1.0.0 with " + require("@demo/right");\n')  # fmt: skip
    extra = server.add("extra", "1.0.0", license="SEE LICENSE IN LICENSE.md")
    newer = server.add("newer", "1.0.0", license="ISC")
    yield server, [right, left, extra, newer]
    server.stop()


@pytest.fixture(scope="module")
def first_build(
    tmp_path_factory: pytest.TempPathFactory,
    bp_cnb: Cnb,
    languages: LanguageImages,
    registry_packages: tuple[NpmRegistry, list[NpmPackage]],
) -> tuple[Project, str]:
    registry, packages = registry_packages
    deps = {"left": "1.0.0", "extra": "1.0.0"}
    packages = packages[:3]
    project = make_project(
        tmp_path_factory.mktemp("node-project"),
        ["node", "procfile"],
        {
            "server.js": SERVER,
            "package.json": package_json(deps),
            "package-lock.json": registry.lockfile("node-test-app", deps, packages),
        },
        env={"npm_config_registry": registry.url + "/"},
    )
    done = create(bp_cnb, project, languages)
    return project, done.stdout + done.stderr


@pytest.mark.integration
def test_first_build_installs_serves_and_lists_node_modules(first_build: tuple[Project, str], bp_cnb: Cnb) -> None:
    project, output = first_build
    assert "cnb/node: the package cache layer is empty; using the registry" in output
    assert "cnb/node: npm ci --omit=dev --prefer-offline" in output
    assert "cnb/node: web process (scripts.start): /bin/sh -c node server.js" in output
    (node,) = [bp for bp in lifecycle_metadata(project.layout)["buildpacks"] if bp["key"] == "cnb/node"]
    assert set(node["layers"]) == {"modules"}  # the npm cache is cache-only
    assert (project.app / "node_modules").readlink() == Path("/layers/cnb_node/modules/node_modules")

    text = image_sbom(project.layout, "launch/cnb_node/modules/sbom.cdx.json")
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    assert JsonStrictValidator(SchemaVersion.V1_5).validate_str(text) is None
    components = json.loads(text)["components"]
    assert [(c["name"], c["version"], c["purl"], c.get("licenses")) for c in components] == [
        ("@demo/right", "2.0.0", "pkg:npm/%40demo/right@2.0.0", [{"expression": "(MIT OR Apache-2.0)"}]),
        ("extra", "1.0.0", "pkg:npm/extra@1.0.0", [{"license": {"name": "SEE LICENSE IN LICENSE.md"}}]),
        ("left", "1.0.0", "pkg:npm/left@1.0.0", [{"license": {"id": "MIT"}}]),
    ]

    assert fetch_page(bp_cnb, project.output) == "node test app: left 1.0.0 with right 2.0.0\n"


@pytest.mark.integration
def test_rebuilds_reuse_node_modules_and_install_offline_from_the_cache(
    first_build: tuple[Project, str],
    bp_cnb: Cnb,
    languages: LanguageImages,
    registry_packages: tuple[NpmRegistry, list[NpmPackage]],
) -> None:
    project, _ = first_build
    registry, packages = registry_packages
    before = layer_digests(project.layout)
    modules_before = buildpack_layer_digest(project.layout, "cnb/node", "modules")
    asked = len(registry.requests)

    (project.app / "server.js").write_text(SERVER.replace("node test app", "node test app v2"))
    done = create(bp_cnb, project, languages)
    output = done.stdout + done.stderr
    assert "cnb/node: reusing node_modules (package-lock.json unchanged)" in output
    assert "npm ci" not in output
    assert "cnb/node: web process: " in output  # the launch data kept in the layer, no node process
    assert len(registry.requests) == asked
    after = layer_digests(project.layout)
    app_layer = layer_of(project.layout, lifecycle_metadata(project.layout)["app"][0]["sha"])
    assert [new for old, new in zip(before, after, strict=True) if old != new] == [app_layer]
    assert buildpack_layer_digest(project.layout, "cnb/node", "modules") == modules_before

    # one dependency less (package.json and lockfile): npm ci runs offline, from the cache layer
    deps = {"left": "1.0.0"}
    (project.app / "package.json").write_text(package_json(deps))
    (project.app / "package-lock.json").write_text(registry.lockfile("node-test-app", deps, packages[:2]))
    done = create(bp_cnb, project, languages, "--no-network")
    output = done.stdout + done.stderr
    assert output.count("cnb/node: npm ci --omit=dev --prefer-offline") == 1
    assert len(registry.requests) == asked
    names = [
        c["name"] for c in json.loads(image_sbom(project.layout, "launch/cnb_node/modules/sbom.cdx.json"))["components"]
    ]
    assert names == ["@demo/right", "left"]

    # a package the cache has never seen: the offline attempt fails, the registry is asked
    deps = {"left": "1.0.0", "newer": "1.0.0"}
    (project.app / "package.json").write_text(package_json(deps))
    (project.app / "package-lock.json").write_text(
        registry.lockfile("node-test-app", deps, [*packages[:2], packages[3]])
    )
    done = create(bp_cnb, project, languages)
    output = done.stdout + done.stderr
    assert output.count("cnb/node: npm ci --omit=dev --prefer-offline") == 1  # one run, no failed offline try
    assert "--offline" not in output.replace("--prefer-offline", "")
    assert any(path.endswith("newer-1.0.0.tgz") for path in registry.requests[asked:])


@pytest.mark.integration
def test_a_platform_npm_cache_replaces_the_cache_layer_and_serves_a_build_without_the_network(
    tmp_path: Path,
    bp_cnb: Cnb,
    languages: LanguageImages,
    registry_packages: tuple[NpmRegistry, list[NpmPackage]],
) -> None:
    """npm_config_cache in the platform env (here a dir in the app; bench/peers.sh mounts one read-only) is npm's
    cache instead of the npm-cache layer: filled by a build with the registry, it serves a build that has neither
    the network nor a build cache."""
    registry, packages = registry_packages
    deps = {"left": "1.0.0"}
    project = make_project(
        tmp_path,
        ["node"],
        {
            "server.js": SERVER,
            "package.json": package_json(deps),
            "package-lock.json": registry.lockfile("node-test-app", deps, packages[:2]),
        },
        env={"npm_config_registry": registry.url + "/", "npm_config_cache": "/workspace/.npm-cache"},
    )
    done = create(bp_cnb, project, languages)
    output = done.stdout + done.stderr
    assert "cnb/node: npm cache: /workspace/.npm-cache (platform env)" in output
    assert "cache layer is empty" not in output
    assert (project.app / ".npm-cache" / "_cacache").is_dir()
    assert not (project.root / "layers" / "cnb_node" / "npm-cache.toml").exists()  # no npm-cache layer
    asked = len(registry.requests)

    shutil.rmtree(project.root / "cache")
    done = create(bp_cnb, project, languages, "--no-network")
    output = done.stdout + done.stderr
    assert output.count("cnb/node: npm ci --omit=dev --prefer-offline") == 1
    assert len(registry.requests) == asked
    names = [
        c["name"] for c in json.loads(image_sbom(project.layout, "launch/cnb_node/modules/sbom.cdx.json"))["components"]
    ]
    assert names == ["@demo/right", "left"]


def node(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", str(LIB / script), *args], capture_output=True, text=True, timeout=30, cwd=cwd,
                          check=True)  # fmt: skip


def plan(app: Path, out: Path) -> dict[str, str]:
    out.mkdir(exist_ok=True)
    node("plan.js", str(app), str(out), "9.9.9")
    return dict(line.split("=", 1) for line in (out / "plan").read_text().splitlines())


def test_fingerprint_follows_the_lockfile_and_dependencies_only(tmp_path: Path) -> None:
    app, out = tmp_path / "app", tmp_path / "out"
    app.mkdir()
    (app / "package.json").write_text(package_json({"left": "1.0.0"}))
    (app / "package-lock.json").write_text('{"lockfileVersion": 3}\n')
    first = plan(app, out)
    assert (first["source"], first["manager"], first["pm"]) == ("package-lock.json", "npm", "")
    (app / "package.json").write_text(package_json({"left": "1.0.0"}, description="scripts and text may change"))
    assert plan(app, out)["fingerprint"] == first["fingerprint"]
    (app / "package-lock.json").write_text('{"lockfileVersion": 3, "packages": {}}\n')
    assert plan(app, out)["fingerprint"] != first["fingerprint"]
    (app / "package-lock.json").unlink()
    no_lock = plan(app, out)
    assert no_lock["source"] == "package.json"
    (app / "package.json").write_text(package_json({"left": "2.0.0"}))
    assert plan(app, out)["fingerprint"] != no_lock["fingerprint"]


@pytest.mark.parametrize(
    ("engines", "ok"), [(">=18", True), ("^18 || >=20", True), ("<18", False), ("1 - 17.x", False), (">17.9", True)]
)
def test_engines_node_is_checked_against_this_node(tmp_path: Path, engines: str, ok: bool) -> None:
    # the host's node is 20 and the build images' 18 or 20: every range above answers the same for all of them
    (tmp_path / "package.json").write_text(package_json({}, engines={"node": engines}))
    done = subprocess.run(["node", str(LIB / "plan.js"), str(tmp_path), str(tmp_path), "1"], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert (done.returncode == 0) == ok, done.stderr
    if not ok:
        assert done.stderr.startswith(f"cnb/node: error: package.json wants node {engines} (engines.node); the build")
        assert done.stderr.count("\n") == 1


def test_unreadable_package_json_and_yarn_berry_without_package_manager_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text("{not json")
    done = subprocess.run(["node", str(LIB / "plan.js"), str(tmp_path), str(tmp_path), "1"], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.startswith("cnb/node: error: package.json cannot be read") and done.stderr.count("\n") == 1
    (tmp_path / "package.json").write_text(package_json({"a": "^1.0.0"}))
    (tmp_path / "yarn.lock").write_text('__metadata:\n  version: 8\n\n"a@npm:^1.0.0":\n  version: 1.0.0\n')
    done = subprocess.run(["node", str(LIB / "plan.js"), str(tmp_path), str(tmp_path), "1"], capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    assert done.returncode == 1
    assert "Yarn 2+ lockfile" in done.stderr


YARN1 = """\
# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.
# yarn lockfile v1


"@s/b@^2.0.0":
  version "2.1.0"
  resolved "https://registry.example/@s/b/-/b-2.1.0.tgz"

a@^1.0.0, a@^1.1.0:
  version "1.2.0"
  resolved "https://registry.example/a/-/a-1.2.0.tgz"
  dependencies:
    "@s/b" "^2.0.0"

dev-only@^3.0.0:
  version "3.0.0"
"""
PNPM6 = """\
lockfileVersion: '6.0'

dependencies:
  a:
    specifier: ^1.0.0
    version: 1.2.0(peer@1.0.0)

devDependencies:
  dev-only:
    specifier: ^3.0.0
    version: 3.0.0

packages:

  /@s/b@2.1.0:
    resolution: {integrity: sha512-x}
    dev: false

  /a@1.2.0(peer@1.0.0):
    dependencies:
      '@s/b': 2.1.0
    dev: false

  /dev-only@3.0.0:
    dev: true
"""


@pytest.mark.parametrize(("lockfile", "text"), [("yarn.lock", YARN1), ("pnpm-lock.yaml", PNPM6)])
def test_sbom_from_a_lockfile_lists_the_production_closure(tmp_path: Path, lockfile: str, text: str) -> None:
    app, out = tmp_path / "app", tmp_path / "out"
    app.mkdir()
    (app / "package.json").write_text(package_json({"a": "^1.0.0"}, devDependencies={"dev-only": "^3.0.0"}))
    (app / lockfile).write_text(text)
    assert plan(app, out)["manager"] == {"yarn.lock": "yarn1", "pnpm-lock.yaml": "pnpm"}[lockfile]
    doc = json.loads((out / "sbom.cdx.json").read_text())
    assert [c["purl"] for c in doc["components"]] == ["pkg:npm/%40s/b@2.1.0", "pkg:npm/a@1.2.0"]


def test_sbom_walks_scoped_nested_and_legacy_packages(tmp_path: Path) -> None:
    modules = tmp_path / "node_modules"
    found = {
        "a": {"name": "a", "version": "1.0.0", "license": "ISC"},
        "@s/b": {"name": "@s/b", "version": "2.0.0", "license": {"type": "BSD"}},
        "a/node_modules/c": {"name": "c", "version": "0.1.0", "licenses": [{"type": "MIT"}, {"type": "GPL-2.0"}]},
        "d": {"name": "d", "version": "3.0.0", "license": "UNLICENSED"},
        "e": {"name": "e", "version": "1.0.0-rc.1+build"},
    }
    for rel, manifest in found.items():
        (modules / rel).mkdir(parents=True)
        (modules / rel / "package.json").write_text(json.dumps(manifest))
    (modules / ".bin").mkdir()
    (modules / ".package-lock.json").write_text("{}")
    doc = json.loads(node("sbom.js", str(modules), "9.9.9").stdout)
    assert doc["metadata"]["tools"]["components"][0]["version"] == "9.9.9"
    assert [(c["purl"], c.get("licenses")) for c in doc["components"]] == [
        ("pkg:npm/%40s/b@2.0.0", [{"license": {"name": "BSD"}}]),
        ("pkg:npm/a@1.0.0", [{"license": {"id": "ISC"}}]),
        ("pkg:npm/c@0.1.0", [{"license": {"name": "MIT"}}, {"license": {"name": "GPL-2.0"}}]),
        ("pkg:npm/d@3.0.0", [{"license": {"name": "UNLICENSED"}}]),
        ("pkg:npm/e@1.0.0-rc.1%2Bbuild", None),
    ]


@pytest.mark.parametrize(
    ("manifest", "files", "command"),
    [
        ({"scripts": {"start": 'node srv.js --port "$PORT"'}}, [], ["/bin/sh", "-c", 'node srv.js --port "$PORT"']),
        ({}, ["server.js", "index.js"], ["node", "server.js"]),
        ({"main": "lib/main.js"}, ["lib/main.js", "index.js"], ["node", "lib/main.js"]),
        ({}, ["index.js"], ["node", "index.js"]),
        ({}, [], None),
    ],
)
def test_web_process(tmp_path: Path, manifest: dict[str, object], files: list[str], command: list[str] | None) -> None:
    import tomllib

    (tmp_path / "package.json").write_text(json.dumps({"name": "x", "version": "1.0.0", **manifest}))
    for rel in files:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    (tmp_path / "out").mkdir()
    node("plan.js", str(tmp_path), str(tmp_path / "out"), "1")
    launch = tomllib.loads((tmp_path / "out" / "launch.toml").read_text())
    if command is None:
        assert launch == {}
    else:
        assert launch == {"processes": [{"type": "web", "command": command, "default": True}]}
