"""Nothing left behind (issue 9 item 6): the staging files of a killed write are removed by the next write to the
store, and ``cnb prune`` removes what the caches hold (``--dry-run`` lists exactly that first), after which a build
still works.

Threat: a disk filled by what killed or finished commands left behind (staging blobs, unpacked trees, work dirs)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, Cnb
from tests.security.store_check import full_integrity_check, staging_files
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo, skopeo_raw_digest

pytestmark = pytest.mark.integration
MiB = 1024 * 1024
BIG = 256 * MiB


class _Random:
    """An endless source of incompressible bytes for tarfile."""

    def read(self, n: int) -> bytes:
        return os.urandom(n)


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_big_layout(layout: Path) -> None:
    """An OCI layout (written by hand, following the image spec) whose one image has a *BIG* uncompressed layer of
    random bytes, tagged ``big``."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    tar_path = layout / "layer.tar"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = BIG
        tar.addfile(info, _Random())  # type: ignore[arg-type]
    digest = hashlib.sha256()
    with open(tar_path, "rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": f"sha256:{digest.hexdigest()}",
             "size": tar_path.stat().st_size}  # fmt: skip
    tar_path.rename(blobs / digest.hexdigest())
    config = {"architecture": "amd64", "os": "linux", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}  # fmt: skip
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            **_blob(layout, json.dumps(config).encode()),
        },
        "layers": [layer],
    }
    entry = {"mediaType": manifest["mediaType"], **_blob(layout, json.dumps(manifest).encode()),
             "annotations": {"org.opencontainers.image.ref.name": "big"}}  # fmt: skip
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')


@pytest.fixture(scope="module")
def big_image(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The big image in the session's registry (generated once per module; the layout copy is removed)."""
    layout = tmp_path_factory.mktemp("big-layout")
    write_big_layout(layout)
    remote = f"docker://{registry.host}/security/big:1"
    skopeo("copy", "--dest-tls-verify=false", f"oci:{layout}:big", remote)
    subprocess.run(["rm", "-rf", str(layout)], check=True)
    return remote


def _partial_staging_file(layout: Path) -> Path | None:
    """A staging file of the big layer that is being written: past its first 16 MiB, short of its last 64 MiB."""
    for path in staging_files(layout):
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            continue
        if path.is_file() and 16 * MiB <= size <= BIG - 64 * MiB:
            return path
    return None


def test_a_copy_killed_ten_times_leaves_no_staging_file_after_the_next_copy(cnb: Cnb, big_image: str) -> None:
    """The issue asks for a 1 GiB image; on this 2-core machine shared by the suite that is too heavy, and the size
    is not what makes the test meaningful: each kill is made to land mid-write deterministically, by waiting until a
    staging file of the 256 MiB layer of random (incompressible) bytes exists and is neither nearly empty nor nearly
    complete, then sending SIGKILL, and checking that the partial file is still there after the process died."""
    layout = cnb.home / "images"
    for attempt in range(10):
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnbplatform", "-q", "image", "copy", big_image, "big:copied"],
            env=cnb.env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        partial = None
        for _ in range(60_000):  # up to 5 minutes; each poll is a few stat calls
            partial = _partial_staging_file(layout)
            if partial is not None or proc.poll() is not None:
                break
            time.sleep(0.005)
        assert partial is not None, f"attempt {attempt}: the copy ended before it was killed: {proc.stderr}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert proc.stderr is not None
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        assert partial.is_file() and partial.stat().st_size < BIG  # the kill landed mid-write: a partial blob stays
        assert len({p.parent for p in staging_files(layout) if p.is_file()}) == 1  # the last kill's only

    cnb("-q", "image", "copy", big_image, "big:copied")
    assert staging_files(layout) == []
    assert full_integrity_check(layout) == 3
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [skopeo_raw_digest(big_image)]
