"""``cnb inspect`` (issue 5 item 5): an app image built by the lifecycle, inspected in every store.

The image is built once per module (busybox bases, one buildpack with two launch layers, an SBOM, two processes
and a slice; one buildpack without layers). Layer origins are checked against the layers' contents, read from
the layout's blobs with ``tarfile``, and the run image layers against ``skopeo inspect`` of the run image.
Unit tests feed :func:`build_report` synthetic configs for the corner cases.
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cnbplatform.errors import CnbError
from cnbplatform.files.analyzed import BuildpackLayers, LayerEntry, RunImageForRebase
from cnbplatform.files.labels import BuildMetadataLabel, LifecycleMetadata
from cnbplatform.files.metadata import BuildpackRef, ProcessEntry
from cnbplatform.oci.digest import sha256_bytes
from cnbplatform.oci.model import ContainerConfig, Descriptor, History, ImageConfig
from cnbplatform.platform.inspect import LayerOrigin, build_report
from tests.conftest import REPO, Cnb
from tests.support.buildpacks import write_buildpack, write_order
from tests.support.dockerd import RunningDockerd
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect

RUNTIME_BP = r"""
set -e
mkdir -p "$CNB_LAYERS_DIR/runtime/bin" "$CNB_LAYERS_DIR/tools"
printf '#!/bin/sh\necho hello\n' > "$CNB_LAYERS_DIR/runtime/bin/hello"
chmod 755 "$CNB_LAYERS_DIR/runtime/bin/hello"
echo tools > "$CNB_LAYERS_DIR/tools/README"
printf '[types]\nlaunch = true\n' > "$CNB_LAYERS_DIR/runtime.toml"
printf '[types]\nlaunch = true\n' > "$CNB_LAYERS_DIR/tools.toml"
printf '{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}' > "$CNB_LAYERS_DIR/launch.sbom.cdx.json"
cat > "$CNB_LAYERS_DIR/launch.toml" <<'EOF'
[[processes]]
type = "web"
command = ["hello"]
default = true

[[processes]]
type = "worker"
command = ["sh", "-c", "echo working"]
args = ["extra arg"]
working-dir = "/workspace/static"

[[slices]]
paths = ["static"]
EOF
"""

MIRROR = "127.0.0.1:9/mirror/tiny-run:latest"  # only recorded in the label, never contacted
HOMEPAGE = "https://buildpacks.example/runtime"


@dataclass
class Built:
    cnb: Cnb
    layout: Path
    run_layer_digests: list[str]


def _layer_names(layout: Path, digest: str) -> set[str]:
    blob = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    with tarfile.open(blob, "r:*") as tar:
        return {m.name.lstrip("/").rstrip("/") for m in tar.getmembers()}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("inspect")
    home = root / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNB_", "DOCKER_"))}
    env.update(CNB_HOME=str(home), DOCKER_CONFIG=str(root), PYTHONPATH=str(REPO))
    cnb = Cnb(home, env)
    recipe = REPO / "builders" / "tiny" / "base.toml"
    cnb("-q", "base", "create", "--config", str(recipe), "--build-image", "tiny-build", "--run-image", "tiny-run")
    bps = root / "buildpacks"
    write_buildpack(bps, "test/runtime", "1.2.3", build=RUNTIME_BP,
                    toml_extra=f'homepage = "{HOMEPAGE}"\nsbom-formats = ["application/vnd.cyclonedx+json"]')  # fmt: skip
    write_buildpack(bps, "test/plain", "2.0.0")
    order = write_order(root / "order.toml", [[("test/runtime", "1.2.3"), ("test/plain", "2.0.0")]])
    (root / "run.toml").write_text(f'[[images]]\nimage = "tiny-run"\nmirrors = ["{MIRROR}"]\n')
    app = root / "app"
    (app / "static").mkdir(parents=True)
    (app / "index.txt").write_text("hello\n")
    (app / "static" / "logo.txt").write_text("logo\n")
    for name in ("layers", "platform"):
        (root / name).mkdir()
    layout = root / "out"
    cnb(
        "lifecycle", "create", "--app", str(app), "--layers", str(root / "layers"), "--platform", str(root / "platform"),
        "--buildpacks", str(bps), "--order", str(order), "--run", str(root / "run.toml"), "--run-image", "tiny-run",
        "--sandbox", "bwrap", "--build-image", "tiny-build", f"oci:{layout}:app",
        extra_env={"CNB_PLATFORM_API": "0.15"},
    )  # fmt: skip
    cnb("-q", "image", "copy", f"oci:{layout}:app", "inspect-app:1")
    run = skopeo_inspect(f"oci:{home / 'images'}:docker.io/library/tiny-run:latest")
    return Built(cnb, layout, list(run["Layers"]))


def inspect_json(cnb: Cnb, *args: str) -> dict[str, Any]:
    return dict(json.loads(cnb("inspect", "--json", *args).stdout))


def _stable(report: dict[str, Any]) -> dict[str, Any]:
    """What does not depend on the store (an engine re-compresses layers and names the image by its ID)."""
    layers = [(x["diffId"], x["origin"], x["buildpack"], x["name"]) for x in report["layers"]]
    keep = {k: v for k, v in report.items() if k not in ("image", "digest", "layers")}
    return {**keep, "layers": layers}


@pytest.mark.integration
def test_layout_report_matches_what_was_built(built: Built) -> None:
    report = inspect_json(built.cnb, f"oci:{built.layout}:app")
    assert report["digest"] == skopeo_inspect(f"oci:{built.layout}:app")["Digest"]
    assert report["platform"] == "linux/amd64"
    assert report["runImage"]["image"] == "tiny-run" and report["runImage"]["mirrors"] == [MIRROR]
    assert report["rebasable"] is True and report["rebasableLabel"] == "true"
    assert report["base"]["id"] == "io.cnb.tiny" and report["base"]["distro"]["name"] == "busybox"
    assert report["buildpacks"] == [
        {"id": "test/runtime", "version": "1.2.3", "homepage": HOMEPAGE, "layers": ["runtime", "tools"]},
        {"id": "test/plain", "version": "2.0.0", "homepage": "", "layers": []},
    ]
    procs = {p["type"]: p for p in report["processes"]}
    assert report["defaultProcess"] == "web" and procs["web"]["default"] and not procs["worker"]["default"]
    assert procs["worker"]["command"] == ["sh", "-c", "echo working"] and procs["worker"]["args"] == ["extra arg"]
    assert procs["worker"]["workingDir"] == "/workspace/static" and procs["web"]["buildpackId"] == "test/runtime"

    layers = report["layers"]
    manifest = skopeo_inspect(f"oci:{built.layout}:app", "--raw")
    assert [x["digest"] for x in layers] == [d["digest"] for d in manifest["layers"]]
    assert [x["size"] for x in layers] == [d["size"] for d in manifest["layers"]]
    n = len(built.run_layer_digests)
    assert [x["digest"] for x in layers[:n]] == built.run_layer_digests
    origins = [(x["origin"], x["buildpack"], x["name"]) for x in layers]
    assert origins == [("run-image", "", "")] * n + [
        ("buildpack", "test/runtime", "runtime"), ("buildpack", "test/runtime", "tools"), ("sbom", "", ""),
        ("app", "", "slice 1"), ("app", "", "remaining files"), ("launcher", "", ""), ("config", "", ""),
        ("process-types", "", ""),
    ]  # fmt: skip
    # each origin is what the layer holds
    content = {i: _layer_names(built.layout, x["digest"]) for i, x in enumerate(layers)}
    assert "bin/busybox" in content[0]
    assert "layers/test_runtime/runtime/bin/hello" in content[n]
    assert "layers/test_runtime/tools/README" in content[n + 1]
    assert any(name.startswith("layers/sbom/launch/test_runtime") for name in content[n + 2])
    assert any(name.endswith("static/logo.txt") for name in content[n + 3])
    assert any(name.endswith("index.txt") for name in content[n + 4])
    assert not any(name.endswith("logo.txt") for name in content[n + 4])
    assert "cnb/lifecycle/launcher" in content[n + 5]
    assert "layers/config/metadata.toml" in content[n + 6]
    assert {"cnb/process/web", "cnb/process/worker"} <= content[n + 7]


@pytest.mark.integration
def test_local_store_human_output(built: Built) -> None:
    out = built.cnb("inspect", "inspect-app:1").stdout
    lines = out.splitlines()
    for heading in ("Base Image:", "Run Images:", "Buildpacks:", "Processes:"):
        assert heading in lines
    assert "  tiny-run" in lines and f"  {MIRROR} (mirror)" in lines
    assert "Rebasable: true (io.buildpacks.rebasable=true)" in lines
    assert any(line.split() == ["test/runtime", "1.2.3", HOMEPAGE] for line in lines)
    assert any(line.split() == ["test/plain", "2.0.0", "-"] for line in lines)
    web = next(line for line in lines if line.strip().startswith("web"))
    assert web.split()[:3] == ["web", "(default)", "hello"]
    worker = next(line for line in lines if line.strip().startswith("worker"))
    assert "'extra arg'" in worker and worker.rstrip().endswith("/workspace/static") and "(default)" not in worker
    assert any("buildpack test/runtime, layer runtime" in line for line in lines)
    assert any(line.rstrip().endswith("app (slice 1)") for line in lines)
    assert "[" not in out.replace("[types]", "")  # plain text, no markup leaking
    as_json = inspect_json(built.cnb, "inspect-app:1")
    assert _stable(as_json) == _stable(inspect_json(built.cnb, f"oci:{built.layout}:app"))


@pytest.mark.integration
def test_registry(built: Built, registry: RunningRegistry) -> None:
    remote = f"{registry.host}/inspect/app:1"
    built.cnb("-q", "image", "copy", f"oci:{built.layout}:app", remote)
    from_registry = inspect_json(built.cnb, remote)
    from_layout = inspect_json(built.cnb, f"oci:{built.layout}:app")
    assert from_registry["digest"] == from_layout["digest"]
    assert {**from_registry, "image": ""} == {**from_layout, "image": ""}


@pytest.mark.integration
def test_docker_engine(built: Built, dockerd: RunningDockerd) -> None:
    engine = {"DOCKER_HOST": dockerd.base_url}
    built.cnb("-q", "image", "copy", f"oci:{built.layout}:app", "docker-daemon:inspect-app:1", extra_env=engine)
    done = built.cnb("inspect", "--json", "docker-daemon:inspect-app:1", extra_env=engine)
    from_engine = json.loads(done.stdout)
    assert _stable(from_engine) == _stable(inspect_json(built.cnb, f"oci:{built.layout}:app"))
    human = built.cnb("inspect", "docker-daemon:inspect-app:1", extra_env=engine).stdout
    assert "web (default)" in human


@pytest.mark.integration
def test_image_not_built_by_buildpacks(built: Built) -> None:
    done = built.cnb("inspect", "tiny-run", check=False)
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0 and "not built by buildpacks" in done.stderr
    assert done.stdout == ""
    missing = built.cnb("inspect", "no-such-image:1", check=False)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr


# -- unit tests: build_report on synthetic images ---------------------------------------------------------------


def _sha(name: str) -> str:
    return sha256_bytes(name.encode())


def _image(
    labels: dict[str, str], diff_ids: list[str], history: list[str] | None = None, entrypoint: tuple[str, ...] = ()
) -> tuple[ImageConfig, list[Descriptor]]:
    config = ImageConfig(
        architecture="amd64",
        os="linux",
        diff_ids=tuple(diff_ids),
        config=ContainerConfig(labels=labels, entrypoint=entrypoint, working_dir="/workspace"),
        history=tuple(History(created_by=h) for h in history or ()),
    )
    layers = [
        Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", _sha(f"blob{i}"), 10 + i)
        for i in range(len(diff_ids))
    ]
    return config, layers


def _labels(lifecycle: LifecycleMetadata, build: BuildMetadataLabel | None = None) -> dict[str, str]:
    out = {"io.buildpacks.lifecycle.metadata": lifecycle.to_json()}
    if build is not None:
        out["io.buildpacks.build.metadata"] = build.to_json()
    return out


def test_equal_diff_ids_are_told_apart_by_position() -> None:
    """An empty app layer with the same diffID as the run image's top layer stays an app layer; an extension
    layer is recognised by its history; a layer nobody claims is unknown."""
    base, empty, ext, stray, launcher = _sha("base"), _sha("empty"), _sha("ext"), _sha("stray"), _sha("launcher")
    lifecycle = LifecycleMetadata(
        app=(empty,),
        launcher=launcher,
        run_image=RunImageForRebase(top_layer=empty, reference="r", image="run"),
    )
    history = ["base", "base top", "Layer: 'gen', Created by extension: test/ext", "?", "Application Layer", "launcher"]
    config, layers = _image(_labels(lifecycle), [base, empty, ext, stray, empty, launcher], history)
    report = build_report("img", Descriptor("m", _sha("m"), 1), config, layers)
    assert [x.origin for x in report.layers] == [
        LayerOrigin.RUN_IMAGE, LayerOrigin.RUN_IMAGE, LayerOrigin.EXTENSION, LayerOrigin.UNKNOWN, LayerOrigin.APP,
        LayerOrigin.LAUNCHER,
    ]  # fmt: skip
    assert (report.layers[2].buildpack, report.layers[2].name) == ("test/ext", "gen")
    assert report.layers[4].name == "" and [x.index for x in report.layers] == [1, 2, 3, 4, 5, 6]


def test_default_process_follows_the_entrypoint_and_rebasable_false() -> None:
    build = BuildMetadataLabel(
        processes=(ProcessEntry("web", ("a",), buildpack_id="b"), ProcessEntry("cli", ("c",), working_dir="/x")),
        buildpacks=(BuildpackRef("b", "1"),),
        default_process_type="web",
    )
    lifecycle = LifecycleMetadata(
        buildpacks=(BuildpackLayers("b", "1", {"l": LayerEntry(sha=_sha("l"), launch=True)}),)
    )
    labels = {**_labels(lifecycle, build), "io.buildpacks.rebasable": "false"}
    config, layers = _image(labels, [_sha("l")], entrypoint=("/cnb/process/cli",))
    report = build_report("img", Descriptor("m", _sha("m"), 1), config, layers)
    assert report.default_process == "cli" and [p.default for p in report.processes] == [False, True]
    assert report.processes[0].working_dir == "/workspace" and report.processes[1].working_dir == "/x"
    assert report.rebasable is False and report.rebasable_label == "false"
    assert report.layers[0].origin is LayerOrigin.BUILDPACK and report.buildpacks[0].layers == ("l",)
    config, layers = _image(labels, [_sha("l")], entrypoint=("/cnb/lifecycle/launcher",))
    assert build_report("img", Descriptor("m", _sha("m"), 1), config, layers).default_process == "web"


def test_images_without_or_with_broken_labels_are_one_line_errors() -> None:
    config, layers = _image({"org.opencontainers.image.title": "x"}, [_sha("a")])
    with pytest.raises(CnbError, match="not built by buildpacks"):
        build_report("plain:1", Descriptor("m", _sha("m"), 1), config, layers)
    config, layers = _image({"io.buildpacks.lifecycle.metadata": "{not json"}, [_sha("a")])
    with pytest.raises(CnbError, match=re.escape("io.buildpacks.lifecycle.metadata")) as info:
        build_report("broken:1", Descriptor("m", _sha("m"), 1), config, layers)
    assert "\n" not in info.value.message


def test_json_keys_are_the_documented_ones() -> None:
    import cnbplatform.platform.inspect as module

    doc = module.__doc__ or ""
    lifecycle = LifecycleMetadata(app=(_sha("a"),))
    build = BuildMetadataLabel(processes=(ProcessEntry("web", ("a",)),), buildpacks=(BuildpackRef("b", "1"),))
    config, layers = _image(_labels(lifecycle, build), [_sha("a")])
    report = build_report("img", Descriptor("m", _sha("m"), 1), config, layers).to_json_dict()
    for key in report:
        assert re.search(rf"(^|\s){key}\s", doc, re.MULTILINE), key

    def documented(name: str) -> set[str]:
        match = re.search(rf"^{name}\s+\[\{{(.*?)\}}\]", doc, re.MULTILINE)
        assert match, name
        return {k.split(":")[0].strip() for k in match.group(1).split(", ")}

    assert set(report["layers"][0]) == documented("layers")
    assert set(report["processes"][0]) == documented("processes")
    assert set(report["buildpacks"][0]) == documented("buildpacks")
