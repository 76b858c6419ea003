"""Durable, not only atomic (issue 9 item 8): every new blob (layer, config, manifest) of a write to the local store is
flushed, and the directory it is renamed into is flushed, before ``index.json`` is replaced to name it, as
containerd's content store does. Watched from outside with ``strace`` (the system calls in the order they were made).

Threat: a power loss right after a build leaving an index that names a manifest whose bytes never reached the disk."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, Cnb
from tests.security.store_check import write_layout_image

pytestmark = pytest.mark.integration
CALL = re.compile(r"^(?:\[pid +\d+\] |\d+ +)?(\w+)\((.*)\) += (-?\d+)")


def traced_copy(cnb: Cnb, log: Path, source: str, destination: str) -> list[tuple[str, str]]:
    """``cnb image copy`` under ``strace -f -y``: the successful fsync and rename calls, in order, with their paths."""
    subprocess.run(
        ["strace", "-f", "-qq", "-y", "-s", "4096", "-o", str(log), "-e", "trace=fsync,fdatasync,rename,renameat,renameat2",
         sys.executable, "-m", "cnbplatform", "-q", "image", "copy", source, destination],
        env=cnb.env, cwd=REPO, check=True, capture_output=True,
    )  # fmt: skip
    calls = []
    for line in log.read_text().splitlines():
        match = CALL.match(line)
        if match and match[3] == "0":
            calls.append((match[1], match[2]))
    return calls


def test_blobs_and_their_directory_are_flushed_before_the_index_names_them(cnb: Cnb, tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_layout_image(source, size=1024 * 1024)
    calls = traced_copy(cnb, tmp_path / "strace.log", f"oci:{source}:big", "durable:1")
    blobs = sorted(p.name for p in (source / "blobs" / "sha256").iterdir())  # layer, config and manifest
    index_replaced = max(
        i for i, (name, args) in enumerate(calls) if name.startswith("rename") and "index.json" in args
    )
    for blob in blobs:
        flushed = [i for i, (name, args) in enumerate(calls) if name in ("fsync", "fdatasync") and f"/{blob}>" in args]
        assert flushed and flushed[0] < index_replaced, f"blob {blob} is not flushed before index.json names it"
        renamed = [i for i, (name, args) in enumerate(calls) if name.startswith("rename") and blob in args]
        assert renamed and flushed[0] < renamed[0] < index_replaced
    blob_dir = str(cnb.home / "images" / "blobs" / "sha256") + ">"
    dir_flushed = [i for i, (name, args) in enumerate(calls) if name == "fsync" and args.endswith(blob_dir)]
    last_blob_renamed = max(
        i for i, (name, args) in enumerate(calls) if name.startswith("rename") and any(b in args for b in blobs)
    )
    assert any(last_blob_renamed < i < index_replaced for i in dir_flushed), "blobs/sha256 is not flushed in time"
