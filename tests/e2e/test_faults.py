"""Issue 2 "must show", faults: a registry that goes away mid-push, corrupt blobs, SIGKILLed and concurrent writers."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest

from tests.conftest import Cnb
from tests.support.images import make_busybox_image, make_random_image
from tests.support.registry import RunningRegistry, start_registry
from tests.support.tools import skopeo_inspect, umoci_unpack

pytestmark = pytest.mark.integration
MB = 1024 * 1024


def index_tags(layout: Path) -> dict[str, str]:
    index = json.loads((layout / "index.json").read_text())
    return {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
        if "org.opencontainers.image.ref.name" in m.get("annotations", {})
    }


def wait_for(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.01)
    return False


def test_registry_stopped_mid_push_then_back(tmp_path: Path, cnb: Cnb) -> None:
    src = tmp_path / "src"
    make_random_image(src, "big", [24 * MB, 24 * MB, 24 * MB], seed=7)
    reg = start_registry(tmp_path / "reg")
    try:
        target = f"{reg.host}/faults/big:1"
        env = {"CNB_REGISTRY_RETRIES": "2"}
        proc = cnb.popen("image", "copy", f"oci:{src}:big", target, extra_env=env)
        assert wait_for(lambda: "PATCH /v2/" in reg.log_text() or "PUT /v2/" in reg.log_text(), 30), reg.log_text()
        reg.stop()
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode != 0
        lines = [line for line in stderr.strip().splitlines() if line]
        assert len(lines) == 1 and lines[0].startswith("error:"), stderr
        assert reg.host in lines[0] and "faults/big" in lines[0]
        assert "Traceback" not in stderr

        reg.start()
        cnb("image", "copy", f"oci:{src}:big", target, extra_env=env)
        assert skopeo_inspect(f"docker://{target}")["Digest"] == skopeo_inspect(f"oci:{src}:big")["Digest"]
    finally:
        reg.stop()


def test_corrupt_blob_in_registry_storage_is_detected(tmp_path: Path, cnb: Cnb, registry: RunningRegistry) -> None:
    src = tmp_path / "src"
    make_random_image(src, "img", [2 * MB, 3 * MB], seed=11)
    target = f"{registry.host}/faults/corrupt:1"
    cnb("image", "copy", f"oci:{src}:img", target)
    layers = skopeo_inspect(f"docker://{target}", "--raw")["layers"]
    victim = registry.blob_path(layers[1]["digest"])
    data = bytearray(victim.read_bytes())
    data[1000] ^= 0x55
    victim.write_bytes(bytes(data))

    dst = tmp_path / "dst"
    done = cnb("image", "copy", target, f"oci:{dst}:img", check=False)
    assert done.returncode != 0
    assert "digest mismatch" in done.stderr and layers[1]["digest"] in done.stderr
    assert not (dst / "blobs" / "sha256").exists() or not any((dst / "blobs" / "sha256").iterdir())
    assert index_tags(dst) == {}

    done = cnb("image", "copy", target, "corrupt:1", check=False)
    assert done.returncode != 0 and "digest mismatch" in done.stderr
    assert json.loads(cnb("image", "ls", "--json").stdout) == []


def test_corrupt_blob_in_a_layout_is_detected(tmp_path: Path, cnb: Cnb, registry: RunningRegistry) -> None:
    src = tmp_path / "src"
    make_random_image(src, "img", [1 * MB], seed=3)
    manifest = skopeo_inspect(f"oci:{src}:img", "--raw")
    blob = src / "blobs" / "sha256" / manifest["layers"][0]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    target = f"{registry.host}/faults/layout-corrupt:1"
    done = cnb("image", "copy", f"oci:{src}:img", target, check=False)
    assert done.returncode != 0 and "digest mismatch" in done.stderr
    tags = cnb("image", "ls", f"{registry.host}/faults/layout-corrupt", check=False)
    assert "layout-corrupt:1" not in tags.stdout


def test_sigkill_during_copies_never_breaks_the_local_store(tmp_path: Path, cnb: Cnb) -> None:
    rng = random.Random(20261121)
    sources = []
    for i in range(3):
        layout = tmp_path / f"src{i}"
        make_random_image(layout, "img", [12 * MB, 12 * MB], seed=100 + i)
        sources.append(layout)
    store = cnb.home / "images"
    cnb("image", "copy", f"oci:{sources[0]}:img", "stable:1")
    # how long an uninterrupted copy takes here, to aim the kills inside it
    started = time.monotonic()
    cnb("image", "copy", f"oci:{sources[1]}:img", "timing:1")
    duration = time.monotonic() - started
    cnb("image", "rm", "timing:1")

    killed_mid_way = 0
    for attempt in range(20):
        proc = cnb.popen("image", "copy", f"oci:{sources[attempt % 3]}:img", f"victim:{attempt}")
        time.sleep(rng.uniform(0.05, duration))
        if proc.poll() is None:
            killed_mid_way += 1
        else:  # the machine got faster than when the copy was timed: aim earlier
            duration = max(0.1, duration * 0.8)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        tags = index_tags(store)
        assert "docker.io/library/stable:1" in tags
        for tag in tags:
            assert skopeo_inspect(f"oci:{store}:{tag}")["Os"] == "linux"
    assert killed_mid_way >= 5, "the kills should land inside most copies"
    # the store still works: a new copy succeeds and unpacks
    cnb("image", "copy", f"oci:{sources[2]}:img", "after:1")
    umoci_unpack(store, "docker.io/library/after:1", tmp_path / "bundle")


def test_concurrent_copies_into_one_layout(tmp_path: Path, cnb: Cnb) -> None:
    sources = []
    for i in range(4):
        layout = tmp_path / f"src{i}"
        if i == 0:
            make_busybox_image(layout, "img")
        else:
            make_random_image(layout, "img", [4 * MB, 1 * MB], seed=i)
        sources.append(layout)
    dst = tmp_path / "shared"
    procs = [cnb.popen("image", "copy", f"oci:{s}:img", f"oci:{dst}:tag{i}") for i, s in enumerate(sources)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    tags = index_tags(dst)
    assert set(tags) == {"tag0", "tag1", "tag2", "tag3"}
    for i, source in enumerate(sources):
        assert skopeo_inspect(f"oci:{dst}:tag{i}")["Digest"] == skopeo_inspect(f"oci:{source}:img")["Digest"]
    rootfs = umoci_unpack(dst, "tag0", tmp_path / "bundle")
    assert (rootfs / "bin" / "busybox").is_file()
