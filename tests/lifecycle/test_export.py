"""The export phase end to end (docs/spec-notes.md §2.5, §6, §7.2; §16 items 33-48): a hand-made build result on a
busybox run image exported into OCI layouts and a real registry, checked with plain tarfile, skopeo and umoci, and run
with bwrap."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from cnbplatform.errors import PhaseError
from cnbplatform.files.analyzed import LayerEntry
from cnbplatform.files.labels import (
    BUILD_METADATA_LABEL,
    CACHE_METADATA_LABEL,
    EXEC_ENV_LABEL,
    LIFECYCLE_METADATA_LABEL,
    PROJECT_METADATA_LABEL,
    REBASABLE_LABEL,
    CacheMetadata,
    LifecycleMetadata,
)
from cnbplatform.files.metadata import ProcessEntry
from cnbplatform.files.report import ProjectMetadata, ProjectSource, Report
from cnbplatform.lifecycle.cache.directory import COMMITTED, DirCache
from cnbplatform.lifecycle.cache.image import ImageCache
from cnbplatform.oci.image import Image, as_image
from cnbplatform.oci.reference import parse_reference
from cnbplatform.oci.store.daemon import DaemonStore
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.oci.store.stores import StoreOptions, Stores
from tests.lifecycle.export_helpers import (
    GID,
    NODE,
    PY,
    RUN_MIRROR,
    RUN_NAME,
    UID,
    Scene,
    layer_files,
    layer_tar,
    names,
    write_files,
)
from tests.support.dockerd import RunningDockerd
from tests.support.images import PATH_ENV, busybox_entries, tag_in_layout, write_image
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect, umoci_unpack

MTIME = 315532801
CREATED_BY = [
    "Layer: 'deps', Created by buildpack: example/node@1.2.3",
    "Layer: 'node', Created by buildpack: example/node@1.2.3",
    "Layer: 'runtime', Created by buildpack: example/py@0.1.0",
    "Software Bill-of-Materials",
    "Application Slice: 1",
    "Application Slice: 2",
    "Buildpacks Application Launcher",
    "Buildpacks Launcher Config",
    "Buildpacks Process Types",
]


@pytest.fixture
def scene(tmp_path: Path) -> Scene:
    return Scene(tmp_path).standard(slices=[["static/*"]])


def lifecycle_label(image: Image) -> LifecycleMetadata:
    return LifecycleMetadata.from_json_strict(image.config.labels[LIFECYCLE_METADATA_LABEL])


def base_count(scene: Scene) -> int:
    return len(scene.run_image.layers())


# -- image structure (items 33-37) ------------------------------------------------------------------------------


def test_run_image_layers_are_an_unchanged_prefix(scene: Scene) -> None:
    """§16 item 33: the image is based on analyzed run-image.reference; its layers are an unchanged prefix."""
    scene.export()
    image, run = scene.image(), scene.run_image
    assert image.manifest.layers[: len(run.manifest.layers)] == run.manifest.layers
    assert image.config.diff_ids[: len(run.config.diff_ids)] == run.config.diff_ids
    assert image.config.history[0] == run.config.history[0]
    assert (image.config.os, image.config.architecture) == (run.config.os, run.config.architecture)
    assert lifecycle_label(image).run_image.reference == scene.run_reference


def test_layer_order(scene: Scene) -> None:
    """§16 item 34: run image, launch layers (group order, then name), SBOM, slices + remainder, launcher, config,
    process types; build-only and cache-only layers are not in the image."""
    scene.export()
    image = scene.image()
    n = base_count(scene)
    assert [h.created_by for h in image.config.history[n:]] == CREATED_BY
    tops = [names(layer_tar(image, i))[2 if i < n + 4 else 1] for i in range(n, len(image.layers()))]
    assert tops[:4] == [
        "layers/example_node/deps",
        "layers/example_node/node",
        "layers/example_py/runtime",
        "layers/sbom/launch",
    ]
    assert names(layer_tar(image, n + 7))[:3] == ["layers", "layers/config", "layers/config/launch"]
    everything = [name for i in range(len(image.layers())) for name in names(layer_tar(image, i))]
    assert not any("toolchain" in name or "wheels" in name for name in everything)
    files = layer_files(image, n + 7)
    assert "layers/config/metadata.toml" in files and "layers/config/launch/process/web.sh" in files


def test_every_lifecycle_layer_entry_is_normalised(scene: Scene) -> None:
    """§16 item 35: mtime 1980-01-01T00:00:01Z, empty uname/gname in every layer the export made."""
    scene.export()
    image = scene.image()
    for index in range(base_count(scene), len(image.layers())):
        for member in layer_tar(image, index):
            assert (member.mtime, member.uname, member.gname) == (MTIME, "", ""), (index, member.name)


def test_owners(scene: Scene) -> None:
    """§16 item 36: layer and app files are uid:gid; the launcher and /cnb/process/* are 0:0, mode 0755."""
    scene.export()
    image = scene.image()
    n = base_count(scene)
    for index in [*range(n, n + 6), n + 7]:
        for member in layer_tar(image, index):
            assert (member.uid, member.gid) == (UID, GID), member.name
    for index in (n + 6, n + 8):
        for member in layer_tar(image, index):
            assert (member.uid, member.gid) == (0, 0), member.name
    launcher = {m.name: m for m in layer_tar(image, n + 6)}["cnb/lifecycle/launcher"]
    assert launcher.mode == 0o755 and launcher.isfile()


def test_process_type_symlinks(scene: Scene) -> None:
    """§16 item 37: /cnb/process/<type> is a symlink to /cnb/lifecycle/launcher for every process type."""
    scene.export()
    links = {m.name: m.linkname for m in layer_tar(scene.image(), -1) if m.issym()}
    assert links == {"cnb/process/web": "/cnb/lifecycle/launcher", "cnb/process/worker": "/cnb/lifecycle/launcher"}


def test_a_forbidden_process_type_fails_the_export(scene: Scene) -> None:
    scene.write_metadata(processes=[ProcessEntry("a|b", ("x",), (), True, NODE.id)], default="")
    with pytest.raises(PhaseError) as info:
        scene.export()
    assert info.value.exit_code == 62 and "a|b" in str(info.value)


def test_app_slices_in_the_image(scene: Scene) -> None:
    """§16 item 46: one slice ⇒ two app layers; the sliced files are only in the first, the rest only in the
    second; the lifecycle metadata lists both."""
    scene.export()
    image = scene.image()
    n = base_count(scene)
    sliced, rest = layer_files(image, n + 4), layer_files(image, n + 5)
    assert set(sliced) == {"workspace/static/a.css", "workspace/static/img/b.png"}
    assert set(rest) == {"workspace/index.js", "workspace/README.md"}
    assert len(lifecycle_label(image).app) == 2


# -- config (items 38-41) -----------------------------------------------------------------------------------------


def test_entrypoint_cmd_and_working_dir(scene: Scene) -> None:
    """§16 item 38: ENTRYPOINT from -process-type, else the buildpack default, else the launcher; CMD empty (the
    run image's is dropped); WorkingDir = app; an unknown -process-type fails with 62."""
    scene.export()
    config = scene.image().config.config
    assert config.entrypoint == ("/cnb/process/web",)
    assert config.cmd is None and scene.run_image.config.config.cmd == ("/bin/sh",)
    assert config.working_dir == "/workspace"
    scene.export("worker", default_process="worker")
    assert scene.image("worker").config.config.entrypoint == ("/cnb/process/worker",)
    scene.write_metadata(default="")
    scene.export("bare")
    assert scene.image("bare").config.config.entrypoint == ("/cnb/lifecycle/launcher",)
    with pytest.raises(PhaseError) as info:
        scene.export("bad", default_process="nope")
    assert info.value.exit_code == 62 and "nope" in str(info.value)


def test_env(scene: Scene) -> None:
    """§16 item 39: CNB_LAYERS_DIR, CNB_APP_DIR, CNB_PLATFORM_API, CNB_DEPRECATION_MODE; PATH starts /cnb/process."""
    scene.export(platform_api="0.13")
    env = scene.image().config.config.env_dict()
    assert env["CNB_LAYERS_DIR"] == "/layers" and env["CNB_APP_DIR"] == "/workspace"
    assert env["CNB_PLATFORM_API"] == "0.13" and env["CNB_DEPRECATION_MODE"] == "quiet"
    assert env["PATH"] == "/cnb/process:/cnb/lifecycle:" + PATH_ENV.partition("=")[2]


def test_created_time(scene: Scene) -> None:
    """§16 item 40: created = 1980-01-01T00:00:01Z, or SOURCE_DATE_EPOCH; new history entries agree."""
    scene.export()
    image = scene.image()
    assert image.config.created == "1980-01-01T00:00:01Z"
    assert {h.created for h in image.config.history[base_count(scene) :]} == {"1980-01-01T00:00:01Z"}
    scene.export("dated", source_date_epoch=1700000000)
    assert scene.image("dated").config.created == "2023-11-14T22:13:20Z"


def test_labels(scene: Scene) -> None:
    """§16 item 41: the three labels, buildpack labels (last definition wins), runImage.topLayer = the run image's
    top diffID, runImage image/mirrors from run.toml, exec-env; base labels such as io.buildpacks.rebasable are
    inherited from the run image."""
    layout = scene.root / "labelled-run"
    config = {"Env": [PATH_ENV], "Labels": {REBASABLE_LABEL: "true", "io.buildpacks.base.id": "busybox"}}
    tag_in_layout(layout, write_image(layout, [busybox_entries()], arch="amd64", config=config), "run")
    run = as_image(LayoutStore(layout).read("run"))
    project = ProjectMetadata(ProjectSource("git", {"commit": "abc"}))
    scene.export(run_image=run, project_metadata=project)
    labels = scene.image().config.labels
    assert labels["com.example.a"] == "last" and labels["com.example.b"] == "b"
    assert labels[REBASABLE_LABEL] == "true" and labels["io.buildpacks.base.id"] == "busybox"
    assert labels[EXEC_ENV_LABEL] == "production"
    assert json.loads(labels[PROJECT_METADATA_LABEL]) == {"source": {"type": "git", "version": {"commit": "abc"}}}
    build = json.loads(labels[BUILD_METADATA_LABEL])
    assert build["buildpack-default-process-type"] == "web"
    assert [p["type"] for p in build["processes"]] == ["web", "worker"]
    assert build["processes"][0]["buildpackID"] == NODE.id
    meta = lifecycle_label(scene.image())
    assert meta.run_image.top_layer == run.config.diff_ids[-1]
    assert (meta.run_image.image, meta.run_image.mirrors) == (RUN_NAME, (RUN_MIRROR,))
    node = meta.for_buildpack(NODE.id)
    assert node is not None and set(node.layers) == {"deps", "node"}
    assert node.layers["node"].metadata == {"version": "18.1"} and node.layers["deps"].cache
    assert [b.key for b in meta.buildpacks] == [NODE.id, PY.id]
    image = scene.image()
    n = base_count(scene)
    assert meta.app == image.config.diff_ids[n + 4 : n + 6]
    assert (meta.launcher, meta.config, meta.process_types) == image.config.diff_ids[n + 6 :]
    assert meta.sbom == image.config.diff_ids[n + 3]
    scene.export("empty-project")
    assert scene.image("empty-project").config.labels[PROJECT_METADATA_LABEL] == "{}"


# -- reproducibility and reuse (items 42-45) ---------------------------------------------------------------------


def test_identical_inputs_give_identical_digests(scene: Scene) -> None:
    """§16 item 42: same config digest and manifest digest twice, also with an empty layer cache."""
    first = scene.export("one")
    shutil.rmtree(scene.layer_cache.cache_dir)
    shutil.rmtree(scene.blobs)
    other = LayoutStore(scene.root / "other")
    second = scene.export("two", destinations=[(other, "two")])
    assert second.descriptor == first.descriptor and second.image_id == first.image_id
    assert as_image(other.read("two")).raw_config == scene.image("one").raw_config


def test_changing_one_app_file_writes_only_the_app_layer(scene: Scene) -> None:
    """§16 item 45 (and DESIGN §3 decision 4): a second export after changing one app file writes exactly the
    remainder app layer, the config and the manifest; every other layer is the previous image's."""
    scene.export()
    previous = scene.image()
    (scene.app / "index.js").write_bytes(b"console.log(2)\n")
    result = scene.export(previous=previous)
    image = scene.image()
    app_layer = image.manifest.layers[base_count(scene) + 5].digest
    (write,) = [w for _, w in result.writes]
    assert sorted(write.written) == sorted([app_layer, image.manifest.config.digest, image.descriptor.digest])
    assert result.added == (image.config.diff_ids[base_count(scene) + 5],)
    assert len(result.reused) == 8
    assert any("Reusing layer 'example/node:node'" in i for i in scene.reporter.infos)


def test_launch_layer_without_contents_is_reused_by_sha(scene: Scene, tmp_path: Path) -> None:
    """§16 item 43: a launch=true layer without a local dir comes from the previous image by the recorded sha, and
    its launch env still reaches the launcher's compiled files."""
    scene.export()
    previous = scene.image()
    node_sha = lifecycle_label(previous).for_buildpack(NODE.id).layers["node"].sha  # type: ignore[union-attr]
    shutil.rmtree(scene.layers / "example_node" / "node")
    result = scene.export("again", previous=previous)
    image = scene.image("again")
    assert image.config.diff_ids[base_count(scene) + 1] == node_sha
    assert image.manifest.layers[base_count(scene) + 1] == previous.manifest.layers[base_count(scene) + 1]
    assert node_sha in result.reused
    web = layer_files(image, base_count(scene) + 7)["layers/config/launch/process/web.sh"]
    assert b"GREETING" in web and b"/layers/example_node/node/bin" in web


def test_launch_layer_without_contents_or_record_fails(scene: Scene) -> None:
    """§16 item 43: no previous metadata for the layer ⇒ export fails with 62 ("cannot reuse")."""
    shutil.rmtree(scene.layers / "example_node" / "node")
    with pytest.raises(PhaseError) as info:
        scene.export()
    assert info.value.exit_code == 62 and "cannot reuse 'example/node:node'" in str(info.value)


def test_launch_cache_layer_without_contents_fails(scene: Scene) -> None:
    """§16 item 44: launch=true, cache=true without a local dir ⇒ export fails."""
    scene.export()
    previous = scene.image()
    shutil.rmtree(scene.layers / "example_node" / "deps")
    with pytest.raises(PhaseError) as info:
        scene.export("again", previous=previous)
    assert info.value.exit_code == 62 and "cache=true but has no contents" in str(info.value)


@pytest.mark.integration
def test_unchanged_layers_are_not_uploaded_to_a_registry_again(scene: Scene, registry: RunningRegistry) -> None:
    """§16 items 45 and 47: with the previous image in the registry, a re-export after an app change uploads only
    the changed app layer and the config; report.toml has the tag, digest and manifest size."""
    with Stores(StoreOptions(home=scene.root / "home")) as stores:
        ref = parse_reference(f"{registry.host}/export/app:1")
        store = stores.remote(ref)
        first = scene.export(destinations=[(store, "1")])
        (write,) = [w for _, w in first.writes]
        assert len(write.written) == base_count(scene) + 9 + 1  # every layer and the config
        previous = as_image(store.read("1"))
        (scene.app / "README.md").write_bytes(b"changed")
        second = scene.export(destinations=[(store, "1")], previous=previous)
        (write,) = [w for _, w in second.writes]
        pushed = as_image(store.read("1"))
        app_layer = pushed.manifest.layers[base_count(scene) + 5].digest
        assert sorted(write.written) == sorted([app_layer, pushed.manifest.config.digest])
        assert write.mounted == []
        report = Report.load(scene.layers / "report.toml")
        assert report.tags == (f"{registry.host}/export/app:1",)
        assert report.digest == pushed.descriptor.digest == second.descriptor.digest
        assert report.manifest_size == len(pushed.raw_manifest)
        inspected = skopeo_inspect(f"docker://{registry.host}/export/app:1")
        assert inspected["Digest"] == second.descriptor.digest


# -- destinations and report (item 47) ---------------------------------------------------------------------------


def test_the_same_image_goes_to_every_tag(scene: Scene) -> None:
    """§16 item 47: one image written to every tag; report.toml lists them with digest and manifest size."""
    second = LayoutStore(scene.root / "second")
    result = scene.export(destinations=[(scene.out, "a"), (scene.out, "b"), (second, "c")])
    digests = {scene.image("a").descriptor.digest, scene.image("b").descriptor.digest}
    digests.add(as_image(second.read("c")).descriptor.digest)
    assert digests == {result.descriptor.digest}
    report = Report.load(scene.layers / "report.toml")
    assert report.tags == (f"oci:{scene.out.root}:a", f"oci:{scene.out.root}:b", f"oci:{second.root}:c")
    assert report.digest == result.descriptor.digest and report.manifest_size == result.descriptor.size
    assert report.image_id == ""


# -- cache (items 48, §7.2) --------------------------------------------------------------------------------------


def test_cache_is_written_and_reused(scene: Scene) -> None:
    """§7.2: cache=true layers with contents and the cache SBOM go to the cache; unchanged ones are reused next
    time; the directories are handed to the cache's extracted-tree store after the image is written."""
    cache = DirCache(scene.root / "cache", scene.layer_cache, reporter=scene.reporter)
    result = scene.export(cache=cache)
    assert result.cache is not None and result.cache.committed
    meta = cache.metadata()
    node, py = meta.for_buildpack(NODE.id), meta.for_buildpack(PY.id)
    assert node is not None and py is not None and set(node.layers) == {"deps"} and set(py.layers) == {"wheels"}
    deps_sha = lifecycle_label(scene.image()).for_buildpack(NODE.id).layers["deps"].sha  # type: ignore[union-attr]
    assert node.layers["deps"] == LayerEntry(deps_sha, {}, build=False, launch=True, cache=True)
    assert meta.sbom is not None and (scene.root / "cache" / COMMITTED / CACHE_METADATA_LABEL).exists()
    assert sorted(result.cache.adopted) == sorted([deps_sha, py.layers["wheels"].sha])
    assert not (scene.layers / "example_node" / "deps").exists()  # moved into the cache's trees
    assert cache.take_tree(deps_sha, scene.layers / "example_node" / "deps")  # what the restorer does
    assert cache.take_tree(py.layers["wheels"].sha, scene.layers / "example_py" / "wheels")
    again = scene.export("again", cache=cache, previous=scene.image())
    assert again.cache is not None and sorted(again.cache.reused) == sorted(
        [deps_sha, py.layers["wheels"].sha, meta.sbom]
    )
    assert again.cache.added == []


@pytest.mark.parametrize("parallel", [1, 4])
def test_cache_failures_only_warn(scene: Scene, parallel: int) -> None:
    """§16 item 48: a cache that cannot be written is a warning; the image is exported anyway."""
    broken = scene.root / "not-a-dir"
    broken.write_bytes(b"")
    cache = DirCache(broken, scene.layer_cache)
    result = scene.export(cache=cache, parallel=parallel)
    assert result.cache is not None and not result.cache.committed
    assert scene.image().descriptor == result.descriptor
    assert any("Failed to export cache" in w for w in scene.reporter.warnings)
    assert (scene.layers / "example_node" / "deps").is_dir()  # not handed to a cache that failed


def test_parallel_export_writes_image_and_cache(scene: Scene) -> None:
    cache = DirCache(scene.root / "cache", scene.layer_cache)
    result = scene.export(cache=cache, parallel=4)
    assert result.cache is not None and result.cache.committed and scene.image().descriptor == result.descriptor


# -- independent checkers and running the image -------------------------------------------------------------------


def bwrap_run(rootfs: Path, image: Image, *argv: str) -> subprocess.CompletedProcess[str]:
    args = ["bwrap", "--bind", str(rootfs), "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all", "--clearenv"]
    for item in image.config.config.env:
        key, _, value = item.partition("=")
        args += ["--setenv", key, value]
    args += ["--chdir", image.config.config.working_dir or "/", "--uid", str(UID), "--gid", str(GID), *argv]
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


@pytest.mark.integration
def test_skopeo_and_umoci_accept_the_image_and_it_runs(scene: Scene, tmp_path: Path) -> None:
    """The exported layout is valid for skopeo and umoci; /cnb/process/web runs through the sh launcher with the
    launch env of the node layer; ownership on disk is uid:gid for app and layers, 0:0 for /cnb."""
    result = scene.export()
    inspected = skopeo_inspect(f"oci:{scene.out.root}:app")
    assert inspected["Digest"] == result.descriptor.digest
    assert len(inspected["Layers"]) == base_count(scene) + 9
    assert inspected["Labels"]["com.example.a"] == "last"
    rootfs = umoci_unpack(scene.out.root, "app", tmp_path / "bundle")
    assert (rootfs / "workspace" / "index.js").stat().st_uid == UID
    assert (rootfs / "layers" / "example_node" / "node").stat().st_gid == GID
    assert (rootfs / "cnb" / "process" / "web").lstat().st_uid == 0
    image = scene.image()
    done = bwrap_run(rootfs, image, *(image.config.config.entrypoint or ()))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["web says hi there", "hello from node"]
    done = bwrap_run(rootfs, image, "/cnb/process/worker", "extra")
    assert (done.returncode, done.stdout.strip()) == (0, "worker extra")


@pytest.mark.integration
def test_a_run_image_without_sh_gets_the_process_baked_in(tmp_path: Path) -> None:
    """DESIGN §3 decision 3: no /bin/sh in the run image ⇒ the default process's env is in the config and its
    command is the entrypoint; it runs without the launcher."""
    scene = Scene(tmp_path).standard()
    layout = tmp_path / "nosh"
    entries = [e for e in busybox_entries() if e.path != "bin/sh"]
    tag_in_layout(layout, write_image(layout, [entries], arch="amd64", config={"Env": [PATH_ENV]}), "run")
    run = as_image(LayoutStore(layout).read("run"))
    web = ProcessEntry("web", ("/bin/busybox", "env"), (), True, NODE.id)
    scene.write_metadata(processes=[web])
    scene.export(run_image=run, run_image_has_shell=False)
    image = scene.image()
    config = image.config.config
    assert config.entrypoint == ("/bin/busybox", "env")
    env = config.env_dict()
    assert env["GREETING"] == "hi there" and "/layers/example_node/node/bin" in env["PATH"]
    rootfs = umoci_unpack(scene.out.root, "app", tmp_path / "bundle")
    assert not (rootfs / "bin" / "sh").exists()
    done = bwrap_run(rootfs, image, *(config.entrypoint or ()))
    assert done.returncode == 0, done.stderr
    assert "GREETING=hi there" in done.stdout.splitlines()


def test_export_needs_metadata_toml(tmp_path: Path) -> None:
    scene = Scene(tmp_path)
    write_files(scene.app, {"a": b"1"})
    with pytest.raises(PhaseError) as info:
        scene.export()
    assert info.value.exit_code == 62


def test_an_image_cache_in_a_layout(scene: Scene) -> None:
    """§7.1/§7.2 with an image cache: the cache image carries the cached layers and the metadata label."""
    store = LayoutStore(scene.root / "cache-store")
    cache = ImageCache(store, "cache", scene.layer_cache)
    result = scene.export(cache=cache)
    assert result.cache is not None and result.cache.committed and result.cache.adopted == []
    cached = as_image(store.read("cache"))
    meta = CacheMetadata.from_json_strict(cached.config.labels[CACHE_METADATA_LABEL])
    node = meta.for_buildpack(NODE.id)
    assert node is not None and set(node.layers) == {"deps"}
    assert {node.layers["deps"].sha, meta.sbom} <= set(cached.config.diff_ids)
    assert (scene.layers / "example_node" / "deps").is_dir()  # an image cache keeps no trees


def test_without_sh_a_process_needing_exec_d_keeps_the_launcher(scene: Scene) -> None:
    """DESIGN §3 decision 3 only applies when the default process needs no exec.d: otherwise the launcher stays."""
    write_files(scene.layers / "example_node" / "node", {"exec.d/setup": b"#!/bin/sh\n"})
    scene.export(run_image_has_shell=False)
    assert scene.image().config.config.entrypoint == ("/cnb/process/web",)
    assert any("exec.d" in w for w in scene.reporter.warnings)


@pytest.mark.integration
def test_daemon_export_reports_the_image_id(scene: Scene, dockerd: RunningDockerd) -> None:
    """§16 item 47 / §5.4: a Docker engine destination gets image-id (the config digest) in report.toml."""
    daemon = DaemonStore(dockerd.base_url)
    try:
        result = scene.export(destinations=[(daemon, "cnb-export-test:1")])
        report = Report.load(scene.layers / "report.toml")
        assert report.tags == ("cnb-export-test:1",)
        assert report.image_id == result.image_id and report.digest == ""
        loaded = as_image(daemon.read("cnb-export-test:1"))
        assert loaded.manifest.config.digest == result.image_id
    finally:
        daemon.close()
