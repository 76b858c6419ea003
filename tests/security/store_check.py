"""Reading a cnb home's local store independently of cnb: the OCI image layout under ``$CNB_HOME/images``, checked
blob by blob with hashlib, and an image's app files and processes read from its tar layers and labels."""

from __future__ import annotations

import gzip
import hashlib
import json
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
