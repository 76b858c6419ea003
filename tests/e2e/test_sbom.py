"""Issue 5 "must show": SBOMs of images built by ``cnb lifecycle create`` (bwrap, busybox bases).

Run images: the tiny busybox run image plus a layer with a Debian dpkg database (``status`` and a ``status.d``
entry), or an apk database, or a later layer that whites out a ``status.d`` entry; layers are added with cnb's own
``append_layers`` + ``LayerCache``. Buildpacks write ``launch.sbom.cdx.json`` (npm), a layer ``.sbom.spdx.json``
(pypi) and a layer ``.sbom.syft.json``. The exports are checked by the CycloneDX 1.6 schema and spdx-tools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from cnbplatform.files.labels import LIFECYCLE_METADATA_LABEL, LifecycleMetadata
from cnbplatform.oci.image import FileLayer, Image, as_image
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import Entry, LayerSpec
from cnbplatform.oci.model import Descriptor, History
from cnbplatform.oci.mutate import BuiltImage, append_layers, with_config
from cnbplatform.oci.store.local import LocalStore
from tests.conftest import REPO
from tests.support.buildpacks import write_buildpack, write_order
from tests.support.registry import RunningRegistry, start_registry
from tests.support.sbom import cdx_purls, check_cyclonedx, check_spdx, deb_purl_ok, spdx_purls

pytestmark = pytest.mark.integration

GOLDEN = REPO / "sbom" / "golden"
OS = GOLDEN / "os"
INPUTS = GOLDEN / "inputs"
DEB = [
    ("base-files", "12.4+deb12u5", "amd64"),
    ("libc6", "2.36-9+deb12u4", "amd64"),
    ("libssl3", "3.0.13-1~deb12u1", "amd64"),
    ("tzdata", "2024a-0+deb12u1", "all"),
    ("zlib1g", "1:1.2.13.dfsg-1", "amd64"),
]
SBOM_FORMATS = 'sbom-formats = ["application/vnd.cyclonedx+json", "application/spdx+json", "application/vnd.syft+json"]'


def heredoc(path: str, content: str) -> str:
    return f"cat > \"{path}\" <<'CNB_EOF'\n{content}\nCNB_EOF\n"


NPM_BP = "set -e\n" + heredoc("$CNB_LAYERS_DIR/launch.sbom.cdx.json", (INPUTS / "npm-1.4.cdx.json").read_text())
PYTHON_BP = (
    "set -e\n"
    'mkdir -p "$CNB_LAYERS_DIR/site-packages" "$CNB_LAYERS_DIR/tools"\n'
    'echo flask > "$CNB_LAYERS_DIR/site-packages/installed.txt"\n'
    'echo uuid > "$CNB_LAYERS_DIR/tools/installed.txt"\n'
    "printf '[types]\\nlaunch = true\\n' > \"$CNB_LAYERS_DIR/site-packages.toml\"\n"
    "printf '[types]\\nlaunch = true\\n' > \"$CNB_LAYERS_DIR/tools.toml\"\n"
    + heredoc("$CNB_LAYERS_DIR/site-packages.sbom.spdx.json", (INPUTS / "python-2.3.spdx.json").read_text())
    + heredoc("$CNB_LAYERS_DIR/tools.sbom.syft.json", (INPUTS / "go-modern.syft.json").read_text())
)


def cnb(
    home: Path, *args: str, check: bool = True, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNB_", "DOCKER_"))}
    env.update(CNB_HOME=str(home), PYTHONPATH=str(REPO), **(extra_env or {}))
    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )
    if check and done.returncode != 0:
        raise AssertionError(f"cnb {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done


def add_layer(home: Path, source: str, target: str, entries: list[Entry]) -> Image:
    """*source* from the local store with one more layer of *entries*, stored as *target*."""
    store = LocalStore(home)
    base = as_image(store.read(source))
    blob = LayerCache(home / "layer-cache").create(LayerSpec(entries=tuple(entries)), home / "blobs").blob
    layer = FileLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, blob.path)
    image = append_layers(base, [layer], [History(created_by=f"test: {target}")])
    store.write(image, target)
    return image


def dirs(*paths: str) -> list[Entry]:
    return [Entry.directory(p) for p in paths]


def deb_entries(status: str) -> list[Entry]:
    return [
        *dirs("etc", "usr", "usr/share", "usr/share/doc", "usr/share/doc/libc6", "var", "var/lib", "var/lib/dpkg"),
        *dirs("var/lib/dpkg/status.d"),
        Entry.file("etc/os-release", (OS / "os-release-debian").read_bytes()),
        Entry.file("var/lib/dpkg/status", status.encode()),
        Entry.file("var/lib/dpkg/status.d/libssl3", (OS / "status.d-libssl3").read_bytes()),
        Entry.file("usr/share/doc/libc6/copyright", (OS / "copyright-libc6").read_bytes()),
    ]


@dataclass
class World:
    home: Path
    project: Path
    digests: dict[str, str]


def build_app(home: Path, project: Path, run_image: str, output: str) -> None:
    layers = project / f"layers-{output}"
    layers.mkdir()
    (project / "platform").mkdir(exist_ok=True)
    cnb(
        home, "-q", "lifecycle", "create",
        "--app", str(project / "app"), "--layers", str(layers), "--platform", str(project / "platform"),
        "--buildpacks", str(project / "buildpacks"), "--order", str(project / "order.toml"),
        "--run-image", run_image, "--sandbox", "bwrap", "--build-image", "tiny-build",
        "--cache-dir", str(project / "cache"), output,
        extra_env={"CNB_PLATFORM_API": "0.15"},
    )  # fmt: skip


def stored_digest(home: Path, name: str) -> str:
    """The manifest digest the local store's index.json records for *name* (read without cnb)."""
    index = json.loads((home / "images" / "index.json").read_text())
    for entry in index["manifests"]:
        if entry.get("annotations", {}).get("org.opencontainers.image.ref.name") == f"docker.io/library/{name}:latest":
            return str(entry["digest"])
    raise AssertionError(f"{name} is not in the local store")


def rebase(home: Path, app: str, old_run: str, new_run: str, target: str) -> None:
    """What ``cnb rebase`` does (docs/spec-notes.md §8), done by hand: the app's layers on top of the new run image."""
    store = LocalStore(home)
    image, old, new = (as_image(store.read(n)) for n in (app, old_run, new_run))
    metadata = LifecycleMetadata.from_json(image.config.labels[LIFECYCLE_METADATA_LABEL])
    assert metadata.run_image.top_layer == old.config.diff_ids[-1]
    app_layers = image.layers()[len(old.layers()) :]
    run = replace(
        metadata.run_image,
        top_layer=new.config.diff_ids[-1],
        reference=f"local:docker.io/library/{new_run}@{new.descriptor.digest}",
    )
    labels = {**image.config.labels, LIFECYCLE_METADATA_LABEL: replace(metadata, run_image=run).to_json()}
    rebased = BuiltImage(replace(image.config, history=()), [*new.layers(), *app_layers])
    store.write(with_config(rebased, replace(image.config.config, labels=labels)), target)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("sbom-home")
    cnb(home, "-q", "base", "create", "--config", str(REPO / "builders" / "tiny" / "base.toml"),
        "--build-image", "tiny-build", "--run-image", "tiny-run")  # fmt: skip
    status = (OS / "dpkg-status").read_text()
    add_layer(home, "tiny-run", "run-deb", deb_entries(status))
    upgraded = status.replace("Version: 2.36-9+deb12u4", "Version: 2.36-9+deb12u7").replace(
        "Package: tzdata\n", "Package: tzdata-legacy\n"
    )
    add_layer(home, "tiny-run", "run-deb2", deb_entries(upgraded))
    add_layer(home, "run-deb", "run-wh", [*dirs("var", "var/lib", "var/lib/dpkg", "var/lib/dpkg/status.d"),
                                          Entry.file("var/lib/dpkg/status.d/.wh.libssl3", b"")])  # fmt: skip
    add_layer(home, "tiny-run", "run-apk", [
        *dirs("etc", "lib", "lib/apk", "lib/apk/db"),
        Entry.file("etc/os-release", (OS / "os-release-alpine").read_bytes()),
        Entry.file("lib/apk/db/installed", (OS / "apk-installed").read_bytes()),
    ])  # fmt: skip
    project = tmp_path_factory.mktemp("sbom-project")
    write_buildpack(project / "buildpacks", "test/npm", "1.0.0", build=NPM_BP, toml_extra=SBOM_FORMATS)
    write_buildpack(project / "buildpacks", "test/python", "2.0.0", build=PYTHON_BP, toml_extra=SBOM_FORMATS)
    write_order(project / "order.toml", [[("test/npm", "1.0.0"), ("test/python", "2.0.0")]])
    (project / "app").mkdir()
    (project / "app" / "index.txt").write_text("hello\n")
    for run, app in (("run-deb", "app-deb"), ("run-wh", "app-wh"), ("run-apk", "app-apk")):
        build_app(home, project, run, app)
    rebase(home, "app-deb", "run-deb", "run-deb2", "app-rebased")
    names = ("app-deb", "app-wh", "app-apk", "app-rebased", "run-deb")
    yield World(home, project, {name: stored_digest(home, name) for name in names})


def test_export_cyclonedx_validates_lists_debian_and_app_packages_and_is_reproducible(
    world: World, tmp_path: Path
) -> None:
    first, second = tmp_path / "1.cdx.json", tmp_path / "2.cdx.json"
    cnb(world.home, "sbom", "export", "app-deb", "--format", "cyclonedx", "-o", str(first))
    cnb(world.home, "sbom", "export", "app-deb", "--format", "cyclonedx", "-o", str(second))
    assert first.read_bytes() == second.read_bytes()
    doc = check_cyclonedx(first.read_text())
    purls = cdx_purls(doc)
    for name, version, arch in DEB:
        assert deb_purl_ok(purls[name], name, version, arch), str(purls[name])
    assert "old-removed" not in purls
    for name, kind, version in (("express", "npm", "4.18.2"), ("left-pad", "npm", "1.3.0"), ("flask", "pypi", "3.0.3"),
                                ("requests", "pypi", "2.32.3")):  # fmt: skip
        key = name if name in purls else name.capitalize()
        assert (purls[key].type, purls[key].name, purls[key].version) == (kind, name, version)
    root = doc["metadata"]["component"]
    assert (root["name"], root["version"]) == ("app-deb:latest", world.digests["app-deb"])
    run = next(c for c in doc["components"] if c["version"] == world.digests["run-deb"])
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    assert run["bom-ref"] in deps[root["bom-ref"]]
    assert {"buildpack:test/npm@1.0.0", "buildpack:test/python@2.0.0"} <= deps[root["bom-ref"]]
    assert str(purls["libc6"]) in deps[run["bom-ref"]]
    assert "pkg:npm/express@4.18.2" in deps["buildpack:test/npm@1.0.0"]
    assert "pkg:pypi/flask@3.0.3" in deps["buildpack:test/python@2.0.0"]
    assert doc["metadata"]["timestamp"].startswith("1980-01-01T00:00:01")


def test_export_spdx_passes_spdx_tools_and_is_reproducible(world: World, tmp_path: Path) -> None:
    out = cnb(world.home, "sbom", "export", "app-deb", "--format", "spdx").stdout
    path = tmp_path / "app.spdx.json"
    cnb(world.home, "sbom", "export", "app-deb", "--format", "spdx", "-o", str(path))
    assert path.read_text() == out
    purls = spdx_purls(check_spdx(path))
    for name, version, arch in DEB:
        assert deb_purl_ok(purls[name], name, version, arch), str(purls[name])
    assert str(purls["express"]) == "pkg:npm/express@4.18.2"
    assert str(purls["requests"]) == "pkg:pypi/requests@2.32.3"


def test_export_html_report(world: World) -> None:
    html = cnb(world.home, "sbom", "export", "app-deb", "--format", "html").stdout
    for needle in ("Buildpack test/npm 1.0.0", "Buildpack test/python 2.0.0", "Run image", world.digests["app-deb"],
                   "pkg:npm/express@4.18.2", "GPL-2.0-or-later"):  # fmt: skip
        assert needle in html


def test_apk_and_whiteout_run_images(world: World) -> None:
    from cnbplatform.platform.context import PlatformContext
    from cnbplatform.platform.sbom import image_inventory

    ctx = PlatformContext(home=world.home)
    apk = image_inventory(ctx, "app-apk")
    purls = {c.name: c.purl for c in apk.components if c.purl}
    assert purls["musl"] == "pkg:apk/alpine/musl@1.2.4_git20230717-r4?arch=x86_64&distro=alpine-3.19.1"
    assert {c.name for c in apk.components if (c.purl or "").startswith("pkg:deb/")} == set()
    whited = {c.name for c in image_inventory(ctx, "app-wh").components}
    assert "libssl3" not in whited and "libc6" in whited


def test_download_writes_the_sbom_layer_files(world: World, tmp_path: Path) -> None:
    out = tmp_path / "sbom"
    cnb(world.home, "sbom", "download", "app-deb", "-o", str(out))
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert "launch/test_npm/sbom.cdx.json" in files
    assert "launch/test_python/site-packages/sbom.spdx.json" in files
    assert "launch/test_python/tools/sbom.syft.json" in files
    assert json.loads((out / "launch/test_npm/sbom.cdx.json").read_text()) == json.loads(
        (INPUTS / "npm-1.4.cdx.json").read_text()
    )
    done = cnb(world.home, "sbom", "download", "run-deb", "-o", str(tmp_path / "none"), check=False)
    assert done.returncode != 0 and "no SBOM layer" in done.stderr and "Traceback" not in done.stderr


def sbom_layer_digest(world: World, image: str) -> tuple[str, list[str]]:
    img = as_image(LocalStore(world.home).read(image))
    sha = LifecycleMetadata.from_json(img.config.labels[LIFECYCLE_METADATA_LABEL]).sbom
    layers = img.layers()
    keep = next(layer.descriptor.digest for layer in layers if layer.diff_id == sha)
    return keep, [layer.descriptor.digest for layer in layers if layer.descriptor.digest != keep]


def test_download_reads_only_the_sbom_layer_from_a_layout(world: World, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    cnb(world.home, "image", "copy", "app-deb", f"oci:{layout}:app")
    _, others = sbom_layer_digest(world, "app-deb")
    for digest in others:
        (layout / "blobs" / "sha256" / digest.split(":")[1]).unlink()
    out = tmp_path / "out"
    cnb(world.home, "sbom", "download", f"oci:{layout}:app", "-o", str(out))
    assert (out / "launch/test_python/tools/sbom.syft.json").is_file()
    failed = cnb(world.home, "sbom", "export", f"oci:{layout}:app", check=False)
    assert failed.returncode != 0 and "missing" in failed.stderr  # the other layers really are gone


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A registry of our own: the test deletes blobs from its storage."""
    registry = start_registry(tmp_path / "registry")
    try:
        yield registry
    finally:
        registry.stop()


def test_download_reads_only_the_sbom_layer_from_a_registry(
    world: World, private_registry: RunningRegistry, tmp_path: Path
) -> None:
    ref = f"{private_registry.host}/sbom/app:1"
    insecure = ("--insecure-registry", private_registry.host)
    cnb(world.home, "image", "copy", "app-deb", ref, *insecure)
    _, others = sbom_layer_digest(world, "app-deb")
    for digest in others:
        private_registry.blob_path(digest).unlink()
    out = tmp_path / "out"
    cnb(world.home, "sbom", "download", ref, "--remote", "-o", str(out), *insecure)
    assert (out / "launch/test_npm/sbom.cdx.json").is_file()
    done = cnb(world.home, "sbom", "download", f"oci:{tmp_path}/x", "--remote", check=False)
    assert done.returncode == 2 and "--remote" in done.stderr


def test_diff_before_and_after_a_rebase(world: World) -> None:
    data = json.loads(cnb(world.home, "sbom", "diff", "app-deb", "app-rebased", "--json").stdout)
    assert [c["name"] for c in data["added"]] == ["tzdata-legacy"]
    assert [c["name"] for c in data["removed"]] == ["tzdata"]
    changed = {c["name"]: (c["before"]["version"], c["after"]["version"]) for c in data["changed"]}
    assert changed["libc6"] == ("2.36-9+deb12u4", "2.36-9+deb12u7")
    [run] = [c for c in data["changed"] if c["identity"] == "cnb:run-image"]
    assert (run["before"]["version"], run["after"]["version"]) == (
        world.digests["run-deb"],
        stored_digest(world.home, "run-deb2"),
    )
    assert len(changed) == 2
    human = cnb(world.home, "sbom", "diff", "app-deb", "app-rebased").stdout
    assert "~ libc6 2.36-9+deb12u4 -> 2.36-9+deb12u7" in human
    assert f"{world.digests['run-deb']} -> {run['after']['version']}" in human
    assert "1 added, 1 removed, 2 changed" in human
