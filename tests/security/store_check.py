"""Reading a cnb home's local store independently of cnb: the OCI image layout under ``$CNB_HOME/images``, checked
blob by blob with hashlib, and an image's app files and processes read from its tar layers and labels."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any

REF_NAME = "org.opencontainers.image.ref.name"


def full_integrity_check(layout: Path) -> int:
    """Re-hash every blob (its name must be its sha256), and check that every blob an index entry reaches (manifests,
    configs, layers, index children) is present with the size its descriptor gives; returns the number of blobs."""
    blobs = layout / "blobs" / "sha256"
    count = 0
    for path in blobs.iterdir():
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        assert digest.hexdigest() == path.name, f"blob {path.name} holds content with digest {digest.hexdigest()}"
        count += 1
    index = json.loads((layout / "index.json").read_text())
    pending = list(index["manifests"])
    while pending:
        descriptor = pending.pop()
        path = blobs / descriptor["digest"].removeprefix("sha256:")
        assert path.is_file(), f"{descriptor['digest']} is named but missing"
        assert path.stat().st_size == descriptor["size"], f"{descriptor['digest']} has the wrong size"
        if "manifest" in descriptor["mediaType"] or "index" in descriptor["mediaType"]:
            document = json.loads(path.read_bytes())
            pending += document.get("manifests", [])
            pending += document.get("layers", [])
            if "config" in document:
                pending.append(document["config"])
    return count


def staging_files(layout: Path) -> list[Path]:
    """What is left in the layout's staging area (``.cnb-tmp``), files and directories."""
    staging = layout / ".cnb-tmp"
    return sorted(staging.rglob("*")) if staging.exists() else []


def stored_image(layout: Path, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and config of the image tagged *name* (the full reference, as the layout's index holds it)."""
    index = json.loads((layout / "index.json").read_text())
    entries = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) == name]
    assert len(entries) == 1, f"{name} is tagged {len(entries)} times"
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / entries[0]["digest"].removeprefix("sha256:")).read_bytes())
    config = json.loads((blobs / manifest["config"]["digest"].removeprefix("sha256:")).read_bytes())
    return manifest, config


def layer_files(layout: Path, manifest: dict[str, Any], prefix: str) -> list[dict[str, bytes]]:
    """For each layer with regular files under *prefix*, those files' contents by path relative to *prefix*."""
    found = []
    for layer in manifest["layers"]:
        path = layout / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:")
        files: dict[str, bytes] = {}
        with gzip.open(path) as plain, tarfile.open(fileobj=plain, mode="r|") as tar:
            for member in tar:
                name = member.name.removeprefix("./").removeprefix("/")
                if name.startswith(prefix) and member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    files[name.removeprefix(prefix)] = extracted.read()
        if files:
            found.append(files)
    return found


def processes(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The processes of the ``io.buildpacks.build.metadata`` label (Platform spec: labels of the app image)."""
    metadata = json.loads(config["config"]["Labels"]["io.buildpacks.build.metadata"])
    return list(metadata.get("processes", []))


class _Random:
    """An endless source of incompressible bytes for tarfile."""

    def read(self, n: int) -> bytes:
        return os.urandom(n)


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_layout_image(layout: Path, *, size: int) -> None:
    """An OCI layout (written by hand, following the image spec) whose one image has an uncompressed layer of *size* of
    random bytes, tagged ``big``."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    tar_path = layout / "layer.tar"
    with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("big.bin")
        info.size = size
        tar.addfile(info, _Random())  # type: ignore[arg-type]
    digest = hashlib.sha256()
    with open(tar_path, "rb") as f:
        while chunk := f.read(1 << 20):
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
