"""Builder and buildpackage images written the way pack writes them, pushed to a test registry over its HTTP API.

Written from the conventions of pack's ``internal/builder`` and ``pkg/buildpack`` (read, not copied), with the
standard library only, so cnb meets what the ecosystem produces rather than what cnb produces itself:

* layer members have absolute names (``/cnb/buildpacks/<id>/<version>/bin/build``, ``/workspace``) as Go's
  ``archive/tar`` writes them (ustar headers, no user or group names), owner 0:0 (``/workspace`` and ``/layers``
  belong to the CNB user), mtime 1980-01-01T00:00:01Z, directories and executables 0755, other files 0644;
* a builder is: the build image's layers, then a dirs layer, a lifecycle layer (``/cnb/lifecycle/launcher`` and
  the ``/lifecycle`` → ``/cnb/lifecycle`` link), one layer per buildpack, ``/cnb/order.toml``, ``/cnb/stack.toml``,
  ``/cnb/run.toml`` and an env layer that is an empty tar when there is no build env;
* Docker v2 schema 2 media types for manifests, configs and layers, as a push from the Docker engine gives;
* labels as pack's Go structs marshal them: ``null`` for a nil order or mixins list, ``{}`` for no extensions.

``static_launcher(dir)`` compiles the test launcher (C, ``gcc -static``): it prints :data:`LAUNCHER_MARKER` and the
process type, then runs the process's command from ``/layers/config/metadata.toml`` in ``/workspace``.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.images import APPLETS, GROUP, HOST_BUSYBOX, PASSWD, PATH_ENV

NORMALIZED_MTIME = 315532801  # 1980-01-01T00:00:01Z, pack's archive.NormalizedDateTime
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
CNB_UID = 1000
LAUNCHER_MARKER = "PACK-SHAPED-LAUNCHER"

LAUNCHER_C = r"""
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The quoted strings of `line` (TOML basic strings: \" and \\ escapes) appended to args. */
static void strings(char *line, char **args, int *n) {
    for (char *p = line; *p && *n < 62; p++) {
        if (*p != '"') continue;
        char *out = malloc(strlen(p) + 1), *o = out;
        for (p++; *p && *p != '"'; p++) { if (*p == '\\' && p[1]) p++; *o++ = *p; }
        *o = 0;
        args[(*n)++] = out;
        if (!*p) break;
    }
}

int main(int argc, char **argv) {
    char *type = basename(argv[0]);
    printf("%s %s\n", "MARKER", type);
    fflush(stdout);
    if (strcmp(type, "launcher") == 0) {
        if (argc < 2) return 82;
        execvp(argv[1], argv + 1);
        return 127;
    }
    FILE *f = fopen("/layers/config/metadata.toml", "r");
    if (!f) { perror("metadata.toml"); return 82; }
    char line[8192], want[512], *args[64];
    int n = 0, inside = 0, found = 0, collecting = 0;
    char *command[64]; int ncommand = 0;
    snprintf(want, sizeof want, "type = \"%s\"", type);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "[[processes]]", 13) == 0 || line[0] == '[') {
            if (found && ncommand) break;
            inside = strncmp(line, "[[processes]]", 13) == 0; ncommand = 0; collecting = 0; continue;
        }
        if (!inside) continue;
        if (strncmp(line, want, strlen(want)) == 0) found = 1;
        if (strncmp(line, "command = [", 11) == 0) { collecting = 1; strings(line + 10, command, &ncommand); }
        else if (collecting) strings(line, command, &ncommand);
        if (collecting && strchr(line, ']')) collecting = 0;
    }
    if (!found || !ncommand) { fprintf(stderr, "no process %s\n", type); return 82; }
    for (int i = 0; i < ncommand; i++) args[n++] = command[i];
    for (int i = 1; i < argc && n < 63; i++) args[n++] = argv[i];
    args[n] = 0;
    if (chdir("/workspace") != 0) perror("/workspace");
    execvp(args[0], args);
    perror(args[0]);
    return 127;
}
""".replace("MARKER", LAUNCHER_MARKER)


def static_launcher(cache_dir: Path) -> Path:
    """The launcher compiled once per source text into *cache_dir* (shared by sessions: each compiles into its own
    temporary name and renames the result into place)."""
    key = hashlib.sha256(LAUNCHER_C.encode()).hexdigest()[:16]
    binary = cache_dir / f"launcher-{key}"
    if not binary.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        source = cache_dir / f".launcher-{key}-{os.getpid()}.c"
        tmp = cache_dir / f".launcher-{key}-{os.getpid()}"
        source.write_text(LAUNCHER_C)
        try:
            subprocess.run(["gcc", "-static", "-Os", "-o", str(tmp), str(source)], check=True, capture_output=True)
            tmp.rename(binary)
        finally:
            source.unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)
    return binary


# -- layers as Go's archive/tar writes them --------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One tar member: ``dir``, ``file``, ``symlink`` or ``link`` (a hard link to ``target``)."""

    name: str
    kind: str = "file"
    data: bytes = b""
    mode: int = 0o644
    target: str = ""
    uid: int = 0


def tar_bytes(members: Iterable[Member], *, absolute: bool = True) -> bytes:
    """An uncompressed layer: ustar headers (Go's default), mtime 1980, no uname/gname; names as given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member in members:
            info = tarfile.TarInfo(member.name if absolute else member.name.lstrip("/"))
            info.mtime, info.mode, info.uid, info.gid = NORMALIZED_MTIME, member.mode, member.uid, member.uid
            info.uname = info.gname = ""
            if member.kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif member.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, member.target
                tar.addfile(info)
            elif member.kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, member.target
                tar.addfile(info)
            else:
                info.size = len(member.data)
                tar.addfile(info, io.BytesIO(member.data))
    return out.getvalue()


def buildpack_members(source: Path, bp_id: str, version: str) -> list[Member]:
    """pack's buildpack layer: ``/cnb/buildpacks/<escaped id>``, ``…/<version>``, then the buildpack's files
    (0755 for dirs, bin/build, bin/detect and anything executable; 0644 otherwise), owner 0:0."""
    base = f"/cnb/buildpacks/{bp_id.replace('/', '_')}"
    members = [Member(base, "dir", mode=0o755), Member(f"{base}/{version}", "dir", mode=0o755)]
    seen: dict[tuple[int, int], str] = {}  # a file's inode -> its first name: later names are hard links to it
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source).as_posix()
        name = f"{base}/{version}/{rel}"
        stat = path.lstat()
        if path.is_file() and not path.is_symlink() and stat.st_nlink > 1:
            first = seen.setdefault((stat.st_dev, stat.st_ino), name)
            if first != name:  # pack joins a hard link's target under the buildpack dir: an absolute name
                members.append(Member(name, "link", mode=0o755, target=first))
                continue
        if path.is_symlink():
            members.append(Member(name, "symlink", mode=0o777, target=os.readlink(path)))
        elif path.is_dir():
            members.append(Member(name, "dir", mode=0o755))
        else:
            executable = rel in ("bin/build", "bin/detect", "bin/generate") or path.stat().st_mode & 0o111
            members.append(Member(name, "file", path.read_bytes(), 0o755 if executable else 0o644))
    return members


def rootfs_tar(path: Path) -> Path:
    """The busybox root as a plain tar file (what ``docker import`` takes)."""
    path.write_bytes(tar_bytes(busybox_members(), absolute=False))
    return path


def busybox_members() -> list[Member]:
    """A base image's root (relative names, as a Docker build writes them): busybox, passwd with the CNB user."""
    members = [
        Member("bin", "dir", mode=0o755),
        Member("bin/busybox", "file", HOST_BUSYBOX.read_bytes(), 0o755),
        Member("etc", "dir", mode=0o755),
        Member("etc/passwd", "file", PASSWD.encode()),
        Member("etc/group", "file", GROUP.encode()),
        Member("home", "dir", mode=0o755),
        Member("home/cnb", "dir", mode=0o755, uid=CNB_UID),
        Member("tmp", "dir", mode=0o1777),
    ]
    members += [Member(f"bin/{name}", "symlink", mode=0o777, target="busybox") for name in APPLETS]
    return members


# -- images ------------------------------------------------------------------------------------------------------


@dataclass
class PackImage:
    """An image in Docker v2 schema 2 form: uncompressed layer tars, the config and its labels."""

    layers: list[bytes] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    architecture: str = "amd64"
    zstd: bool = False  # OCI media types and zstd layers (compressed by the zstd command), as BuildKit can push

    def blobs(self) -> tuple[list[tuple[str, bytes, str]], bytes, bytes]:
        """(layer blobs as (digest, gzip bytes, diffID)), config bytes, manifest bytes."""
        layers = []
        for tar in self.layers:
            packed = _zstd(tar) if self.zstd else gzip.compress(tar, mtime=0)
            layers.append((_digest(packed), packed, _digest(tar)))
        config = {
            "architecture": self.architecture,
            "os": "linux",
            "created": "1980-01-01T00:00:01Z",
            "config": {**self.config, "Labels": self.labels},
            "rootfs": {"type": "layers", "diff_ids": [diff for _, _, diff in layers]},
            "history": [{"created": "1980-01-01T00:00:01Z"} for _ in layers],
        }
        config_bytes = json.dumps(config, separators=(",", ":")).encode()
        manifest_type, config_type, layer_type = (
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_ZSTD) if self.zstd else (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "size": len(config_bytes), "digest": _digest(config_bytes)},
            "layers": [{"mediaType": layer_type, "size": len(b), "digest": d} for d, b, _ in layers],
        }
        return layers, config_bytes, json.dumps(manifest, indent=3).encode()

    def push(self, registry_url: str, repository: str, tag: str) -> str:
        """PUT every blob and the manifest (the registry's HTTP API); returns the manifest digest."""
        return self.push_manifest(registry_url, repository, tag)[0]

    def push_manifest(self, registry_url: str, repository: str, reference: str) -> tuple[str, int]:
        """Push and put the manifest under *reference* (a tag or its digest); (digest, size)."""
        layers, config, manifest = self.blobs()
        if reference.startswith("sha256:"):
            reference = _digest(manifest)
        with httpx.Client(base_url=registry_url, timeout=60) as client:
            for digest, data in [*((d, b) for d, b, _ in layers), (_digest(config), config)]:
                if client.head(f"/v2/{repository}/blobs/{digest}").status_code == 200:
                    continue
                start = client.post(f"/v2/{repository}/blobs/uploads/")
                start.raise_for_status()
                location = start.headers["Location"]
                separator = "&" if "?" in location else "?"
                done = client.put(f"{location}{separator}digest={digest}", content=data)
                done.raise_for_status()
            content_type = OCI_MANIFEST if self.zstd else DOCKER_MANIFEST
            put = client.put(
                f"/v2/{repository}/manifests/{reference}", content=manifest, headers={"Content-Type": content_type}
            )
            put.raise_for_status()
        return _digest(manifest), len(manifest)


DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


def write_cnb_file(path: Path, images: Sequence[PackImage]) -> Path:
    """A ``.cnb`` file: an OCI image layout in a tar (members ``/index.json``, ``/blobs/…``, as pack's
    ``archive.WriteDirToTar`` roots them) whose index.json names each image with its platform."""
    blobs: dict[str, bytes] = {}
    manifests = []
    for image in images:
        layers, config, manifest = image.blobs()
        blobs.update({digest: data for digest, data, _ in layers})
        blobs[_digest(config)] = config
        blobs[_digest(manifest)] = manifest
        platform = {"architecture": image.architecture, "os": "linux"}
        manifests.append({"mediaType": DOCKER_MANIFEST, "digest": _digest(manifest), "size": len(manifest),
                          "platform": platform})  # fmt: skip
    index = json.dumps({"schemaVersion": 2, "manifests": manifests}).encode()
    members = [Member("/blobs", "dir", mode=0o755), Member("/blobs/sha256", "dir", mode=0o755)]
    members += [Member(f"/blobs/sha256/{d.split(':', 1)[1]}", "file", data) for d, data in sorted(blobs.items())]
    members += [
        Member("/index.json", "file", index),
        Member("/oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'),
    ]
    path.write_bytes(tar_bytes(members))
    return path


def push_index(registry_url: str, repository: str, tag: str, images: Sequence[PackImage]) -> str:
    """A Docker manifest list of *images* (one per architecture), as ``pack buildpack package --publish`` writes a
    multi-target buildpackage; returns its digest."""
    entries = []
    for image in images:
        digest, size = image.push_manifest(registry_url, repository, "sha256:")
        entries.append(
            {
                "mediaType": DOCKER_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"architecture": image.architecture, "os": "linux"},
            }
        )
    body = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}).encode()
    with httpx.Client(base_url=registry_url, timeout=60) as client:
        put = client.put(f"/v2/{repository}/manifests/{tag}", content=body, headers={"Content-Type": DOCKER_LIST})
        put.raise_for_status()
    return _digest(body)


def _zstd(data: bytes) -> bytes:
    return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, capture_output=True, check=True).stdout


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- what pack writes --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Buildpack:
    """A buildpack directory and what its buildpack.toml says (id, version, api, homepage)."""

    source: Path
    id: str
    version: str
    api: str = "0.10"
    homepage: str = ""

    def layer(self) -> bytes:
        return tar_bytes(buildpack_members(self.source, self.id, self.version))

    def layers_entry(self, diff_id: str) -> dict[str, Any]:
        """This buildpack in ``io.buildpacks.buildpack.layers`` (pack's dist.ModuleLayerInfo)."""
        entry: dict[str, Any] = {"api": self.api, "layerDiffID": diff_id, "targets": [{"os": "linux"}]}
        if self.homepage:
            entry["homepage"] = self.homepage
        return entry


def _diff(tar: bytes) -> str:
    return _digest(tar)


def buildpackage(buildpack: Buildpack, architecture: str = "amd64") -> PackImage:
    """``pack buildpack package --format image``: a scratch image with the buildpack's layer and its labels."""
    layer = buildpack.layer()
    info = {"id": buildpack.id, "version": buildpack.version}
    if buildpack.homepage:
        info["homepage"] = buildpack.homepage
    labels = {
        "io.buildpacks.buildpackage.metadata": json.dumps({**info, "targets": [{"os": "linux", "arch": architecture}]}),
        "io.buildpacks.buildpack.layers": json.dumps(
            {buildpack.id: {buildpack.version: buildpack.layers_entry(_diff(layer))}}
        ),
    }
    return PackImage([layer], {}, labels, architecture)


def _toml_str(value: str) -> str:
    return json.dumps(value)


def _order_toml(order: Sequence[Sequence[Buildpack]]) -> str:
    lines = []
    for group in order:
        lines.append("[[order]]")
        for bp in group:
            lines += ["", "  [[order.group]]", f"    id = {_toml_str(bp.id)}", f"    version = {_toml_str(bp.version)}"]
        lines.append("")
    return "\n".join(lines) + "\n"


def builder(
    buildpacks: Sequence[Buildpack],
    order: Sequence[Sequence[Buildpack]],
    *,
    run_image: str,
    launcher: Path,
    lifecycle_version: str = "0.20.6",
) -> PackImage:
    """``pack builder create``: the busybox build image, then pack's layers and labels (module docstring)."""
    base = tar_bytes(busybox_members(), absolute=False)
    dirs = tar_bytes(
        [
            Member("/workspace", "dir", mode=0o755, uid=CNB_UID),
            Member("/layers", "dir", mode=0o755, uid=CNB_UID),
            *(
                Member(path, "dir", mode=0o755)
                for path in (
                    "/cnb",
                    "/cnb/buildpacks",
                    "/cnb/extensions",
                    "/platform",
                    "/platform/env",
                    "/cnb/build-config",
                    "/cnb/build-config/env",
                )
            ),
        ]
    )
    lifecycle_toml = (
        '[apis]\n[apis.buildpack]\n  deprecated = []\n  supported = ["0.7", "0.8", "0.9", "0.10"]\n'
        '[apis.platform]\n  deprecated = []\n  supported = ["0.7", "0.8", "0.9", "0.10", "0.11", "0.12"]\n\n'
        f'[lifecycle]\n  version = "{lifecycle_version}"\n'
    )
    lifecycle = tar_bytes(
        [
            Member("/cnb/lifecycle", "dir", mode=0o755),
            Member("/cnb/lifecycle/launcher", "file", launcher.read_bytes(), 0o755),
            Member("/cnb/lifecycle/lifecycle.toml", "file", lifecycle_toml.encode(), 0o644),
            Member("/lifecycle", "symlink", mode=0o644, target="/cnb/lifecycle"),
        ]
    )
    bp_layers = [bp.layer() for bp in buildpacks]
    order_layer = tar_bytes([Member("/cnb/order.toml", "file", _order_toml(order).encode())])
    stack = f"[run-image]\n  image = {_toml_str(run_image)}\n"
    stack_layer = tar_bytes([Member("/cnb/stack.toml", "file", stack.encode())])
    run = f"[[images]]\n  image = {_toml_str(run_image)}\n"
    run_layer = tar_bytes([Member("/cnb/run.toml", "file", run.encode())])
    env_layer = tar_bytes([])  # pack's env layer with no build env: an empty tar
    layers_label: dict[str, dict[str, Any]] = {}
    for bp, tar in zip(buildpacks, bp_layers, strict=True):
        layers_label.setdefault(bp.id, {})[bp.version] = bp.layers_entry(_diff(tar))
    apis = {
        "buildpack": {"deprecated": None, "supported": ["0.7", "0.8", "0.9", "0.10"]},
        "platform": {"deprecated": None, "supported": ["0.7", "0.8", "0.9", "0.10", "0.11", "0.12"]},
    }
    metadata = {
        "description": "a builder as pack writes it",
        "buildpacks": [{"id": bp.id, "version": bp.version, "homepage": bp.homepage} for bp in buildpacks],
        "extensions": None,
        "stack": {"runImage": {"image": run_image, "mirrors": None}},
        "images": [{"image": run_image}],
        "lifecycle": {
            "version": lifecycle_version,
            "api": {"buildpack": "0.2", "platform": "0.3"},
            "apis": apis,
        },
        "createdBy": {"name": "Pack CLI", "version": "0.38.2+git-3d5ae3e.build-6496"},
    }
    order_label = [{"group": [{"id": bp.id, "version": bp.version} for bp in group]} for group in order]
    labels = {
        "io.buildpacks.builder.metadata": json.dumps(metadata),
        "io.buildpacks.buildpack.layers": json.dumps(layers_label),
        "io.buildpacks.buildpack.order": json.dumps(order_label),
        "io.buildpacks.buildpack.order-extensions": "null",
        "io.buildpacks.extension.layers": "{}",
        "io.buildpacks.stack.id": "io.buildpacks.stacks.busybox",
        "io.buildpacks.stack.mixins": "null",
    }
    config = {
        "User": f"{CNB_UID}:{CNB_UID}",
        "Env": [
            PATH_ENV,
            f"CNB_USER_ID={CNB_UID}",
            f"CNB_GROUP_ID={CNB_UID}",
            "CNB_STACK_ID=io.buildpacks.stacks.busybox",
        ],
        "WorkingDir": "/layers",
    }
    layers = [base, dirs, lifecycle, *bp_layers, order_layer, stack_layer, run_layer, env_layer]
    return PackImage(layers, config, labels)


def build_image() -> PackImage:
    """A busybox build image as a Docker build pushes it: the CNB user and its ids in the env."""
    config = {
        "User": f"{CNB_UID}:{CNB_UID}",
        "Env": [PATH_ENV, f"CNB_USER_ID={CNB_UID}", f"CNB_GROUP_ID={CNB_UID}"],
        "Cmd": ["/bin/sh"],
    }
    labels = {"io.buildpacks.base.distro.name": "busybox"}
    return PackImage([tar_bytes(busybox_members(), absolute=False)], config, labels)


def run_image(*, zstd: bool = False) -> PackImage:
    """A busybox run image as a Docker build pushes it (relative names), with the CNB user; *zstd*: as BuildKit
    pushes it with ``compression=zstd`` (OCI media types)."""
    labels = {"io.buildpacks.stack.id": "io.buildpacks.stacks.busybox", "io.buildpacks.base.distro.name": "busybox"}
    config = {"User": f"{CNB_UID}:{CNB_UID}", "Env": [PATH_ENV], "Cmd": ["/bin/sh"]}
    return PackImage([tar_bytes(busybox_members(), absolute=False)], config, labels, zstd=zstd)
