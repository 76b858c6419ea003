"""Buildpackages (docs/spec-notes.md §10.1): ``.cnb`` files that skopeo reads as OCI archives, images with pack's labels
and one layer per buildpack, read back (ours and pack-style ones) into buildpack directories; package.toml; ``buildpack
new``."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnbplatform.builder.buildpackage import Module, create_package, load_module
from cnbplatform.builder.modules import ModuleResolver
from cnbplatform.errors import CnbError
from cnbplatform.files.buildpack_toml import BuildpackDescriptor
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.package_toml import PackageConfig
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.oci.store.stores import StoreOptions, Stores
from cnbplatform.platform.builder import download
from tests.conftest import REPO, Cnb
from tests.support.builders import BUILD_IMAGE
from tests.support.buildpacks import write_buildpack
from tests.support.tools import skopeo, skopeo_inspect

PROCFILE = REPO / "buildpacks" / "procfile"


@pytest.fixture
def resolver(tmp_path: Path) -> Iterator[ModuleResolver]:
    work = tmp_path / "work"
    work.mkdir()
    with Stores(StoreOptions(home=tmp_path / "home")) as stores:
        yield ModuleResolver(stores, work, downloader=download)


def _tar_members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: m for m in archive.getmembers()}


def _composite(root: Path) -> tuple[Path, Path]:
    """A composite buildpack (test/meta) over test/a (a dir) and test/b (a .tgz), with its package.toml."""
    write_buildpack(root / "src", "test/a", "1.0.0", build="echo a")
    b_dir = write_buildpack(root / "src", "test/b", "2.0.0", build="echo b")
    meta = write_buildpack(
        root / "src", "test/meta", "0.1.0", composite_order=[[("test/a", "1.0.0"), ("test/b", "2.0.0", True)]]
    )
    with tarfile.open(root / "b.tgz", "w:gz") as tgz:
        tgz.add(b_dir, arcname=".")
    package = meta / "package.toml"
    package.write_text(
        f'[buildpack]\nuri = "."\n[[dependencies]]\nuri = "../../test_a/1.0.0"\n[[dependencies]]\nuri = "{root}/b.tgz"\n'
    )
    return meta, package


# -- .cnb files ------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_cnb_file_is_an_oci_archive_with_packs_labels(cnb: Cnb, tmp_path: Path) -> None:
    bp = tmp_path / "procfile"
    subprocess.run(["cp", "-a", str(PROCFILE), str(bp)], check=True)
    (bp / "secret.txt").write_text("x")
    (bp / "secret.txt").chmod(0o600)
    (bp / "bin" / "helper").write_text("#!/bin/sh\n")
    (bp / "bin" / "helper").chmod(0o700)
    (bp / "bin" / "link").symlink_to("helper")
    out = tmp_path / "procfile.cnb"
    cnb("buildpack", "package", str(out), "--path", str(bp), "--format", "file")

    inspected = skopeo_inspect(f"oci-archive:{out}")
    config = skopeo_inspect(f"oci-archive:{out}", "--config")
    metadata = json.loads(inspected["Labels"]["io.buildpacks.buildpackage.metadata"])
    assert (metadata["id"], metadata["version"], metadata["stacks"]) == ("cnb/procfile", "0.1.0", [{"id": "*"}])
    layers = json.loads(inspected["Labels"]["io.buildpacks.buildpack.layers"])
    assert layers["cnb/procfile"]["0.1.0"]["layerDiffID"] == config["rootfs"]["diff_ids"][0]
    assert len(inspected["Layers"]) == 1 and (inspected["Os"], inspected["Architecture"]) == ("linux", "amd64")
    skopeo("copy", f"oci-archive:{out}", f"oci:{tmp_path / 'copy'}:pkg")  # a tool that moves images can read it

    with tarfile.open(out) as outer:
        names = outer.getnames()
        assert {"oci-layout", "index.json"} <= set(names)
        layer_blob = outer.extractfile(f"blobs/sha256/{inspected['Layers'][0].split(':')[1]}")
        assert layer_blob is not None
        members = _tar_members(gzip.decompress(layer_blob.read()))
    top = "cnb/buildpacks/cnb_procfile/0.1.0"
    assert all(n.startswith("cnb") for n in members) and f"{top}/buildpack.toml" in members
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}
    assert members[f"{top}/bin/build"].mode == 0o755 and members[f"{top}/bin/helper"].mode == 0o755
    assert members[f"{top}/secret.txt"].mode == 0o644 and members[top].mode == 0o755
    assert members[f"{top}/bin/link"].issym() and members[f"{top}/bin/link"].linkname == "helper"

    # the same buildpack packaged on another machine gives the same bytes
    other = Cnb(tmp_path / "other", {**cnb.env, "CNB_HOME": str(tmp_path / "other")})
    other("buildpack", "package", str(tmp_path / "again.cnb"), "--path", str(bp))
    assert (tmp_path / "again.cnb").read_bytes() == out.read_bytes()


@pytest.mark.integration
def test_composite_package_round_trips_into_a_builder(tiny_home: Cnb, tmp_path: Path) -> None:
    _, package = _composite(tmp_path)
    out = tmp_path / "meta.cnb"
    tiny_home("buildpack", "package", str(out), "--config", str(package))
    labels = skopeo_inspect(f"oci-archive:{out}")["Labels"]
    assert json.loads(labels["io.buildpacks.buildpackage.metadata"])["id"] == "test/meta"
    layers = json.loads(labels["io.buildpacks.buildpack.layers"])
    assert set(layers) == {"test/a", "test/b", "test/meta"}
    assert layers["test/meta"]["0.1.0"]["order"] == [
        {"group": [{"id": "test/a", "version": "1.0.0"}, {"id": "test/b", "version": "2.0.0", "optional": True}]}
    ]
    config = tmp_path / "builder.toml"
    config.write_text(
        '[[buildpacks]]\nuri = "meta.cnb"\n[[order]]\n[[order.group]]\nid = "test/meta"\n'
        f'[build]\nimage = "{BUILD_IMAGE}"\n[[run.images]]\nimage = "cnb/tiny-run"\n'
    )
    tiny_home("builder", "create", "cnb/meta-builder", "--config", str(config))
    report = json.loads(tiny_home("builder", "inspect", "cnb/meta-builder", "--json").stdout)
    assert {b["id"] for b in report["buildpacks"]} == {"test/a", "test/b", "test/meta"}
    assert report["order"] == [{"group": [{"id": "test/meta", "version": "0.1.0", "optional": False}]}]


# -- reading buildpackages back --------------------------------------------------------------------------------


def test_image_package_reads_back_into_the_same_buildpacks(tmp_path: Path, resolver: ModuleResolver) -> None:
    _, package = _composite(tmp_path)
    config = PackageConfig.load(package)
    entry = resolver.resolve(config.uri, config.base_dir)
    deps = [m for d in config.dependencies for m in resolver.resolve(d.locator, config.base_dir).all]
    image = create_package(entry.main, deps, layer_cache=LayerCache(tmp_path / "lc"), blobs_dir=tmp_path / "blobs")
    LayoutStore(tmp_path / "layout").write(image, "pkg")
    back = resolver.resolve(f"oci:{tmp_path / 'layout'}:pkg", tmp_path, image=True)
    assert back.main.key == "test/meta@0.1.0"
    assert sorted(m.key for m in back.dependencies) == ["test/a@1.0.0", "test/b@2.0.0"]
    a = next(m for m in back.dependencies if m.key == "test/a@1.0.0")
    assert (a.directory / "bin" / "build").read_text() == (
        tmp_path / "src" / "test_a" / "1.0.0" / "bin" / "build"
    ).read_text()
    assert os.access(a.directory / "bin" / "build", os.X_OK)
    assert back.main.directory.name == "0.1.0" and (back.main.directory / "package.toml").is_file()


def _pack_style_cnb(path: Path, buildpacks: list[Path]) -> None:
    """A .cnb written the way older pack versions write it: absolute names in both tars, a Docker manifest, and a
    flattened layer holding every buildpack."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for bp in buildpacks:
            desc = BuildpackDescriptor.load(bp)
            for file in sorted(bp.rglob("*")):
                name = f"/cnb/buildpacks/{desc.escaped_id}/{desc.version}/{file.relative_to(bp)}"
                tar.add(file, arcname=name, recursive=False)
    raw = layer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    blob = gzip.compress(raw)
    descs = [BuildpackDescriptor.load(bp) for bp in buildpacks]
    layers_label = {d.id: {d.version: {"api": d.api, "layerDiffID": diff_id, "stacks": [{"id": "*"}]}} for d in descs}
    labels = {
        "io.buildpacks.buildpackage.metadata": json.dumps(
            {"id": descs[0].id, "version": descs[0].version, "stacks": []}
        ),
        "io.buildpacks.buildpack.layers": json.dumps(layers_label),
    }
    config = json.dumps({"os": "linux", "architecture": "amd64", "config": {"Labels": labels},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()  # fmt: skip
    docker = "application/vnd.docker"
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": f"{docker}.distribution.manifest.v2+json",
        "config": {"mediaType": f"{docker}.container.image.v1+json", "digest": _sha(config), "size": len(config)},
        "layers": [{"mediaType": f"{docker}.image.rootfs.diff.tar.gzip", "digest": _sha(blob), "size": len(blob)}],
    }).encode()  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": f"{docker}.distribution.manifest.v2+json", "digest": _sha(manifest), "size": len(manifest)}
    ]}).encode()  # fmt: skip
    with tarfile.open(path, "w") as outer:
        for name, data in [("/oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("/index.json", index)] + [
            (f"/blobs/sha256/{_sha(d)[7:]}", d) for d in (config, manifest, blob)
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            outer.addfile(info, io.BytesIO(data))


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_pack_style_cnb_with_absolute_names_and_a_flattened_layer(tmp_path: Path, resolver: ModuleResolver) -> None:
    first = write_buildpack(tmp_path / "src", "test/first", "1.0.0", build="echo first")
    second = write_buildpack(tmp_path / "src", "test/second", "3.0.0", build="echo second")
    _pack_style_cnb(tmp_path / "old.cnb", [first, second])
    resolved = resolver.resolve("old.cnb", tmp_path)
    assert resolved.main.key == "test/first@1.0.0"
    assert [m.key for m in resolved.dependencies] == ["test/second@3.0.0"]
    assert (resolved.dependencies[0].directory / "bin" / "build").read_text().endswith("echo second\n")


def test_tgz_and_http_buildpack_archives(tmp_path: Path, resolver: ModuleResolver) -> None:
    with tarfile.open(tmp_path / "procfile.tgz", "w:gz") as tgz:
        tgz.add(PROCFILE, arcname=".")
    from_file = resolver.resolve("procfile.tgz", tmp_path)
    assert from_file.main.key == "cnb/procfile@0.1.0" and not from_file.dependencies
    assert os.access(from_file.main.directory / "bin" / "detect", os.X_OK)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: Quiet(*a, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/procfile.tgz"
        assert resolver.resolve(url, tmp_path).main.key == "cnb/procfile@0.1.0"
        with pytest.raises(CnbError, match="404"):
            resolver.resolve(f"http://127.0.0.1:{server.server_address[1]}/missing.tgz", tmp_path)
    finally:
        server.shutdown()
        server.server_close()


def test_locators_that_cannot_be_read_are_refused(tmp_path: Path, resolver: ModuleResolver) -> None:
    (tmp_path / "notes.txt").write_text("not a buildpack")
    (tmp_path / "empty").mkdir()
    for locator, expected in (
        ("notes.txt", "not a directory, a tar archive or a .cnb file"),
        ("empty", "has no buildpack.toml"),
        ("../nowhere/at-all", "no such file or directory"),
        ("urn:cnb:registry:example/x@1.0.0", "not supported"),
        ("ftp://example.invalid/x.tgz", "unsupported locator scheme"),
    ):
        with pytest.raises(CnbError, match=expected):
            resolver.resolve(locator, tmp_path)


# -- package.toml and packaging rules --------------------------------------------------------------------------


def test_package_toml() -> None:
    config = PackageConfig.parse(
        '[buildpack]\nuri = "."\n[[dependencies]]\nimage = "r/x:1"\n[[dependencies]]\nuri = "../y"\n'
        '[[targets]]\nos = "linux"\narch = "arm64"\n',
        "/p/package.toml",
    )
    assert (config.uri, config.kind, config.base_dir) == (".", "buildpack", Path("/p"))
    assert [(d.uri, d.image) for d in config.dependencies] == [("", "r/x:1"), ("../y", "")]
    assert config.targets[0].arch == "arm64"
    for text, expected in (
        ('[buildpack]\nuri = "."\nname = "x"\n', "'buildpack.name': unknown key"),
        ('[[dependencies]]\nuri = "x"\n', "buildpack.uri"),
        ('[buildpack]\nuri = "."\n[[dependencies]]\nuri = "a"\nimage = "b"\n', "both 'uri' and 'image'"),
        ('[buildpack]\nuri = "."\n[platform]\nos = "plan9"\n', "'platform.os'"),
    ):
        with pytest.raises(SpecFileError, match=expected):
            PackageConfig.parse(text, "/p/package.toml")


def test_packaging_rules(tmp_path: Path) -> None:
    a = load_module(write_buildpack(tmp_path, "test/a", "1.0.0"), "buildpack", "a")
    b = load_module(write_buildpack(tmp_path, "test/b", "1.0.0"), "buildpack", "b")
    meta_dir = write_buildpack(
        tmp_path, "test/meta", "1.0.0", composite_order=[[("test/a", "1.0.0"), ("test/c", "1.0.0")]]
    )
    meta = load_module(meta_dir, "buildpack", "meta")
    cache, blobs = LayerCache(tmp_path / "lc"), tmp_path / "blobs"
    with pytest.raises(CnbError, match=re.escape("references buildpack test/c@1.0.0 which is not in the package")):
        create_package(meta, [a], layer_cache=cache, blobs_dir=blobs)
    stacked = write_buildpack(
        tmp_path, "test/bionic", "1.0.0", toml_extra='\n[[stacks]]\nid = "io.buildpacks.stacks.bionic"'
    )
    meta2_dir = write_buildpack(tmp_path, "test/meta2", "1.0.0", composite_order=[[("test/a", "1.0.0")]])
    meta2: Module = load_module(meta2_dir, "buildpack", "meta2")
    with pytest.raises(CnbError, match=re.escape("test/b@1.0.0 is not used by buildpack test/meta2@1.0.0")):
        create_package(meta2, [a, b], layer_cache=cache, blobs_dir=blobs)
    image = create_package(meta2, [a], layer_cache=cache, blobs_dir=blobs)
    assert json.loads(image.config.labels["io.buildpacks.buildpackage.metadata"])["stacks"] == [{"id": "*"}]
    meta3_dir = write_buildpack(
        tmp_path, "test/meta3", "1.0.0", composite_order=[[("test/a", "1.0.0"), ("test/bionic", "1.0.0")]]
    )
    bionic = load_module(stacked, "buildpack", "bionic")
    image = create_package(load_module(meta3_dir, "buildpack", "m3"), [a, bionic], layer_cache=cache, blobs_dir=blobs)
    stacks = json.loads(image.config.labels["io.buildpacks.buildpackage.metadata"])["stacks"]
    assert stacks == [{"id": "io.buildpacks.stacks.bionic"}]  # "*" and bionic merge to bionic (pack's rule)
    assert [layer.diff_id for layer in image.layers()] == list(image.config.diff_ids)
    assert len(image.layers()) == 3


# -- buildpack new ---------------------------------------------------------------------------------------------


def test_buildpack_new_scaffolds_a_sh_buildpack(cnb: Cnb, tmp_path: Path) -> None:
    target = tmp_path / "hello"
    cnb("buildpack", "new", "example/hello", "--path", str(target))
    descriptor = BuildpackDescriptor.load(target)
    assert (descriptor.id, descriptor.version, descriptor.api) == ("example/hello", "1.0.0", "0.12")
    for name in ("detect", "build"):
        script = target / "bin" / name
        assert os.access(script, os.X_OK) and script.read_text().startswith("#!/bin/sh\n")
    env = {"CNB_BUILDPACK_DIR": str(target), "PATH": "/usr/bin:/bin"}
    assert subprocess.run([str(target / "bin" / "detect")], env=env, check=False).returncode == 0
    built = subprocess.run([str(target / "bin" / "build")], env=env, capture_output=True, text=True, check=False)
    assert built.returncode == 0 and "hello build" in built.stdout
    again = cnb("buildpack", "new", "example/hello", "--path", str(target), check=False)
    assert again.returncode != 0 and "exists" in again.stderr
    bad = cnb("buildpack", "new", "app", "--path", str(tmp_path / "app"), check=False)
    assert bad.returncode != 0 and "reserved" in bad.stderr and not (tmp_path / "app").exists()
