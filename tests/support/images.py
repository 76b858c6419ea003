"""Test images written as OCI image layouts with the standard library only.

These are built independently of cnb's own layer writer and layout store (plain ``tarfile`` + ``gzip``
+ ``json``), so tests can compare what cnb does against a separate implementation. Everything is
deterministic: sorted entries, fixed mtimes, root-owned files, gzip mtime 0.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST_BUSYBOX = Path("/bin/busybox")
MTIME = 315532801  # 1980-01-01T00:00:01Z, the mtime cnb gives layer entries
CREATED = "1980-01-01T00:00:01Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APPLETS = (
    "cat", "chmod", "cp", "echo", "env", "false", "grep", "head", "id", "ln", "ls", "mkdir", "printf",
    "pwd", "rm", "sed", "sh", "sleep", "tail", "test", "touch", "true", "uname", "wc", "wget", "whoami",
)  # fmt: skip
PASSWD = "root:x:0:0:root:/root:/bin/sh\ncnb:x:1000:1000:cnb:/home/cnb:/bin/sh\n"
GROUP = "root:x:0:\ncnb:x:1000:\n"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True)
class Entry:
    """One tar entry: a dir, a file (``data`` or ``size`` bytes from ``stream``), or a symlink."""

    path: str
    kind: str  # "dir" | "file" | "symlink"
    mode: int = 0o755
    data: bytes = b""
    target: str = ""
    uid: int = 0
    stream: Callable[[], io.RawIOBase | io.BufferedIOBase] | None = None
    size: int = 0


class _Hashing(io.RawIOBase):
    """A write-only sink that counts and hashes what passes through to *sink*."""

    def __init__(self, sink: Any) -> None:
        super().__init__()
        self.sink, self.hash, self.size = sink, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)


def _blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def write_layer(layout: Path, entries: list[Entry]) -> tuple[dict[str, Any], str]:
    """Write a gzip layer of *entries* (sorted by path) into *layout*; (descriptor, diffID)."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    tmp = blobs / ".layer.tmp"
    with open(tmp, "wb") as out:
        packed = _Hashing(out)
        with gzip.GzipFile(filename="", mode="wb", compresslevel=1, fileobj=packed, mtime=0) as gz:
            plain = _Hashing(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for entry in sorted(entries, key=lambda e: e.path):
                    info = tarfile.TarInfo(entry.path)
                    info.mtime, info.mode, info.uid, info.gid = MTIME, entry.mode, entry.uid, entry.uid
                    if entry.kind == "dir":
                        info.type = tarfile.DIRTYPE
                        tar.addfile(info)
                    elif entry.kind == "symlink":
                        info.type, info.linkname = tarfile.SYMTYPE, entry.target
                        tar.addfile(info)
                    elif entry.stream is not None:
                        info.size = entry.size
                        tar.addfile(info, entry.stream())
                    else:
                        info.size = len(entry.data)
                        tar.addfile(info, io.BytesIO(entry.data))
    digest = packed.hash.hexdigest()
    tmp.rename(blobs / digest)
    desc = {"mediaType": OCI_LAYER_GZIP, "digest": f"sha256:{digest}", "size": packed.size}
    return desc, f"sha256:{plain.hash.hexdigest()}"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_image(
    layout: Path, layers: list[list[Entry]], *, arch: str, os_name: str = "linux", variant: str | None = None,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Write layers, config and manifest blobs; the manifest's descriptor (not yet tagged)."""
    written = [write_layer(layout, entries) for entries in layers]
    image_config: dict[str, Any] = {
        "architecture": arch,
        "os": os_name,
        "created": CREATED,
        "config": config or {"Env": [PATH_ENV]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in written]},
        "history": [{"created": CREATED, "created_by": "tests/support/images.py"} for _ in written],
    }
    if variant:
        image_config["variant"] = variant
    config_desc = {"mediaType": OCI_CONFIG, **_blob(layout, _dumps(image_config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": [desc for desc, _ in written],
    }
    return {"mediaType": OCI_MANIFEST, **_blob(layout, _dumps(manifest))}


def tag_in_layout(layout: Path, descriptor: dict[str, Any], tag: str) -> None:
    """Make *descriptor* the entry named *tag* in the layout's index.json (replacing one of that name)."""
    index_path = layout / "index.json"
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    if index_path.exists():
        index = json.loads(index_path.read_bytes())
    kept = [m for m in index.get("manifests", []) if (m.get("annotations") or {}).get(REF_NAME) != tag]
    index["manifests"] = [*kept, {**descriptor, "annotations": {REF_NAME: tag}}]
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    index_path.write_bytes(json.dumps(index, indent=2).encode())


def busybox_entries() -> list[Entry]:
    """A tiny Linux root: static busybox, applet symlinks, root and cnb (1000) users, /tmp 1777."""
    entries = [
        Entry("bin", "dir"),
        Entry("bin/busybox", "file", 0o755, HOST_BUSYBOX.read_bytes()),
        Entry("etc", "dir"),
        Entry("etc/passwd", "file", 0o644, PASSWD.encode()),
        Entry("etc/group", "file", 0o644, GROUP.encode()),
        Entry("home", "dir"),
        Entry("home/cnb", "dir", uid=1000),
        Entry("root", "dir", 0o700),
        Entry("tmp", "dir", 0o1777),
    ]
    entries += [Entry(f"bin/{name}", "symlink", 0o777, target="busybox") for name in APPLETS]
    return entries


def make_busybox_image(layout_dir: Path, tag: str = "busybox", *, arch: str = "amd64") -> str:
    """An OCI layout image with one busybox layer, tagged *tag*; returns the manifest digest."""
    desc = write_image(Path(layout_dir), [busybox_entries()], arch=arch, config={"Env": [PATH_ENV], "Cmd": ["/bin/sh"]})
    tag_in_layout(Path(layout_dir), desc, tag)
    return str(desc["digest"])


def make_multiplatform_index(layout_dir: Path, tag: str, platforms: list[str] | None = None) -> str:
    """An OCI index with one small image per ``os/arch[/variant]`` (``/platform.txt`` names it); its digest."""
    layout = Path(layout_dir)
    children = []
    for value in platforms or ["linux/amd64", "linux/arm64"]:
        os_name, arch, *rest = value.split("/")
        variant = rest[0] if rest else None
        entry = Entry("platform.txt", "file", 0o644, f"{value}\n".encode())
        desc = write_image(layout, [[entry]], arch=arch, os_name=os_name, variant=variant)
        platform = {"architecture": arch, "os": os_name, **({"variant": variant} if variant else {})}
        children.append({**desc, "platform": platform})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    desc = {"mediaType": OCI_INDEX, **_blob(layout, _dumps(index))}
    tag_in_layout(layout, desc, tag)
    return str(desc["digest"])


class _RandomStream(io.RawIOBase):
    """*size* pseudo-random bytes from *rng*, produced as they are read."""

    def __init__(self, rng: random.Random, size: int) -> None:
        super().__init__()
        self.rng, self.left = rng, size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left, 1 << 20)
        buffer[:n] = self.rng.randbytes(n)
        self.left -= n
        return n


def _random_reader(seed: int, size: int) -> io.BufferedReader:
    return io.BufferedReader(_RandomStream(random.Random(seed), size), 1 << 20)


def make_random_image(layout_dir: Path, tag: str, layer_sizes_bytes: list[int], seed: int = 0) -> str:
    """An image with one incompressible file ``/data/layer-N.bin`` per layer (for benchmarks); its digest."""
    rng = random.Random(seed)
    layers = []
    for n, size in enumerate(layer_sizes_bytes):
        stream = functools.partial(_random_reader, rng.getrandbits(64), size)
        entry = Entry(f"data/layer-{n}.bin", "file", 0o644, size=size, stream=stream)
        layers.append([Entry("data", "dir"), entry])
    desc = write_image(Path(layout_dir), layers, arch="amd64", config={"Env": [PATH_ENV]})
    tag_in_layout(Path(layout_dir), desc, tag)
    return str(desc["digest"])
