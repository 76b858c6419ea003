"""A builder, a buildpackage and a run image written the way pack and the Docker engine write them
(tests/support/pack_images.py), pushed to the test registry and used by `cnb build` on an empty $CNB_HOME: what a
pack user with a Paketo or Heroku builder meets."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO, Cnb
from tests.support import pack_images as pk
from tests.support.bookworm import cache_root
from tests.support.dockerd import RunningDockerd
from tests.support.images import PATH_ENV
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo

pytestmark = pytest.mark.integration

SHELL_DETECT = "#!/bin/sh\n[ -f app.sh ] || exit 100\n"
SHELL_BUILD = """#!/bin/sh
set -eu
cat > "$CNB_LAYERS_DIR/launch.toml" <<'EOF'
[[processes]]
type = "web"
command = ["sh", "app.sh"]
default = true
EOF
echo "eco/shell: process web runs app.sh"
"""


@pytest.fixture(scope="session")
def launcher_binary() -> Path:
    """The static test launcher, compiled once per machine (keyed by its source) into the test cache."""
    return pk.static_launcher(cache_root() / "static-launcher")


@dataclass(frozen=True)
class PackBuilder:
    builder: str
    buildpackage: str
    run_image: str


@pytest.fixture(scope="module")
def pack_builder(
    registry: RunningRegistry, launcher_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PackBuilder]:
    """In the registry: a run image, the eco/shell buildpackage and a builder with eco/shell and cnb/procfile."""
    work = tmp_path_factory.mktemp("pack-builder")
    shell = work / "shell-buildpack"
    (shell / "bin").mkdir(parents=True)
    (shell / "buildpack.toml").write_text(
        'api = "0.10"\n\n[buildpack]\nid = "eco/shell"\nversion = "0.0.1"\n\n[[targets]]\nos = "linux"\n'
    )
    for name, text in (("detect", SHELL_DETECT), ("build", SHELL_BUILD)):
        (shell / "bin" / name).write_text(text)
        (shell / "bin" / name).chmod(0o755)
    (shell / "bin" / "build.orig").hardlink_to(shell / "bin" / "build")  # an absolute hard-link target in the layer
    shell_bp = pk.Buildpack(shell, "eco/shell", "0.0.1", api="0.10")
    procfile = pk.Buildpack(REPO / "buildpacks" / "procfile", "cnb/procfile", "0.1.0", api="0.12")
    run = f"{registry.host}/pack/run:1"
    pk.run_image().push(registry.url, "pack/run", "1")
    pk.buildpackage(shell_bp).push(registry.url, "pack/shell-bp", "1")
    image = pk.builder([shell_bp, procfile], [[shell_bp], [procfile]], run_image=run, launcher=launcher_binary,
                       lifecycle_version="0.21.3")  # fmt: skip
    image.push(registry.url, "pack/builder", "1")
    yield PackBuilder(f"{registry.host}/pack/builder:1", f"{registry.host}/pack/shell-bp:1", run)


@pytest.fixture
def shell_app(tmp_path: Path) -> Path:
    app = tmp_path / "shell-app"
    app.mkdir()
    (app / "app.sh").write_text('echo "shell app says hi from $(pwd)"\n')
    return app


@pytest.fixture
def procfile_app(tmp_path: Path) -> Path:
    app = tmp_path / "procfile-app"
    subprocess.run(["cp", "-a", str(REPO / "examples" / "shell"), str(app)], check=True)
    return app


def _member(cnb: Cnb, image: str, name: str) -> bytes:
    """The bytes of *name* in the image's layers (the last layer that has it), read from the local store."""
    from cnbplatform.oci.image import as_image
    from cnbplatform.oci.store.local import LocalStore

    found = b""
    for layer in as_image(LocalStore(cnb.home).read(image)).layers():
        with layer.open() as blob:
            data = gzip.decompress(blob.read())
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar:
                if member.name.lstrip("/") == name and member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    found = extracted.read()
    return found


@pytest.mark.parametrize("policy", ["always", "if-not-present"])
def test_a_pack_builder_from_the_registry_builds_shell_and_procfile_apps_on_an_empty_home(
    cnb: Cnb, pack_builder: PackBuilder, shell_app: Path, procfile_app: Path, launcher_binary: Path, policy: str
) -> None:
    assert not cnb.home.exists()
    for image, app in (("shell-app", shell_app), ("procfile-app", procfile_app)):
        done = cnb("build", image, "--builder", pack_builder.builder, "--path", str(app), "--pull-policy", policy)
        assert f"Successfully built {image}" in done.stdout, done.stderr
    shell = cnb("run", "shell-app")
    assert f"{pk.LAUNCHER_MARKER} web" in shell.stdout  # the builder's launcher started the process
    assert "shell app says hi from /workspace" in shell.stdout
    procfile = cnb("run", "procfile-app")
    assert f"{pk.LAUNCHER_MARKER} web" in procfile.stdout
    assert "Hello from a cnb-built image!" in procfile.stdout
    launcher = _member(cnb, "shell-app", "cnb/lifecycle/launcher")
    assert hashlib.sha256(launcher).digest() == hashlib.sha256(launcher_binary.read_bytes()).digest()
    recorded = json.loads(
        json.loads(cnb("image", "inspect", "--json", "shell-app").stdout)["image"]["labels"][
            "io.buildpacks.lifecycle.metadata"
        ]
    )["runImage"]
    assert recorded["image"] == pack_builder.run_image


def test_builder_inspect_shows_the_pack_builders_order_and_lifecycle(cnb: Cnb, pack_builder: PackBuilder) -> None:
    shown = cnb("builder", "inspect", pack_builder.builder, "--json")
    report = json.loads(shown.stdout)
    text = json.dumps(report)
    order = [[entry["id"] for entry in group] for group in _groups(report)]
    assert order == [["eco/shell"], ["cnb/procfile"]]
    assert "0.21.3" in text
    assert all(f'"0.{n}"' in text for n in range(7, 13))  # the builder's Platform APIs 0.7 to 0.12
    human = cnb("builder", "inspect", pack_builder.builder).stdout
    assert "eco/shell" in human and "cnb/procfile" in human and "0.21.3" in human
    assert not (cnb.home / "images").exists() or pack_builder.builder not in cnb("image", "ls", "--json").stdout


def _groups(report: dict[str, object]) -> list[list[dict[str, str]]]:
    order = report["order"]
    assert isinstance(order, list)
    return [group["group"] if isinstance(group, dict) else group for group in order]


def test_a_buildpack_named_by_a_registry_reference_is_a_buildpackage(
    cnb: Cnb, pack_builder: PackBuilder, shell_app: Path
) -> None:
    done = cnb("build", "bp-flag-app", "--builder", pack_builder.builder, "--path", str(shell_app),
               "--buildpack", pack_builder.buildpackage)  # fmt: skip
    assert "eco/shell: process web runs app.sh" in done.stdout + done.stderr
    assert "shell app says hi" in cnb("run", "bp-flag-app").stdout


def _shell_buildpack(root: Path, says: str) -> pk.Buildpack:
    """eco/shell 0.0.2 whose build says *says*."""
    source = root / says
    (source / "bin").mkdir(parents=True)
    (source / "buildpack.toml").write_text('api = "0.10"\n\n[buildpack]\nid = "eco/shell"\nversion = "0.0.2"\n')
    (source / "bin" / "detect").write_text(SHELL_DETECT)
    (source / "bin" / "build").write_text(SHELL_BUILD.replace("eco/shell: process web runs app.sh", says))
    for name in ("detect", "build"):
        (source / "bin" / name).chmod(0o755)
    return pk.Buildpack(source, "eco/shell", "0.0.2", api="0.10")


def test_a_multi_target_buildpackage_gives_the_target_of_the_build(
    cnb: Cnb, pack_builder: PackBuilder, shell_app: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    images = [
        pk.buildpackage(_shell_buildpack(tmp_path, f"built by the {arch} target"), architecture=arch)
        for arch in ("arm64", "amd64")
    ]
    pk.push_index(registry.url, "pack/multi-bp", "1", images)
    done = cnb("build", "multi-app", "--builder", pack_builder.builder, "--path", str(shell_app),
               "--buildpack", f"docker://{registry.host}/pack/multi-bp:1")  # fmt: skip
    assert "built by the amd64 target" in done.stdout + done.stderr
    assert "arm64" not in done.stdout + done.stderr


def test_builder_and_registry_locators(cnb: Cnb, pack_builder: PackBuilder, shell_app: Path, tmp_path: Path) -> None:
    done = cnb("build", "urn-app", "--builder", pack_builder.builder, "--path", str(shell_app),
               "--buildpack", "urn:cnb:builder:eco/shell@0.0.1")  # fmt: skip
    assert "eco/shell: process web runs app.sh" in done.stdout + done.stderr
    offline = cnb("build", "urn-app", "--builder", pack_builder.builder, "--path", str(shell_app),
                  "--buildpack", "urn:cnb:registry:eco/shell@0.0.1", check=False,
                  extra_env={"CNB_BUILDPACK_REGISTRY_URL": "http://127.0.0.1:9/api/v1"})  # fmt: skip
    assert offline.returncode == 1
    assert "not supported offline" in offline.stderr and "Traceback" not in offline.stderr
    assert len(offline.stderr.strip().splitlines()) <= 2


def test_a_registry_locator_resolves_through_the_buildpack_registry(
    cnb: Cnb, pack_builder: PackBuilder, shell_app: Path
) -> None:
    """urn:cnb:registry:NS/NAME@VERSION is the image the buildpack registry's API names (a local stand-in)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked: list[str] = []

    class Api(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            body = json.dumps({"namespace": "eco", "name": "shell", "version": "0.0.1",
                               "addr": pack_builder.buildpackage}).encode()  # fmt: skip
            self.send_response(200 if self.path == "/api/v1/buildpacks/eco/shell/0.0.1" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/api/v1"
        done = cnb("build", "registry-urn-app", "--builder", pack_builder.builder, "--path", str(shell_app),
                   "--buildpack", "urn:cnb:registry:eco/shell@0.0.1",
                   extra_env={"CNB_BUILDPACK_REGISTRY_URL": url})  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert asked == ["/api/v1/buildpacks/eco/shell/0.0.1"]
    assert "eco/shell: process web runs app.sh" in done.stdout + done.stderr


def _layer_types(cnb: Cnb, image: str) -> list[str]:
    return [
        layer["mediaType"] for layer in json.loads(cnb("image", "inspect", "--json", image).stdout)["image"]["layers"]
    ]


def test_a_zstd_compressed_run_image(
    cnb: Cnb, pack_builder: PackBuilder, shell_app: Path, registry: RunningRegistry
) -> None:
    pk.run_image(zstd=True).push(registry.url, "pack/zstd-run", "1")
    run = f"{registry.host}/pack/zstd-run:1"
    cnb("build", "zstd-app", "--builder", pack_builder.builder, "--path", str(shell_app), "--run-image", run)
    assert _layer_types(cnb, "zstd-app")[0] == pk.OCI_LAYER_ZSTD  # the run image's layer, as it came
    assert "shell app says hi" in cnb("run", "zstd-app").stdout  # and it unpacks


def test_a_run_image_pushed_by_the_docker_engine(
    cnb: Cnb, pack_builder: PackBuilder, shell_app: Path, registry: RunningRegistry, dockerd: RunningDockerd,
    tmp_path: Path,
) -> None:  # fmt: skip
    run = f"{registry.host}/docker/run:1"
    rootfs = pk.rootfs_tar(tmp_path / "rootfs.tar")
    docker = ["docker", "--host", dockerd.base_url]
    changes = ["--change", f"ENV {PATH_ENV}", "--change", "USER 1000:1000", "--change", 'CMD ["/bin/sh"]']
    for args in (["import", *changes, str(rootfs), run], ["push", run]):
        done = subprocess.run([*docker, *args], capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
    manifest = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{run}").stdout)
    assert manifest["mediaType"] == pk.DOCKER_MANIFEST  # Docker v2 schema 2, as the engine pushes
    cnb("build", "docker-run-app", "--builder", pack_builder.builder, "--path", str(shell_app), "--run-image", run)
    assert _layer_types(cnb, "docker-run-app")[0] == pk.DOCKER_LAYER
    assert "shell app says hi" in cnb("run", "docker-run-app").stdout


def test_builder_create_from_registry_base_images_and_a_pack_buildpackage_on_an_empty_home(
    cnb: Cnb, pack_builder: PackBuilder, shell_app: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    pk.build_image().push(registry.url, "pack/build", "1")
    config = tmp_path / "builder.toml"
    config.write_text(
        f'[[buildpacks]]\nuri = "docker://{pack_builder.buildpackage}"\n'
        '[[order]]\n[[order.group]]\nid = "eco/shell"\n'
        f'[build]\nimage = "{registry.host}/pack/build:1"\n[[run.images]]\nimage = "{pack_builder.run_image}"\n'
    )
    cnb("builder", "create", "eco/made-here", "--config", str(config))
    names = [entry["name"] for entry in json.loads(cnb("image", "ls", "--json").stdout)]
    assert f"{registry.host}/pack/build:1" in names  # the base image was pulled into the local store
    cnb("build", "made-here-app", "--builder", "eco/made-here", "--path", str(shell_app))
    assert "shell app says hi" in cnb("run", "made-here-app").stdout


def test_a_cnb_file_with_several_targets_gives_the_target_of_the_build(
    cnb: Cnb, pack_builder: PackBuilder, shell_app: Path, tmp_path: Path
) -> None:
    images = [
        pk.buildpackage(_shell_buildpack(tmp_path, f"file target {arch}"), architecture=arch)
        for arch in ("arm64", "amd64")
    ]
    package = pk.write_cnb_file(tmp_path / "shell.cnb", images)
    done = cnb("build", "cnb-file-app", "--builder", pack_builder.builder, "--path", str(shell_app),
               "--buildpack", str(package))  # fmt: skip
    assert "file target amd64" in done.stdout + done.stderr
    assert "file target arm64" not in done.stdout + done.stderr
