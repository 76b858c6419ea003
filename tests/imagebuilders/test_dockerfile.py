"""The dockerfile builder: BuildKit through a test-started engine and buildah (daemonless) on one reproducible
Dockerfile, the message when neither is there, and a third-party builder found through its entry point."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

from tests.conftest import REPO
from tests.support.dockerd import RunningDockerd
from tests.support.tools import skopeo_inspect


def app(tmp_path: Path) -> Path:
    source = tmp_path / "app"
    (source / "static").mkdir(parents=True)
    # reproducible: files only (a directory COPY makes creates gets the build time from BuildKit 0.8)
    (source / "Dockerfile").write_text("FROM scratch\nCOPY hello.txt /hello.txt\nCOPY static/index.html /index.html\n")
    (source / "hello.txt").write_text("hello from a Dockerfile\n")
    (source / "static" / "index.html").write_text("<p>hi</p>\n")
    for path in (source / "hello.txt", source / "static" / "index.html"):
        os.utime(path, (0, 0))  # reproducible: BuildKit keeps the sources' mtimes, buildah --timestamp sets 0
    return source


def cnb_build(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnbplatform", "build", *args], env=env, cwd=REPO, capture_output=True, text=True,
        timeout=600, check=False,
    )  # fmt: skip


def entries(layout: Path, tag: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The image's diffIDs and, per layer entry, everything a container sees: name, type, mode, owner, mtime,
    content hash (not the tar header's user and group *names*)."""
    config = skopeo_inspect(f"oci:{layout}:{tag}", "--config")
    layers = skopeo_inspect(f"oci:{layout}:{tag}")["Layers"]
    seen: list[tuple[Any, ...]] = []
    for digest in layers:
        with tarfile.open(layout / "blobs" / "sha256" / digest.split(":", 1)[1]) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
                seen.append((member.name.rstrip("/"), member.type, member.mode, member.uid, member.gid, member.mtime,
                             hashlib.sha256(data).hexdigest()))  # fmt: skip
    return list(config["rootfs"]["diff_ids"]), sorted(seen)


def test_buildkit_and_buildah_give_the_same_files(dockerd: RunningDockerd, tmp_path: Path) -> None:
    """Same files, modes, owners, mtimes and bytes from both tools. The digests differ, and the test pins why:
    BuildKit writes the owner's user and group names into each tar header ('root'), buildah leaves them empty,
    so the layer bytes (diffIDs) differ; and BuildKit of Docker 20.10 sets the config's 'created' to the build
    time (SOURCE_DATE_EPOCH rewriting came with BuildKit 0.13). What must match, the files, matches."""
    source = app(tmp_path)
    layout = tmp_path / "out"
    env = {**os.environ, "CNB_HOME": str(tmp_path / "home"), "SOURCE_DATE_EPOCH": "0", "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items() if not k.startswith("CONTAINERS_")}
    with_engine = cnb_build({**env, "DOCKER_HOST": dockerd.base_url}, f"oci:{layout}:buildkit",
                            "--dockerfile", str(source / "Dockerfile"), "--path", str(source))  # fmt: skip
    assert with_engine.returncode == 0, with_engine.stderr
    assert "[docker]" in with_engine.stdout and "[buildah]" not in with_engine.stdout
    env.pop("DOCKER_HOST", None)
    daemonless = cnb_build(env, f"oci:{layout}:buildah", "--using", "dockerfile", "--path", str(source))
    assert daemonless.returncode == 0, daemonless.stderr
    assert "[buildah]" in daemonless.stdout
    kit_ids, kit_files = entries(layout, "buildkit")
    bah_ids, bah_files = entries(layout, "buildah")
    assert kit_files == bah_files
    assert {name for name, *_ in kit_files} >= {"hello.txt", "index.html"}
    assert skopeo_inspect(f"oci:{layout}:buildah", "--config")["created"] == "1970-01-01T00:00:00Z"
    names = set()
    for tag in ("buildkit", "buildah"):
        for digest in skopeo_inspect(f"oci:{layout}:{tag}")["Layers"]:
            with tarfile.open(layout / "blobs" / "sha256" / digest.split(":", 1)[1]) as tar:
                names |= {(tag, m.uname, m.gname) for m in tar.getmembers()}
    assert names == {("buildkit", "root", "root"), ("buildah", "", "")}  # the one header difference
    assert len(kit_ids) == len(bah_ids)


def test_without_engine_or_buildah_it_says_what_to_install(tmp_path: Path) -> None:
    source = app(tmp_path)
    env = {"CNB_HOME": str(tmp_path / "home"), "PATH": str(tmp_path / "empty"), "PYTHONPATH": str(REPO)}
    done = cnb_build(env, "local:x", "--dockerfile", str(source / "Dockerfile"), "--path", str(source))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "apt-get install buildah" in lines[0] and "DOCKER_HOST" in lines[0], done.stderr


PLUGIN = '''
from cnbplatform.imagebuilders.base import BuiltImage, Pushed
from cnbplatform.imagebuilders import common


class Copier:
    """A third-party builder: the source dir holds an OCI layout already."""

    name = "copier"

    def build(self, ctx, request, reporter):
        reporter.info("copier builds " + request.name)
        return BuiltImage(f"oci:{request.source}:app", "")

    def push(self, ctx, image, destination, tags=()):
        return common.push(ctx, image, destination, tags)

    def pull_credential(self, ctx, registry):
        return None


def factory():
    return Copier()


class Broken(Copier):
    def build(self, ctx, request, reporter):
        raise RuntimeError("the plug-in's own bug")


def broken():
    return Broken()
'''


def test_a_builder_from_another_package_is_found_by_its_entry_point(tmp_path: Path) -> None:
    site = tmp_path / "site"
    (site / "cnb_copier-1.0.dist-info").mkdir(parents=True)
    (site / "cnb_copier-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: cnb-copier\nVersion: 1.0\n"
    )
    (site / "cnb_copier-1.0.dist-info" / "entry_points.txt").write_text(
        "[cnb.image_builders]\ncopier = cnb_copier:factory\nbroken = cnb_copier:broken\n"
    )
    (site / "cnb_copier.py").write_text(PLUGIN)
    from tests.support.images import make_busybox_image

    source = tmp_path / "src"
    digest = make_busybox_image(source, "app")
    env = {**os.environ, "CNB_HOME": str(tmp_path / "home"), "PYTHONPATH": f"{REPO}{os.pathsep}{site}"}
    done = cnb_build(env, f"oci:{tmp_path / 'out'}:copied", "--using", "copier", "--path", str(source))
    assert done.returncode == 0, done.stderr
    assert "copier builds" in done.stderr
    assert json.loads(json.dumps(skopeo_inspect(f"oci:{tmp_path / 'out'}:copied")))["Digest"] == digest
    broken = cnb_build(env, "local:z", "--using", "broken", "--path", str(source))
    assert broken.returncode == 1 and "Traceback" not in broken.stderr
    assert broken.stderr.strip() == "error: image builder 'broken' failed to build: RuntimeError: the plug-in's own bug"
    unknown = cnb_build(env, "local:y", "--using", "nope", "--path", str(source))
    assert unknown.returncode == 2 and "copier" in unknown.stderr and "unknown image builder" in unknown.stderr
