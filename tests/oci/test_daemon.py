"""DaemonStore against a real Docker engine, and the stdlib-built test images, checked by skopeo and umoci."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from cnbplatform.errors import DaemonError, DigestMismatchError, NotFoundError, UsageError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.image import Image, as_image
from cnbplatform.oci.store.daemon import DaemonStore
from cnbplatform.oci.store.layout import LayoutStore
from tests.support.dockerd import RunningDockerd
from tests.support.images import (
    HOST_BUSYBOX,
    make_busybox_image,
    make_multiplatform_index,
    make_random_image,
)

integration = pytest.mark.integration


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    layout = tmp_path_factory.mktemp("busybox-layout")
    make_busybox_image(layout, "busybox")
    return layout


@pytest.fixture
def store(dockerd: RunningDockerd) -> Iterator[DaemonStore]:
    daemon = DaemonStore(dockerd.base_url)
    yield daemon
    daemon.close()


class Recorder:
    def __init__(self) -> None:
        self.advanced: dict[str, int] = {}
        self.finished: dict[str, str] = {}

    def start(self, key: str, description: str, total: int) -> None:
        self.advanced[key] = 0

    def advance(self, key: str, amount: int) -> None:
        self.advanced[key] += amount

    def finish(self, key: str, status: str) -> None:
        self.finished[key] = status


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def unpack(layout: Path, tag: str, bundle: Path) -> Path:
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:{tag}", str(bundle)], check=True, capture_output=True)
    return bundle / "rootfs"


def skopeo_inspect(layout: Path, tag: str, *extra: str) -> dict[str, object]:
    out = subprocess.run(
        ["skopeo", "inspect", *extra, f"oci:{layout}:{tag}"], check=True, capture_output=True, text=True
    )
    return dict(json.loads(out.stdout))


def layer_files(image: Image) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for layer in image.layers():
        with layer.open() as blob, tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob.read()))) as tar:
            for member in tar:
                if member.isreg():
                    data = tar.extractfile(member)
                    assert data is not None
                    files[member.name] = data.read()
    return files


@integration
def test_dockerd_starts_with_a_supported_storage_driver(dockerd: RunningDockerd) -> None:
    assert dockerd.storage_driver in ("overlay2", "vfs")
    print(f"dockerd ({dockerd.storage_driver}) answered after {dockerd.startup_seconds:.2f}s")


@integration
def test_write_loads_an_image_that_runs(store: DaemonStore, dockerd: RunningDockerd, busybox_layout: Path) -> None:
    image = as_image(LayoutStore(busybox_layout).read("busybox"))
    # the session's engine may hold this image from another test: start from an engine without it
    cleaner = docker.DockerClient(base_url=dockerd.base_url)
    try:
        cleaner.images.remove(image.manifest.config.digest, force=True)
    except docker.errors.ImageNotFound:
        pass
    finally:
        cleaner.close()
    progress = Recorder()
    result = store.write(image, "cnb-test/busybox:run", progress)
    assert result.descriptor.digest == image.descriptor.digest
    assert store.image_id("cnb-test/busybox:run") == image.manifest.config.digest
    layer = image.layers()[0].descriptor
    assert progress.advanced[layer.digest] == layer.size
    assert progress.finished[layer.digest] == "loaded"
    client = docker.DockerClient(base_url=dockerd.base_url)
    try:
        output = client.containers.run(
            "cnb-test/busybox:run", ["/bin/busybox", "echo", "hello-cnb"], network_mode="none", remove=True
        )
    finally:
        client.close()
    assert output.strip() == b"hello-cnb"


@integration
def test_writing_an_image_the_engine_has_only_tags_it(store: DaemonStore, busybox_layout: Path) -> None:
    image = LayoutStore(busybox_layout).read("busybox")
    store.write(image, "cnb-test/busybox:first")
    again = store.write(image, "cnb-test/busybox:second")
    assert again.written == [] and as_image(image).manifest.config.digest in again.existing
    assert store.image_id("cnb-test/busybox:second") == store.image_id("cnb-test/busybox:first")


@integration
def test_read_back_is_a_valid_oci_image(store: DaemonStore, busybox_layout: Path, tmp_path: Path) -> None:
    original = as_image(LayoutStore(busybox_layout).read("busybox"))
    store.write(original, "cnb-test/busybox:read")
    saved = as_image(store.read("cnb-test/busybox:read"))
    assert saved.config.diff_ids == original.config.diff_ids
    assert [layer.descriptor.media_type for layer in saved.layers()] == [mt.OCI_LAYER_GZIP]
    assert as_image(store.read("docker.io/cnb-test/busybox:read")).descriptor == saved.descriptor  # deterministic
    out = tmp_path / "out"
    LayoutStore(out).write(saved, "back")
    inspected = skopeo_inspect(out, "back")
    assert inspected["Architecture"] == "amd64" and inspected["Os"] == "linux"
    assert inspected["Layers"] == [saved.layers()[0].descriptor.digest]
    config = skopeo_inspect(out, "back", "--config")["config"]
    assert isinstance(config, dict) and config["Cmd"] == ["/bin/sh"]
    rootfs = unpack(out, "back", tmp_path / "bundle")
    assert sha256_file(rootfs / "bin" / "busybox") == sha256_file(HOST_BUSYBOX)
    assert os.readlink(rootfs / "bin" / "sh") == "busybox"
    assert "cnb:x:1000:1000" in (rootfs / "etc" / "passwd").read_text()


@integration
def test_an_index_loads_the_engines_platform(store: DaemonStore, tmp_path: Path) -> None:
    platform = store.engine_platform()
    make_multiplatform_index(tmp_path, "multi", [f"linux/{platform.architecture}", "linux/s390x"])
    index = LayoutStore(tmp_path).read("multi")
    result = store.write(index, "cnb-test/multi:1")
    assert result.descriptor.platform is not None
    assert result.descriptor.platform.architecture == platform.architecture
    saved = as_image(store.read("cnb-test/multi:1"))
    assert saved.config.architecture == platform.architecture
    assert layer_files(saved) == {"platform.txt": f"linux/{platform.architecture}\n".encode()}


@integration
def test_an_index_without_the_engines_platform_is_refused(store: DaemonStore, tmp_path: Path) -> None:
    make_multiplatform_index(tmp_path, "other", ["linux/s390x", "linux/ppc64le"])
    with pytest.raises(DaemonError, match=r"no image for platform linux/\w+ .*offered: linux/s390x, linux/ppc64le"):
        store.write(LayoutStore(tmp_path).read("other"), "cnb-test/other:1")


@integration
def test_a_corrupt_layer_is_not_loaded(store: DaemonStore, tmp_path: Path) -> None:
    make_random_image(tmp_path, "bad", [100_000], seed=99)  # content the engine has never seen
    image = as_image(LayoutStore(tmp_path).read("bad"))
    blob = tmp_path / "blobs" / "sha256" / image.layers()[0].descriptor.digest.split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    with pytest.raises(DigestMismatchError):
        store.write(image, "cnb-test/bad:1")
    assert "cnb-test/bad:1" not in {s.name for s in store.list()}


@integration
def test_list_tag_and_delete(store: DaemonStore, busybox_layout: Path) -> None:
    store.write(LayoutStore(busybox_layout).read("busybox"), "cnb-test/tags:a")
    store.tag("cnb-test/tags:a", "cnb-test/tags:b")
    listed = {s.name: s.descriptor.digest for s in store.list()}
    assert listed["cnb-test/tags:a"] == listed["cnb-test/tags:b"] == store.image_id("cnb-test/tags:a")
    store.delete("cnb-test/tags:b")
    names = {s.name for s in store.list()}
    assert "cnb-test/tags:b" not in names and "cnb-test/tags:a" in names
    with pytest.raises(NotFoundError, match="cnb-test/tags:b"):
        store.read("cnb-test/tags:b")
    with pytest.raises(NotFoundError):
        store.delete("cnb-test/tags:b")
    with pytest.raises(NotFoundError):
        store.image_id("cnb-test/never:1")


@integration
def test_environment_selects_the_engine(dockerd: RunningDockerd, busybox_layout: Path) -> None:
    daemon = DaemonStore(environment={"DOCKER_HOST": dockerd.base_url})
    daemon.write(LayoutStore(busybox_layout).read("busybox"), "cnb-test/env:1")
    assert "cnb-test/env:1" in {s.name for s in daemon.list()}
    assert daemon.description == f"Docker engine at {dockerd.base_url}"


def test_an_unreachable_engine_is_one_clear_line(tmp_path: Path) -> None:
    url = f"unix://{tmp_path}/nothing.sock"
    for daemon in (DaemonStore(url), DaemonStore(environment={"DOCKER_HOST": url})):
        with pytest.raises(DaemonError) as caught:
            daemon.list()
        message = str(caught.value)
        assert message.startswith(f"cannot reach the Docker engine at {url}: ")
        assert "DOCKER_HOST" in message and "\n" not in message


# -- the test images themselves ------------------------------------------------------------------------


@integration
def test_busybox_image_is_valid_and_reproducible(tmp_path: Path) -> None:
    digest = make_busybox_image(tmp_path / "a", "bb", arch="amd64")
    assert make_busybox_image(tmp_path / "b", "bb", arch="amd64") == digest
    inspected = skopeo_inspect(tmp_path / "a", "bb")
    assert inspected["Digest"] == digest and inspected["Architecture"] == "amd64"
    assert skopeo_inspect(tmp_path / "a", "bb", "--config")["config"] == {
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": ["/bin/sh"],
    }
    rootfs = unpack(tmp_path / "a", "bb", tmp_path / "bundle")
    assert sha256_file(rootfs / "bin" / "busybox") == sha256_file(HOST_BUSYBOX)
    for applet in ("sh", "echo", "ls", "cat", "env", "id", "sleep", "true", "false", "wget", "printf"):
        assert os.readlink(rootfs / "bin" / applet) == "busybox"
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert "cnb:x:1000:" in (rootfs / "etc" / "group").read_text()
    assert (rootfs / "home" / "cnb").stat().st_uid == 1000


@integration
def test_multiplatform_index_has_one_image_per_platform(tmp_path: Path) -> None:
    digest = make_multiplatform_index(tmp_path / "l", "multi")
    raw = skopeo_inspect(tmp_path / "l", "multi", "--raw")
    assert (
        hashlib.sha256(json.dumps(raw, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        == (digest.split(":")[1])
    )
    manifests = raw["manifests"]
    assert isinstance(manifests, list)
    assert [m["platform"]["architecture"] for m in manifests] == ["amd64", "arm64"]
    for arch in ("amd64", "arm64"):
        subprocess.run(
            ["skopeo", "--override-arch", arch, "copy", f"oci:{tmp_path / 'l'}:multi", f"oci:{tmp_path / arch}:x"],
            check=True,
            capture_output=True,
        )
        assert skopeo_inspect(tmp_path / arch, "x")["Architecture"] == arch
        rootfs = unpack(tmp_path / arch, "x", tmp_path / f"bundle-{arch}")
        assert (rootfs / "platform.txt").read_text() == f"linux/{arch}\n"


@integration
def test_random_image_has_one_incompressible_layer_per_size(tmp_path: Path) -> None:
    sizes = [10, 300_000, 2_000_000]
    digest = make_random_image(tmp_path / "a", "rnd", sizes, seed=3)
    assert make_random_image(tmp_path / "b", "rnd", sizes, seed=3) == digest
    assert make_random_image(tmp_path / "c", "rnd", sizes, seed=4) != digest
    assert skopeo_inspect(tmp_path / "a", "rnd")["Digest"] == digest
    layers = skopeo_inspect(tmp_path / "a", "rnd", "--raw")["layers"]
    assert isinstance(layers, list) and len(layers) == len(sizes)
    assert layers[-1]["size"] > sizes[-1]  # random bytes do not compress
    rootfs = unpack(tmp_path / "a", "rnd", tmp_path / "bundle")
    assert [(rootfs / "data" / f"layer-{n}.bin").stat().st_size for n in range(len(sizes))] == sizes


# -- unit tests: the archive formats, through a fake docker-py client --------------------------------


def tar_bytes(members: list[tuple[str, bytes | str]]) -> bytes:
    """A tar of (name, content) members; a str content is a symlink target."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, content in members:
            info = tarfile.TarInfo(name)
            if isinstance(content, str):
                info.type, info.linkname = tarfile.SYMTYPE, content
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeAPI:
    def __init__(self, saved: bytes = b"", image_id: str = "") -> None:
        self.saved, self.image_id = saved, image_id
        self.loaded: list[bytes] = []

    def version(self) -> dict[str, str]:
        return {"Os": "linux", "Arch": "amd64"}

    def inspect_image(self, name: str) -> dict[str, str]:
        if name == self.image_id or (self.saved and not name.startswith("sha256:")):
            return {"Id": self.image_id}
        raise docker.errors.ImageNotFound(f"No such image: {name}")

    def get_image(self, name: str, chunk_size: int) -> Iterator[bytes]:
        for start in range(0, len(self.saved), 1000):  # small chunks: the reader must join them
            yield self.saved[start : start + 1000]

    def load_image(self, data: Iterator[bytes], quiet: bool) -> Iterator[dict[str, str]]:
        self.loaded.append(b"".join(data))
        yield {"stream": "Loaded image: x:1\n"}

    def images(self) -> list[dict[str, object]]:
        raise docker.errors.APIError("500 Server Error", explanation="boom\nsecond line")


class FakeClient:
    def __init__(self, api: FakeAPI) -> None:
        self.api = api

    def close(self) -> None:
        pass


def fake_store(api: FakeAPI) -> DaemonStore:
    return DaemonStore(client_factory=lambda: FakeClient(api))


def saved_layers() -> tuple[bytes, bytes, bytes]:
    """An uncompressed layer tar, a gzip layer, and a config naming both diffIDs."""
    plain = tar_bytes([("a.txt", b"plain layer")])
    inner = tar_bytes([("b.txt", b"gzipped layer")])
    packed = gzip.compress(inner, mtime=0)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{sha(plain)}", f"sha256:{sha(inner)}"]},
        }
    ).encode()
    return plain, packed, config


def check_saved_image(image: Image, plain: bytes, packed: bytes) -> None:
    first, second = image.layers()
    assert first.descriptor.media_type == mt.OCI_LAYER_GZIP
    with first.open() as blob:
        assert gzip.decompress(blob.read()) == plain
    assert second.descriptor.digest == f"sha256:{sha(packed)}"  # already compressed: kept as is
    assert layer_files(image) == {"a.txt": b"plain layer", "b.txt": b"gzipped layer"}


def test_read_docker_25_oci_form_save() -> None:
    plain, packed, config = saved_layers()
    manifest = [{"Config": f"blobs/sha256/{sha(config)}", "RepoTags": ["x:1"],
                 "Layers": [f"blobs/sha256/{sha(plain)}", f"blobs/sha256/{sha(packed)}"]}]  # fmt: skip
    saved = tar_bytes([
        ("blobs/sha256/" + sha(config), config),
        ("blobs/sha256/" + sha(plain), plain),
        ("blobs/sha256/" + sha(packed), packed),
        ("legacy/layer.tar", f"../blobs/sha256/{sha(plain)}"),
        ("index.json", b"{}"),
        ("manifest.json", json.dumps(manifest).encode()),
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
    ])  # fmt: skip
    image = as_image(fake_store(FakeAPI(saved, f"sha256:{sha(config)}")).read("x:1"))
    assert image.raw_config == config
    check_saved_image(image, plain, packed)


def test_read_classic_save_with_a_symlinked_layer() -> None:
    plain, packed, config = saved_layers()
    doubled = json.loads(config)
    doubled["rootfs"]["diff_ids"].insert(1, doubled["rootfs"]["diff_ids"][0])  # the same layer twice
    config = json.dumps(doubled).encode()
    manifest = [{"Config": f"{sha(config)}.json", "RepoTags": ["x:1"],
                 "Layers": ["one/layer.tar", "two/layer.tar", "three/layer.tar"]}]  # fmt: skip
    saved = tar_bytes([
        (f"{sha(config)}.json", config),
        ("one/layer.tar", plain),
        ("two/layer.tar", "../one/layer.tar"),
        ("three/layer.tar", packed),
        ("manifest.json", json.dumps(manifest).encode()),
    ])  # fmt: skip
    image = as_image(fake_store(FakeAPI(saved, f"sha256:{sha(config)}")).read("x:1"))
    assert [layer.descriptor.digest for layer in image.layers()][:2] == [image.layers()[0].descriptor.digest] * 2
    assert len(image.layers()) == 3


def test_read_refuses_a_layer_that_is_not_its_diff_id() -> None:
    plain, _, _ = saved_layers()
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}}).encode()  # fmt: skip
    manifest = [{"Config": "c.json", "RepoTags": None, "Layers": ["l/layer.tar"]}]
    saved = tar_bytes([("c.json", config), ("l/layer.tar", plain), ("manifest.json", json.dumps(manifest).encode())])
    with pytest.raises(DigestMismatchError, match="diffID"):
        fake_store(FakeAPI(saved, "sha256:" + sha(config))).read("x:1")


def test_read_of_a_missing_image_is_not_found() -> None:
    with pytest.raises(NotFoundError, match="'nope:latest' not found in the Docker engine"):
        fake_store(FakeAPI()).read("nope")


def test_engine_refusal_is_one_line() -> None:
    with pytest.raises(DaemonError, match=r"^the Docker engine refused to list images: boom second line$"):
        fake_store(FakeAPI()).list()


def test_write_streams_a_docker_load_archive(busybox_layout: Path) -> None:
    api = FakeAPI()
    image = as_image(LayoutStore(busybox_layout).read("busybox"))
    result = fake_store(api).write(image, "docker.io/library/myapp")
    with tarfile.open(fileobj=io.BytesIO(api.loaded[0])) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isreg()}  # type: ignore[union-attr]
    (entry,) = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["myapp:latest"]
    assert files[entry["Config"]] == image.raw_config
    layer = image.layers()[0]
    with layer.open() as blob:
        assert [files[name] for name in entry["Layers"]] == [blob.read()]
    assert result.written == [image.manifest.config.digest, layer.descriptor.digest]


def test_a_digest_is_not_a_docker_tag(busybox_layout: Path) -> None:
    store = fake_store(FakeAPI())
    image = LayoutStore(busybox_layout).read("busybox")
    with pytest.raises(UsageError, match="name it NAME"):
        store.write(image, "myapp@sha256:" + "a" * 64)
    with pytest.raises(UsageError, match="name it NAME"):
        store.tag("myapp:1", "sha256:" + "a" * 64)


@integration
def test_a_multi_layer_image_round_trips(store: DaemonStore, tmp_path: Path) -> None:
    make_random_image(tmp_path / "in", "rnd", [1_000_000, 3_000_000, 10], seed=11)
    original = as_image(LayoutStore(tmp_path / "in").read("rnd"))
    store.write(original, "cnb-test/random:1")
    saved = as_image(store.read("cnb-test/random:1"))
    assert saved.config.diff_ids == original.config.diff_ids
    LayoutStore(tmp_path / "out").write(saved, "rnd")
    rootfs = unpack(tmp_path / "out", "rnd", tmp_path / "bundle")
    assert (rootfs / "data" / "layer-1.bin").read_bytes() == (
        unpack(tmp_path / "in", "rnd", tmp_path / "bundle-in") / "data" / "layer-1.bin"
    ).read_bytes()
