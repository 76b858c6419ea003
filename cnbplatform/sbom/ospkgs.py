"""The OS packages of an image, read straight from its layers (no unpacking, no tool of the image run).

Layers are applied in order with the OCI whiteout rules (OCI image-spec layer.md): ``.wh.<name>`` removes
``<name>`` (and what is below it) from lower layers, ``.wh..wh..opq`` hides every lower child of its directory,
and any entry replaces what lower layers had at its path (a non-directory replaces a whole lower tree). Only the
files that matter are kept: ``os-release``, the dpkg status file and ``status.d`` entries, apk's ``installed``
database and ``/usr/share/doc/<pkg>/copyright``; symlinks among them (``/etc/os-release`` ->
``../usr/lib/os-release``, ``/usr/share/doc/<pkg>`` -> ``<other pkg>``) are followed.

Layers the lifecycle made (buildpack layers, SBOM, app, launcher, config, process types: their diffIDs are in
``io.buildpacks.lifecycle.metadata``) are skipped: they hold no package database and need not be downloaded.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from cnbplatform.files.labels import LifecycleMetadata
from cnbplatform.oci.image import Image
from cnbplatform.sbom.layers import TarEntry, layer_entries, normalize
from cnbplatform.sbom.licenses import copyright_licenses
from cnbplatform.sbom.model import Distro
from cnbplatform.sbom.pkgdb import OsPackage, parse_apk_installed, parse_dpkg_status, parse_os_release

OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d"
APK_INSTALLED = "lib/apk/db/installed"
DOC_DIR = "usr/share/doc"
_STATUS_D_ENTRY = re.compile(r"^var/lib/dpkg/status\.d/[^/]+$")
_COPYRIGHT = re.compile(r"^usr/share/doc/[^/]+/copyright$")
_DOC_PACKAGE = re.compile(r"^usr/share/doc/[^/]+$")
_MAX_LINKS = 16


@dataclass(frozen=True)
class _Link:
    target: str


_Value = bytes | _Link


def wanted(path: str) -> bool:
    """Whether the content of a regular file at *path* is kept."""
    return (
        path in OS_RELEASE
        or path in (DPKG_STATUS, APK_INSTALLED)
        or bool(_STATUS_D_ENTRY.match(path) and not path.endswith(".md5sums"))
        or bool(_COPYRIGHT.match(path))
    )


def _tracked_link(path: str) -> bool:
    return wanted(path) or bool(_DOC_PACKAGE.match(path))


def apply_layer(state: dict[str, _Value], entries: Iterable[TarEntry]) -> dict[str, _Value]:
    """The tracked files after one layer: lower files hidden by this layer's whiteouts or entries are dropped,
    then this layer's own tracked files are added (the last entry for a path wins)."""
    exact: set[str] = set()
    below: list[str] = []
    added: dict[str, _Value] = {}
    for entry in entries:
        parent, _, name = entry.path.rpartition("/")
        if name == ".wh..wh..opq":
            below.append(f"{parent}/" if parent else "")
            continue
        if name.startswith(".wh."):
            if not name.startswith(".wh..wh."):
                target = f"{parent}/{name[4:]}" if parent else name[4:]
                exact.add(target)
                below.append(f"{target}/")
            continue
        exact.add(entry.path)
        if entry.kind != "dir":
            below.append(f"{entry.path}/")
        added.pop(entry.path, None)
        if entry.kind == "file" and entry.data is not None:
            added[entry.path] = entry.data
        elif entry.kind == "hardlink" and wanted(entry.path) and isinstance(added.get(entry.link), bytes):
            added[entry.path] = added[entry.link]
        elif entry.kind == "symlink" and _tracked_link(entry.path):
            added[entry.path] = _Link(entry.link)
    prefixes = tuple(below)
    kept = {p: v for p, v in state.items() if p not in exact and not (prefixes and p.startswith(prefixes))}
    kept.update(added)
    return kept


def _resolve(state: dict[str, _Value], path: str) -> bytes | None:
    """The bytes at *path*, following tracked symlinks (of the file itself or of a parent directory)."""
    for _ in range(_MAX_LINKS):
        value = state.get(path)
        if isinstance(value, bytes):
            return value
        if isinstance(value, _Link):
            path = _link_target(path, value.target)
            continue
        parts = path.split("/")
        for i in range(len(parts) - 1, 0, -1):
            parent = "/".join(parts[:i])
            link = state.get(parent)
            if isinstance(link, _Link):
                path = "/".join([_link_target(parent, link.target), *parts[i:]])
                break
        else:
            return None
    return None


def _link_target(path: str, target: str) -> str:
    base = "/" if target.startswith("/") else "/" + posixpath.dirname(path)
    return normalize(posixpath.normpath(posixpath.join(base, target))) or ""


@dataclass(frozen=True)
class OsInventory:
    """What the image's own files say about its OS: the distribution and the installed packages."""

    distro: Distro | None
    packages: tuple[OsPackage, ...]
    databases: tuple[str, ...]


def inventory_from_state(state: dict[str, _Value]) -> OsInventory:
    """Parse the tracked files left after every layer."""
    distro = None
    for path in OS_RELEASE:
        data = _resolve(state, path)
        if data is not None:
            distro = parse_os_release(data.decode("utf-8", "replace"))
            break
    packages: list[OsPackage] = []
    databases: list[str] = []
    status_d = sorted(p for p in state if _STATUS_D_ENTRY.match(p) and not p.endswith(".md5sums"))
    for path in [DPKG_STATUS, *status_d]:
        data = _resolve(state, path)
        if data is not None:
            databases.append(f"/{path}")
            for package in parse_dpkg_status(data.decode("utf-8", "replace"), f"/{path}"):
                packages.append(_with_copyright(state, package))
    data = _resolve(state, APK_INSTALLED)
    if data is not None:
        databases.append(f"/{APK_INSTALLED}")
        packages += parse_apk_installed(data.decode("utf-8", "replace"), f"/{APK_INSTALLED}")
    unique = {(p.manager, p.name, p.arch, p.version): p for p in packages}
    ordered = sorted(unique.values(), key=lambda p: (p.manager, p.name, p.arch, p.version))
    return OsInventory(distro, tuple(ordered), tuple(databases))


def _with_copyright(state: dict[str, _Value], package: OsPackage) -> OsPackage:
    data = _resolve(state, f"{DOC_DIR}/{package.name}/copyright")
    if data is None:
        return package
    licenses = copyright_licenses(data.decode("utf-8", "replace"))
    return replace(package, licenses=licenses) if licenses else package


def lifecycle_layers(metadata: LifecycleMetadata) -> set[str]:
    """diffIDs of the layers the lifecycle added on top of the run image (never holding OS packages)."""
    shas = {metadata.sbom, metadata.config, metadata.launcher, metadata.process_types, *metadata.app}
    for buildpack in metadata.buildpacks:
        shas.update(layer.sha for layer in buildpack.layers.values())
    return {s for s in shas if s}


def scan_os_packages(image: Image, skip: Sequence[str] | set[str] = ()) -> OsInventory:
    """The OS inventory of *image*, reading every layer whose diffID is not in *skip*, lowest first."""
    state: dict[str, _Value] = {}
    skipped = set(skip)
    for index, layer in enumerate(image.layers()):
        if layer.diff_id in skipped:
            continue
        what = f"layer {index + 1} ({layer.descriptor.digest})"
        state = apply_layer(state, layer_entries(layer, wanted, what=what))
    return inventory_from_state(state)


def scan_distro(image: Image) -> Distro | None:
    """The distribution *image*'s own ``os-release`` names (``/etc/os-release``, else ``/usr/lib/os-release``),
    reading only those files' contents from its layers."""
    state: dict[str, _Value] = {}
    for index, layer in enumerate(image.layers()):
        what = f"layer {index + 1} ({layer.descriptor.digest})"
        state = apply_layer(state, layer_entries(layer, OS_RELEASE.__contains__, what=what))
    for path in OS_RELEASE:
        data = _resolve(state, path)
        if data is not None:
            return parse_os_release(data.decode("utf-8", "replace"))
    return None
