"""Helpers of the buildpack tests: a project (app, our buildpacks, order), ``cnb lifecycle create`` on it, reading
the resulting OCI layout with the standard library only (independent of cnb's readers), and fetching the page a
built image serves through ``cnb run`` on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.buildpacks.conftest import LanguageImages
from tests.conftest import REPO, Cnb
from tests.support.registry import free_port

REF_NAME = "org.opencontainers.image.ref.name"
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def buildpack_version(name: str) -> str:
    for line in (REPO / "buildpacks" / name / "buildpack.toml").read_text().splitlines():
        if line.startswith("version"):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError(f"buildpacks/{name}/buildpack.toml has no version")


@dataclass
class Project:
    root: Path
    app: Path
    buildpacks: Path
    order: Path
    platform: Path
    layout: Path

    @property
    def output(self) -> str:
        return f"oci:{self.layout}:app"


def make_project(
    root: Path, group: Sequence[str], app_files: Mapping[str, str], env: Mapping[str, str] = {}
) -> Project:
    """*root*/app with *app_files*, our buildpacks copied in, an order of one *group* (names under buildpacks/, all
    but the first optional), and platform env files *env* (docs/spec-notes.md §3.9 step 3)."""
    buildpacks = root / "buildpacks"
    lines = ["[[order]]"]
    for index, name in enumerate(group):
        version = buildpack_version(name)
        shutil.copytree(REPO / "buildpacks" / name, buildpacks / f"cnb_{name}" / version)
        lines += ["[[order.group]]", f'id = "cnb/{name}"', f'version = "{version}"']
        if index:
            lines.append("optional = true")
    order = root / "order.toml"
    order.write_text("\n".join(lines) + "\n")
    app = root / "app"
    for rel, text in app_files.items():
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_text(text)
    platform = root / "platform"
    (platform / "env").mkdir(parents=True)
    for name, value in env.items():
        (platform / "env" / name).write_text(value)
    return Project(root, app, buildpacks, order, platform, root / "out")


def create(
    cnb: Cnb, project: Project, images: LanguageImages | tuple[str, str], *extra: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``cnb lifecycle create`` in the bwrap sandbox of the build image, with a dir cache; fresh layers dir."""
    build, run = (images.build, images.run) if isinstance(images, LanguageImages) else images
    layers = project.root / "layers"
    shutil.rmtree(layers, ignore_errors=True)
    layers.mkdir()
    return cnb(
        "lifecycle", "create",
        "--app", str(project.app), "--layers", str(layers), "--platform", str(project.platform),
        "--buildpacks", str(project.buildpacks), "--order", str(project.order),
        "--sandbox", "bwrap", "--build-image", build, "--run-image", run,
        "--cache-dir", str(project.root / "cache"), *extra, project.output,
        # the tests' package servers listen on this machine's 127.0.0.1, which only the host network reaches
        extra_env={"CNB_PLATFORM_API": "0.15", "CNB_NETWORK": "host"}, check=check,
    )  # fmt: skip


def _blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def manifest(layout: Path, tag: str = "app") -> dict[str, Any]:
    index = json.loads((layout / "index.json").read_text())
    (desc,) = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == tag]
    return dict(json.loads(_blob(layout, desc["digest"]).read_text()))


def config(layout: Path, tag: str = "app") -> dict[str, Any]:
    return dict(json.loads(_blob(layout, manifest(layout, tag)["config"]["digest"]).read_text()))


def layer_digests(layout: Path, tag: str = "app") -> list[str]:
    return [layer["digest"] for layer in manifest(layout, tag)["layers"]]


def lifecycle_metadata(layout: Path, tag: str = "app") -> dict[str, Any]:
    return dict(json.loads(config(layout, tag)["config"]["Labels"]["io.buildpacks.lifecycle.metadata"]))


def layer_of(layout: Path, diff_id: str, tag: str = "app") -> str:
    """The (compressed) digest of the layer whose diffID is *diff_id*."""
    diff_ids = config(layout, tag)["rootfs"]["diff_ids"]
    return str(manifest(layout, tag)["layers"][diff_ids.index(diff_id)]["digest"])


def buildpack_layer_digest(layout: Path, buildpack: str, layer: str, tag: str = "app") -> str:
    (entry,) = [bp for bp in lifecycle_metadata(layout, tag)["buildpacks"] if bp["key"] == buildpack]
    return layer_of(layout, entry["layers"][layer]["sha"], tag)


def read_member(layout: Path, digest: str, member: str) -> bytes:
    with gzip.open(_blob(layout, digest)) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for info in tar:
            if info.name.lstrip("/") == member.lstrip("/"):
                extracted = tar.extractfile(info)
                assert extracted is not None, member
                return extracted.read()
    raise AssertionError(f"{member} is not in layer {digest}")


def image_sbom(layout: Path, path: str, tag: str = "app") -> str:
    """An SBOM file of the image's SBOM layer, e.g. ``launch/cnb_python/venv/sbom.cdx.json``."""
    sbom_layer = layer_of(layout, lifecycle_metadata(layout, tag)["sbom"]["sha"], tag)
    return read_member(layout, sbom_layer, f"layers/sbom/{path}").decode()


@contextlib.contextmanager
def unpacked_for_this_run(cnb: Cnb) -> Iterator[None]:
    """Remove the app images' root filesystems that ``cnb run`` unpacks inside the block when it ends: each app
    image here is run once, and ``$CNB_HOME/rootfs`` keeps every unpacked image (the Python corpus alone would
    leave some 10 GB). Entries there before the block (the build images) stay."""
    rootfs = cnb.home / "rootfs"
    before = set(os.listdir(rootfs)) if rootfs.is_dir() else set()
    try:
        yield
    finally:
        for name in (set(os.listdir(rootfs)) if rootfs.is_dir() else set()) - before:
            if not name.startswith("."):
                shutil.rmtree(rootfs / name, ignore_errors=True)


def fetch_page(cnb: Cnb, image: str, *, timeout: float = 60) -> str:
    """The page *image* serves (:func:`_fetch_page`); its unpacked root filesystem is removed afterwards."""
    with unpacked_for_this_run(cnb):
        return _fetch_page(cnb, image, timeout=timeout)


def _fetch_page(cnb: Cnb, image: str, *, timeout: float) -> str:
    """Start *image* with ``cnb run`` (host network, ``PORT`` set to a free port), GET / from 127.0.0.1, stop it."""
    port = free_port()
    process = cnb.popen("run", image, "--env", f"PORT={port}")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                out, err = process.communicate()
                raise AssertionError(f"cnb run {image} exited with {process.returncode}: {out}\n{err}")
            try:
                with _LOOPBACK.open(f"http://127.0.0.1:{port}/", timeout=5) as response:
                    return str(response.read().decode())
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"{image} did not answer on 127.0.0.1:{port} within {timeout} s")
    finally:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
