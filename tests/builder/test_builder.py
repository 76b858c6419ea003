"""Builders from builder.toml (docs/spec-notes.md §10.2, §10.3, §1.1, §5.2): pack's schema read unchanged, pack's layout
and labels written, refusals that name the problem, and a builder that ``cnb lifecycle create`` builds with."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cnbplatform.builder.builder import create_builder
from cnbplatform.builder.modules import ModuleResolver
from cnbplatform.errors import CnbError
from cnbplatform.files.builder_toml import BuilderConfig
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.order import Order
from cnbplatform.files.run_toml import RunConfig
from cnbplatform.files.system import SystemConfig
from cnbplatform.lifecycle.common import RecordingReporter
from cnbplatform.oci.image import as_image
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.mutate import BuiltImage, with_config
from cnbplatform.oci.rootfs.cache import rootfs_for
from cnbplatform.oci.store.local import LocalStore
from cnbplatform.oci.store.stores import StoreOptions, Stores
from tests.conftest import REPO, Cnb
from tests.support.builders import BUILD_IMAGE, TINY
from tests.support.buildpacks import write_buildpack
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect, umoci_unpack

PACK_STYLE = """
description = "a builder written for pack"

[[buildpacks]]
id = "test/shell"
uri = "bps/shell"

[[buildpacks]]
uri = "file://{root}/bps/extra"

[[buildpacks]]
uri = "shell.cnb"

[[order]]
[[order.group]]
id = "test/shell"
version = "1.0.0"
[[order.group]]
id = "test/extra"
optional = true

[[order]]
[[order.group]]
id = "cnb/procfile"

[build]
image = "{build}"
[[build.env]]
name = "GREETING"
value = "hi"
[[build.env]]
name = "PATH"
value = "/opt/bin"
suffix = "prepend"
delim = ":"

[[run.images]]
image = "{run}"
mirrors = ["127.0.0.1:1/mirror/run:1"]

[system]
[[system.pre.buildpacks]]
id = "test/extra"
optional = true

[lifecycle]
version = "0.20.0"

[[targets]]
os = "linux"
arch = "amd64"
"""


# -- builder.toml ----------------------------------------------------------------------------------------------


def test_builder_toml_in_pack_schema(tmp_path: Path) -> None:
    path = tmp_path / "builder.toml"
    path.write_text(PACK_STYLE.format(root=tmp_path, build="b/build", run="b/run"))
    config = BuilderConfig.load(path)
    assert config.build_image == "b/build" and config.base_dir == tmp_path
    assert [(r.image, r.mirrors) for r in config.run_images] == [("b/run", ("127.0.0.1:1/mirror/run:1",))]
    assert [m.locator for m in config.buildpacks] == ["bps/shell", f"file://{tmp_path}/bps/extra", "shell.cnb"]
    assert config.buildpacks[0].id == "test/shell"
    assert [[(e.id, e.version, e.optional) for e in g] for g in config.order] == [
        [("test/shell", "1.0.0", False), ("test/extra", "", True)],
        [("cnb/procfile", "", False)],
    ]
    assert config.env_files == {"GREETING": b"hi", "PATH.prepend": b"/opt/bin", "PATH.delim": b":"}
    assert [(e.id, e.optional) for e in config.system.pre] == [("test/extra", True)]
    assert config.targets[0].arch == "amd64"
    assert any("lifecycle" in w and "ignored" in w for w in config.warnings)


def test_the_repository_builders_parse() -> None:
    tiny = BuilderConfig.load(TINY / "builder.toml")
    assert (tiny.build_image, [r.image for r in tiny.run_images]) == ("cnb/tiny-build", ["cnb/tiny-run"])
    assert [m.locator for m in tiny.buildpacks] == ["../../buildpacks/procfile"]
    assert (tiny.base_dir / tiny.buildpacks[0].locator / "buildpack.toml").is_file()
    bookworm = BuilderConfig.load(REPO / "builders" / "bookworm" / "builder.toml")
    assert (bookworm.build_image, bookworm.run_images[0].image) == ("cnb/bookworm-build", "cnb/bookworm-run")
    assert [[(e.id, e.optional) for e in g] for g in bookworm.order] == [
        [("cnb/python", False), ("cnb/procfile", True)],
        [("cnb/node", False), ("cnb/procfile", True)],
        [("cnb/procfile", False)],
    ]
    assert not bookworm.warnings


def test_legacy_stack_keys() -> None:
    config = BuilderConfig.parse(
        '[stack]\nid = "s"\nbuild-image = "b"\nrun-image = "r"\nrun-image-mirrors = ["m/r"]\n', "builder.toml"
    )
    assert config.build_image == "b" and config.stack_id == "s"
    assert [(r.image, r.mirrors) for r in config.run_images] == [("r", ("m/r",))]


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('colour = "blue"\n[build]\nimage = "b"\n[[run.images]]\nimage = "r"\n', "'colour'"),
        ('[build]\nimage = "b"\nuser = "x"\n[[run.images]]\nimage = "r"\n', "'build.user'"),
        ('[build]\nimage = "b"\n[[run.images]]\nimage = "r"\nmirror = ["m"]\n', "'run.images[0].mirror'"),
        ('[[buildpacks]]\nurl = "x"\n[build]\nimage = "b"\n[[run.images]]\nimage = "r"\n', "'buildpacks[0].url'"),
        (
            '[[order]]\n[[order.group]]\nid = "x"\noptinal = true\n[build]\nimage = "b"\n[run]\n',
            "'order[0].group[0].optinal'",
        ),
        ('[[run.images]]\nimage = "r"\n', "build.image is required"),
        ('[build]\nimage = "b"\n', "run.images is required"),
        ('[build]\nimage = "b"\n[[run.images]]\nmirrors = ["m"]\n', "'run.images[0].image'"),
        ('[build]\nimage = "b"\n[stack]\nbuild-image = "c"\n[[run.images]]\nimage = "r"\n', "do not match"),
        (
            '[build]\nimage = "b"\n[[build.env]]\nname = "P"\nvalue = "x"\nsuffix = "append"\n[[run.images]]\nimage = "r"\n',
            "'build.env[0].delim'",
        ),
        ('[build]\nimage = "b"\n[[build.env]]\nname = "P"\nsuffix = "after"\n[[run.images]]\nimage = "r"\n', "suffix"),
    ],
)
def test_bad_builder_toml_is_refused_naming_the_key(text: str, named: str) -> None:
    with pytest.raises(SpecFileError) as caught:
        BuilderConfig.parse(text, "/x/builder.toml")
    assert named in str(caught.value) and "/x/builder.toml" in str(caught.value)


# -- the tiny builder, made with the real command ------------------------------------------------------------------


def labels_of(layout: Path, tag: str) -> tuple[dict[str, Any], dict[str, str]]:
    config = skopeo_inspect(f"oci:{layout}:{tag}", "--config")
    return config, config["config"]["Labels"]


@pytest.mark.integration
def test_tiny_builder_layout_and_labels(tiny_home: Cnb, tmp_path: Path) -> None:
    tiny_home("builder", "create", "cnb/tiny-builder", "--config", str(TINY / "builder.toml"))
    layout = tmp_path / "layout"
    tiny_home("image", "copy", "cnb/tiny-builder", f"oci:{layout}:builder")
    tiny_home("image", "copy", BUILD_IMAGE, f"oci:{layout}:build")
    config, labels = labels_of(layout, "builder")
    build, _ = labels_of(layout, "build")
    assert config["config"]["WorkingDir"] == "/layers"
    assert config["config"]["User"] == build["config"]["User"] and "CNB_USER_ID=1000" in config["config"]["Env"]
    base_ids = build["rootfs"]["diff_ids"]
    assert config["rootfs"]["diff_ids"][: len(base_ids)] == base_ids  # the build image's layers come first
    assert len(config["rootfs"]["diff_ids"]) == len(base_ids) + 4  # dirs, lifecycle, cnb/procfile, config files

    metadata = json.loads(labels["io.buildpacks.builder.metadata"])
    assert metadata["description"].startswith("BusyBox base")
    assert [(b["id"], b["version"]) for b in metadata["buildpacks"]] == [("cnb/procfile", "0.1.0")]
    assert metadata["stack"]["runImage"]["image"] == "cnb/tiny-run"
    assert metadata["images"] == [{"image": "cnb/tiny-run", "mirrors": []}]
    assert "0.15" in metadata["lifecycle"]["apis"]["platform"]["supported"]
    assert "0.12" in metadata["lifecycle"]["apis"]["buildpack"]["supported"]
    assert metadata["createdBy"]["name"] == "cnb"
    layers = json.loads(labels["io.buildpacks.buildpack.layers"])
    entry = layers["cnb/procfile"]["0.1.0"]
    assert entry["api"] == "0.12" and entry["targets"] == [{"os": "linux", "arch": ""}]
    assert entry["layerDiffID"] == config["rootfs"]["diff_ids"][len(base_ids) + 2]
    assert json.loads(labels["io.buildpacks.buildpack.order"]) == [
        {"group": [{"id": "cnb/procfile", "version": "0.1.0"}]}
    ]
    assert "io.buildpacks.buildpack.system" not in labels
    assert labels["io.buildpacks.base.id"] == "io.cnb.tiny"  # the build image's labels are kept

    rootfs = umoci_unpack(layout, "builder", tmp_path / "bundle")
    for directory in ("workspace", "layers"):
        st = (rootfs / directory).stat()
        assert (st.st_uid, st.st_gid) == (1000, 1000), directory
    for directory in ("cnb", "cnb/buildpacks", "platform", "platform/env", "cnb/build-config/env"):
        assert (rootfs / directory).stat().st_uid == 0 and (rootfs / directory).is_dir(), directory
    bp = rootfs / "cnb" / "buildpacks" / "cnb_procfile" / "0.1.0"
    assert (bp / "bin" / "build").stat().st_mode & 0o777 == 0o755 and (bp / "bin" / "build").stat().st_uid == 0
    assert (bp / "buildpack.toml").read_bytes() == (REPO / "buildpacks" / "procfile" / "buildpack.toml").read_bytes()
    order = Order.load(rootfs / "cnb" / "order.toml")
    assert [[(e.id, e.version) for e in g] for g in order.groups] == [[("cnb/procfile", "0.1.0")]]
    assert [r.image for r in RunConfig.load(rootfs / "cnb" / "run.toml").images] == ["cnb/tiny-run"]
    assert [r.image for r in RunConfig.load_stack(rootfs / "cnb" / "stack.toml").images] == ["cnb/tiny-run"]
    # the lifecycle Tekton and kpack run: one program under the Go lifecycle's names, the sh launcher, the link
    lifecycle = rootfs / "cnb" / "lifecycle"
    for name in ("analyzer", "detector", "restorer", "builder", "exporter", "creator", "rebaser", "extender"):
        assert os.readlink(lifecycle / name) == "lifecycle", name
    assert (lifecycle / "lifecycle").stat().st_mode & 0o111 and (lifecycle / "lifecycle").stat().st_uid == 0
    assert (lifecycle / "launcher").read_bytes().startswith(b"#!/bin/sh")
    assert os.readlink(rootfs / "lifecycle") == "/cnb/lifecycle"
    described = tomllib.loads((lifecycle / "lifecycle.toml").read_text())
    assert (
        described["apis"]["platform"]["supported"][0] == "0.7" and "0.15" in described["apis"]["platform"]["supported"]
    )
    assert described["lifecycle"]["version"] == labels["io.buildpacks.lifecycle.version"]

    tiny_home(
        "builder", "create", "cnb/tiny-no-lifecycle", "--config", str(TINY / "builder.toml"), "--lifecycle", "none"
    )
    tiny_home("image", "copy", "cnb/tiny-no-lifecycle", f"oci:{layout}:bare")
    bare, _ = labels_of(layout, "bare")
    assert len(bare["rootfs"]["diff_ids"]) == len(base_ids) + 3
    assert config["rootfs"]["diff_ids"][len(base_ids) + 1] not in bare["rootfs"]["diff_ids"]

    # same inputs, another machine: the same builder digest
    other = Cnb(tmp_path / "other", {**tiny_home.env, "CNB_HOME": str(tmp_path / "other")})
    subprocess.run(["cp", "-a", str(tiny_home.home), str(tmp_path / "other")], check=True)
    subprocess.run(["rm", "-rf", str(tmp_path / "other" / "layer-cache")], check=True)
    other("builder", "create", "cnb/again", "--config", str(TINY / "builder.toml"))
    again = json.loads(other("image", "ls", "--json").stdout)
    digests = {row["name"]: row["digest"] for row in again}
    assert digests["cnb/again:latest"] == skopeo_inspect(f"oci:{layout}:builder")["Digest"]


@pytest.mark.integration
def test_lifecycle_create_uses_the_builder(tiny_home: Cnb, tmp_path: Path) -> None:
    tiny_home("builder", "create", "cnb/tiny-builder", "--config", str(TINY / "builder.toml"))
    rootfs = rootfs_for(as_image(LocalStore(tiny_home.home).read("cnb/tiny-builder")), tiny_home.home / "rootfs")
    app = tmp_path / "app"
    subprocess.run(["cp", "-a", str(REPO / "examples" / "shell"), str(app)], check=True)
    (tmp_path / "layers").mkdir()
    (tmp_path / "platform").mkdir()
    tiny_home(
        "lifecycle", "create", "--sandbox", "bwrap", "--build-image", "cnb/tiny-builder",
        "--buildpacks", str(rootfs / "cnb" / "buildpacks"), "--order", str(rootfs / "cnb" / "order.toml"),
        "--run", str(rootfs / "cnb" / "run.toml"), "--system", str(rootfs / "cnb" / "system.toml"),
        "--build-config", str(rootfs / "cnb" / "build-config"),
        "--app", str(app), "--layers", str(tmp_path / "layers"), "--platform", str(tmp_path / "platform"),
        "--cache-dir", str(tmp_path / "cache"), "shell-app",
        extra_env={"CNB_PLATFORM_API": "0.15"},
    )  # fmt: skip
    done = tiny_home("run", "shell-app")
    assert "Hello from a cnb-built image!" in done.stdout
    inspected = json.loads(tiny_home("inspect", "shell-app", "--json").stdout)
    assert inspected["runImage"]["image"] == "cnb/tiny-run"
    assert [b["id"] for b in inspected["buildpacks"]] == ["cnb/procfile"]


def _write_pack_style(root: Path, tiny_home: Cnb) -> Path:
    """A builder.toml with a dir, a file:// dir and a .cnb buildpack, system buildpacks, build env, mirrors."""
    src = root / "src"
    write_buildpack(src, "test/shell", "1.0.0", detect="exit 0", build="echo shell")
    write_buildpack(src, "test/extra", "2.0.0", detect="exit 0", build="echo extra")
    (root / "bps").mkdir()
    (src / "test_shell" / "1.0.0").rename(root / "bps" / "shell")
    (src / "test_extra" / "2.0.0").rename(root / "bps" / "extra")
    tiny_home("buildpack", "package", str(root / "shell.cnb"), "--path", str(REPO / "buildpacks" / "procfile"))
    path = root / "builder.toml"
    path.write_text(PACK_STYLE.format(root=root, build=BUILD_IMAGE, run="cnb/tiny-run"))
    return path


@pytest.mark.integration
def test_pack_style_builder_with_system_env_and_inspect(tiny_home: Cnb, tmp_path: Path) -> None:
    config = _write_pack_style(tmp_path, tiny_home)
    layout = tmp_path / "out"
    tiny_home("builder", "create", f"oci:{layout}:b", "--config", str(config))
    _, labels = labels_of(layout, "b")
    assert json.loads(labels["io.buildpacks.buildpack.system"]) == {
        "pre": {"buildpacks": [{"id": "test/extra", "version": "2.0.0", "optional": True}]}
    }
    assert json.loads(labels["io.buildpacks.buildpack.order"])[0]["group"][1] == {
        "id": "test/extra", "version": "2.0.0", "optional": True,
    }  # fmt: skip
    assert set(json.loads(labels["io.buildpacks.buildpack.layers"])) == {"test/shell", "test/extra", "cnb/procfile"}
    rootfs = umoci_unpack(layout, "b", tmp_path / "bundle")
    env = rootfs / "cnb" / "build-config" / "env"
    assert sorted(p.name for p in env.iterdir()) == ["GREETING", "PATH.delim", "PATH.prepend"]
    assert (env / "PATH.prepend").read_text() == "/opt/bin"
    assert SystemConfig.load(rootfs / "cnb" / "system.toml").pre[0].id == "test/extra"
    assert RunConfig.load(rootfs / "cnb" / "run.toml").images[0].mirrors == ("127.0.0.1:1/mirror/run:1",)

    human = tiny_home("builder", "inspect", f"oci:{layout}:b").stdout
    assert "a builder written for pack" in human and "Group #2:" in human
    assert "mirror 127.0.0.1:1/mirror/run:1" in human and "System buildpacks (pre):" in human
    report = json.loads(tiny_home("builder", "inspect", f"oci:{layout}:b", "--json").stdout)
    assert report["buildImage"]["image"] == BUILD_IMAGE and report["description"] == "a builder written for pack"
    assert report["runImages"] == [{"image": "cnb/tiny-run", "mirrors": ["127.0.0.1:1/mirror/run:1"]}]
    assert {(b["id"], b["version"]) for b in report["buildpacks"]} == {
        ("test/shell", "1.0.0"), ("test/extra", "2.0.0"), ("cnb/procfile", "0.1.0"),
    }  # fmt: skip
    assert [[e["id"] for e in g["group"]] for g in report["order"]] == [["test/shell", "test/extra"], ["cnb/procfile"]]
    assert report["system"]["pre"] == [{"id": "test/extra", "version": "2.0.0", "optional": True}]
    not_builder = tiny_home("builder", "inspect", BUILD_IMAGE, check=False)
    assert not_builder.returncode != 0 and "not a builder" in not_builder.stderr


@pytest.mark.integration
def test_buildpack_from_a_registry_image(tiny_home: Cnb, tmp_path: Path, registry: RunningRegistry) -> None:
    ref = f"{registry.host}/builder-test/procfile:1"
    tiny_home("buildpack", "package", ref, "--path", str(REPO / "buildpacks" / "procfile"), "--publish",
         "--insecure-registry", registry.host)  # fmt: skip
    config = tmp_path / "builder.toml"
    config.write_text(
        f'[[buildpacks]]\nuri = "docker://{ref}"\n[[order]]\n[[order.group]]\nid = "cnb/procfile"\n'
        f'[build]\nimage = "{BUILD_IMAGE}"\n[[run.images]]\nimage = "cnb/tiny-run"\n'
    )
    tiny_home("builder", "create", "cnb/from-registry", "--config", str(config), "--insecure-registry", registry.host)
    report = json.loads(tiny_home("builder", "inspect", "cnb/from-registry", "--json").stdout)
    assert [(b["id"], b["version"]) for b in report["buildpacks"]] == [("cnb/procfile", "0.1.0")]


# -- refusals ------------------------------------------------------------------------------------------------------


def _refused(tiny_home: Cnb, config: Path) -> str:
    done = tiny_home("builder", "create", "cnb/refused", "--config", str(config), check=False)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr
    return lines[0]


@pytest.mark.integration
def test_refusals_name_the_problem(tiny_home: Cnb, tmp_path: Path) -> None:
    good = (
        (TINY / "builder.toml").read_text().replace("../../buildpacks/procfile", str(REPO / "buildpacks" / "procfile"))
    )
    cases = {
        "unknown": (good + '\ncolour = "blue"\n', "'run.images[0].colour': unknown key"),
        "top-unknown": ('colour = "blue"\n' + good, "'colour': unknown key"),
        "missing-in-order": (
            good.replace('id = "cnb/procfile"', 'id = "cnb/missing"'),
            "cnb/missing is not on the builder",
        ),
        "missing-uri": (good.replace(str(REPO / "buildpacks" / "procfile"), str(tmp_path / "nope")), "nope"),
        "missing-version": (
            good.replace('id = "cnb/procfile"', 'id = "cnb/procfile"\nversion = "9.9.9"'),
            "cnb/procfile@9.9.9 is not on the builder",
        ),
        "no-uid": (good.replace(BUILD_IMAGE, "cnb/no-uid-build"), "missing the required env var CNB_USER_ID"),
        "root": (good.replace(BUILD_IMAGE, "cnb/root-build"), "runs as root"),
        "no-build-image": (good.replace(f'image = "{BUILD_IMAGE}"', ""), "build.image is required"),
    }
    store = LocalStore(tiny_home.home)
    build = as_image(store.read(BUILD_IMAGE))
    env = tuple(e for e in build.config.config.env if not e.startswith(("CNB_USER_ID=", "CNB_GROUP_ID=")))
    store.write(with_config(build, replace(build.config.config, env=env)), "cnb/no-uid-build")
    store.write(with_config(build, replace(build.config.config, user="root")), "cnb/root-build")
    for name, (text, expected) in cases.items():
        config = tmp_path / f"{name}.toml"
        config.write_text(text)
        message = _refused(tiny_home, config)
        assert expected in message, (name, message)
    assert "cnb/refused:latest" not in tiny_home("image", "ls").stdout


@pytest.mark.integration
def test_extensions_targets_and_build_env_in_process(tiny_bases: Path, tmp_path: Path) -> None:
    """create_builder itself: extensions go to /cnb/extensions with their own labels; a buildpack whose targets the
    build image does not meet is refused; the result does not depend on the scratch directory."""
    write_buildpack(tmp_path, "test/bp", "1.0.0")
    ext = tmp_path / "ext"
    (ext / "bin").mkdir(parents=True)
    (ext / "extension.toml").write_text('api = "0.12"\n[extension]\nid = "test/ext"\nversion = "0.2.0"\n')
    for name in ("detect", "generate"):
        (ext / "bin" / name).write_text("#!/bin/sh\nexit 0\n")
        (ext / "bin" / name).chmod(0o755)
    text = (
        '[[buildpacks]]\nuri = "test_bp/1.0.0"\n[[extensions]]\nuri = "ext"\n'
        '[[order]]\n[[order.group]]\nid = "test/bp"\n[[order-extensions]]\n[[order-extensions.group]]\nid = "test/ext"\n'
        f'[build]\nimage = "{BUILD_IMAGE}"\n[[run.images]]\nimage = "cnb/tiny-run"\n'
    )
    config_path = tmp_path / "builder.toml"
    config_path.write_text(text)
    cache = LayerCache(tmp_path / "layer-cache")

    def build(config: BuilderConfig, work: str) -> BuiltImage:
        (tmp_path / work).mkdir()
        with Stores(StoreOptions(home=tiny_bases)) as stores:
            resolver = ModuleResolver(stores, tmp_path / work)
            return create_builder(
                config, resolver=resolver, layer_cache=cache, blobs_dir=tmp_path / "blobs", reporter=RecordingReporter()
            )

    image = build(BuilderConfig.load(config_path), "w1")
    labels = image.config.labels
    ext_layers = json.loads(labels["io.buildpacks.extension.layers"])
    assert ext_layers["test/ext"]["0.2.0"]["layerDiffID"] in image.config.diff_ids
    assert json.loads(labels["io.buildpacks.buildpack.order-extensions"]) == [
        {"group": [{"id": "test/ext", "version": "0.2.0"}]}
    ]
    assert [e["id"] for e in json.loads(labels["io.buildpacks.builder.metadata"])["extensions"]] == ["test/ext"]
    assert build(BuilderConfig.load(config_path), "w2").descriptor == image.descriptor

    write_buildpack(tmp_path, "test/arm", "1.0.0", targets=[{"os": "linux", "arch": "arm64"}])
    arm = text.replace("test_bp/1.0.0", "test_arm/1.0.0").replace('id = "test/bp"', 'id = "test/arm"')
    config_path.write_text(arm)
    with pytest.raises(CnbError, match=re.escape("buildpack test/arm@1.0.0 supports linux/arm64, not the build image")):
        build(BuilderConfig.load(config_path), "w3")


@pytest.mark.integration
def test_publish_a_builder(tiny_home: Cnb, registry: RunningRegistry) -> None:
    ref = f"{registry.host}/builder-test/tiny-builder:1"
    insecure = ("--insecure-registry", registry.host)
    tiny_home("builder", "create", ref, "--config", str(TINY / "builder.toml"), "--publish", *insecure)
    report = json.loads(tiny_home("builder", "inspect", ref, "--json", *insecure).stdout)
    assert [b["id"] for b in report["buildpacks"]] == ["cnb/procfile"]
    refused = tiny_home(
        "builder", "create", "oci:/tmp/x:y", "--config", str(TINY / "builder.toml"), "--publish", check=False
    )
    assert refused.returncode != 0 and "--publish" in refused.stderr


@pytest.mark.integration
def test_lifecycle_image_and_a_builder_that_takes_its_lifecycle(tiny_home: Cnb, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    tiny_home("lifecycle", "image", f"oci:{layout}:lifecycle")
    config = skopeo_inspect(f"oci:{layout}:lifecycle", "--config")
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    labels = config["config"]["Labels"]
    apis = json.loads(labels["io.buildpacks.lifecycle.apis"])
    assert apis["platform"]["supported"][0] == "0.7" and apis["platform"]["supported"][-1] == "0.15"
    assert apis["buildpack"]["supported"][-1] == "0.12"
    metadata = json.loads(labels["io.buildpacks.builder.metadata"])
    assert metadata["lifecycle"]["version"] == labels["io.buildpacks.lifecycle.version"]
    assert metadata["api"] == {"buildpack": "0.7", "platform": "0.7"}
    rootfs = umoci_unpack(layout, "lifecycle", tmp_path / "bundle")
    assert os.readlink(rootfs / "cnb" / "lifecycle" / "creator") == "lifecycle"  # kpack takes the last layer
    assert (rootfs / "cnb" / "lifecycle" / "python" / "lib" / "ld.so").is_file()

    tiny_home("builder", "create", "cnb/tiny-taken", "--config", str(TINY / "builder.toml"),
              "--lifecycle", f"oci:{layout}:lifecycle")  # fmt: skip
    tiny_home("image", "copy", "cnb/tiny-taken", f"oci:{layout}:builder")
    builder = skopeo_inspect(f"oci:{layout}:builder", "--config")
    assert config["rootfs"]["diff_ids"][-1] in builder["rootfs"]["diff_ids"]
    assert builder["config"]["Labels"]["io.buildpacks.lifecycle.version"] == labels["io.buildpacks.lifecycle.version"]

    missing = tiny_home("builder", "create", "cnb/tiny-x", "--config", str(TINY / "builder.toml"),
                        "--lifecycle", f"oci:{tmp_path / 'nothing'}:lc", check=False)  # fmt: skip
    assert missing.returncode != 0 and "lifecycle image" in missing.stderr
    assert "Traceback" not in missing.stderr


@pytest.mark.integration
def test_without_a_c_compiler_the_builder_has_no_lifecycle_and_says_so(tiny_home: Cnb, tmp_path: Path) -> None:
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("ldd", "strip"):  # everything the bundle needs but gcc
        (tools / tool).symlink_to(f"/usr/bin/{tool}")
    env = {"PATH": str(tools), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    done = tiny_home("builder", "create", "cnb/tiny-nocc", "--config", str(TINY / "builder.toml"), extra_env=env)
    assert "no C compiler" in done.stderr and "has no /cnb/lifecycle" in done.stderr
    layout = tmp_path / "layout"
    tiny_home("image", "copy", "cnb/tiny-nocc", f"oci:{layout}:builder")
    tiny_home("image", "copy", BUILD_IMAGE, f"oci:{layout}:build")
    builder, build = (
        skopeo_inspect(f"oci:{layout}:builder", "--config"),
        skopeo_inspect(f"oci:{layout}:build", "--config"),
    )
    assert len(builder["rootfs"]["diff_ids"]) == len(build["rootfs"]["diff_ids"]) + 3  # no lifecycle layer
