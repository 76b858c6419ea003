"""Issue 2 "must show": one busybox image through every store, checked by skopeo, umoci and the Docker engine."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Cnb
from tests.support.dockerd import RunningDockerd
from tests.support.images import make_busybox_image, make_multiplatform_index
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect, umoci_unpack

pytestmark = pytest.mark.integration

LOCAL_TAG = "docker.io/library/busybox:copied"


def test_busybox_through_every_store(
    tmp_path: Path, cnb: Cnb, registry: RunningRegistry, dockerd: RunningDockerd
) -> None:
    src = tmp_path / "src"
    digest = make_busybox_image(src, "busybox")
    remote = f"{registry.host}/e2e/busybox:1"

    cnb("image", "copy", f"oci:{src}:busybox", remote)
    cnb("image", "copy", remote, "busybox:copied")
    engine_env = {"DOCKER_HOST": dockerd.base_url}
    cnb("image", "copy", "busybox:copied", "docker-daemon:busybox-cnb:e2e", extra_env=engine_env)
    back = tmp_path / "back"
    cnb("image", "copy", "docker-daemon:busybox-cnb:e2e", f"oci:{back}:back", extra_env=engine_env)

    store = cnb.home / "images"
    # the same manifest digest in the layout, the registry and the local store
    assert skopeo_inspect(f"oci:{src}:busybox")["Digest"] == digest
    assert skopeo_inspect(f"docker://{remote}")["Digest"] == digest
    assert skopeo_inspect(f"oci:{store}:{LOCAL_TAG}")["Digest"] == digest
    assert skopeo_inspect(f"oci:{back}:back")["Os"] == "linux"

    host_busybox = hashlib.sha256(Path("/bin/busybox").read_bytes()).hexdigest()
    for layout, tag in ((src, "busybox"), (store, LOCAL_TAG), (back, "back")):
        rootfs = umoci_unpack(layout, tag, tmp_path / f"bundle-{layout.name}")
        assert hashlib.sha256((rootfs / "bin" / "busybox").read_bytes()).hexdigest() == host_busybox
        assert (rootfs / "bin" / "sh").is_symlink()

    run = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "busybox-cnb:e2e", "/bin/busybox", "echo", "hello from cnb"],
        env={**dockerd.env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "hello from cnb"

    listing = json.loads(cnb("image", "ls", "--json").stdout)
    assert {"busybox:copied"} <= {row["name"] for row in listing}
    assert next(r for r in listing if r["name"] == "busybox:copied")["digest"] == digest


def test_platform_selection_from_an_index(tmp_path: Path, cnb: Cnb, registry: RunningRegistry) -> None:
    src = tmp_path / "multi"
    make_multiplatform_index(src, "multi", ["linux/amd64", "linux/arm64"])
    remote = f"{registry.host}/e2e/multi:1"
    cnb("image", "copy", f"oci:{src}:multi", remote)
    index = skopeo_inspect(f"docker://{remote}", "--raw")
    assert len(index["manifests"]) == 2
    arm_digest = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "arm64")

    out = tmp_path / "arm"
    cnb("image", "copy", "--platform", "linux/arm64", remote, f"oci:{out}:arm")
    inspected = skopeo_inspect(f"oci:{out}:arm")
    assert inspected["Architecture"] == "arm64"
    assert inspected["Digest"] == arm_digest
    details = json.loads(cnb("image", "inspect", "--json", "--platform", "linux/arm64", remote).stdout)
    assert details["image"]["platform"] == "linux/arm64"
    # without --platform the whole index is copied
    whole = tmp_path / "whole"
    cnb("image", "copy", remote, f"oci:{whole}:all")
    assert len(skopeo_inspect(f"oci:{whole}:all", "--raw")["manifests"]) == 2


def test_bad_inputs_fail_with_one_line(tmp_path: Path, cnb: Cnb, registry: RunningRegistry) -> None:
    cases = [
        (("image", "copy", "Bad:Ref", f"oci:{tmp_path}/x:y"), "invalid image reference"),
        (("image", "copy", "nothere", f"oci:{tmp_path}/x:y"), "not found in the local store"),
        (("image", "rm", "nothere"), "not found in the local store"),  # a fresh $CNB_HOME: no store yet
        (("image", "tag", "nothere", "other"), "not found in the local store"),
        (("image", "copy", f"oci:{tmp_path}/none:x", "a"), "not an OCI image layout"),
        (("image", "copy", f"{registry.host}/e2e/absent:1", "a"), "absent"),
        (("image", "copy", "127.0.0.1:9/e2e/x:1", "a"), "127.0.0.1:9"),
    ]
    for args, needle in cases:
        done = cnb(*args, check=False, extra_env={"CNB_REGISTRY_RETRIES": "1"})
        assert done.returncode != 0, args
        lines = [line for line in done.stderr.strip().splitlines() if line]
        assert len(lines) == 1, done.stderr
        assert needle in lines[0], (args, lines[0])
        assert "Traceback" not in done.stderr
