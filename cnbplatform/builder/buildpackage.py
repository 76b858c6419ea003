"""Buildpackages: buildpacks as OCI images or ``.cnb`` files, written here, read back by :mod:`.package_read`
(docs/spec-notes.md §10.1); a new buildpack's skeleton comes from :mod:`.scaffold`.

A buildpackage image has one layer per buildpack, each holding exactly one buildpack at
``/cnb/buildpacks/<escaped id>/<version>/`` (extensions: ``/cnb/extensions/…``), and the labels
``io.buildpacks.buildpackage.metadata`` (the entry buildpack and its stacks) and ``io.buildpacks.buildpack.layers``
(every buildpack with the diffID of its layer). A ``.cnb`` file is that image as an uncompressed tar of an OCI image
layout (``oci-layout``, ``index.json``, ``blobs/sha256/…``), as pack writes it.

Layers are written the way pack writes them: files owned by root, directories ``0755``, files ``0755`` when any
execute bit is set (and always for ``bin/detect``, ``bin/build``, ``bin/generate``) else ``0644``, symlinks kept,
mtimes 1980-01-01T00:00:01Z. Reading accepts pack's absolute tar names (``/cnb/buildpacks/…``, ``/index.json``) and
flattened packages (several buildpacks in one layer).
"""

from __future__ import annotations

import os
import tarfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.errors import CnbError
from cnbplatform.files import builder_labels as bl
from cnbplatform.files.buildpack_toml import (
    BuildpackDescriptor,
    Descriptor,
    ExtensionDescriptor,
    Stack,
    escape_id,
)
from cnbplatform.files.labels import canonical_json
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.digest import hex_part
from cnbplatform.oci.image import FileLayer, Image, Layer
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import Entry, LayerSpec
from cnbplatform.oci.layers.tarformat import EPOCH
from cnbplatform.oci.model import NORMALIZED_CREATED as CREATED
from cnbplatform.oci.model import ContainerConfig, History, ImageConfig
from cnbplatform.oci.model import Descriptor as OciDescriptor
from cnbplatform.oci.mutate import BuiltImage

_ALWAYS_EXECUTABLE = ("bin/build", "bin/detect", "bin/generate")


@dataclass(frozen=True)
class Module:
    """A buildpack or extension unpacked on disk: its descriptor, its directory, and where it came from."""

    descriptor: Descriptor
    directory: Path
    source: str = ""

    @property
    def kind(self) -> str:
        return "extension" if isinstance(self.descriptor, ExtensionDescriptor) else "buildpack"

    @property
    def key(self) -> str:
        return f"{self.descriptor.id}@{self.descriptor.version}"

    @property
    def layer_dir(self) -> str:
        """Where the module lives in an image: ``cnb/buildpacks/<escaped id>/<version>``."""
        return f"cnb/{self.kind}s/{escape_id(self.descriptor.id)}/{self.descriptor.version}"


def load_module(directory: Path, kind: str, source: str) -> Module:
    cls: type[Descriptor] = ExtensionDescriptor if kind == "extension" else BuildpackDescriptor
    return Module(cls.load(directory), directory, source)


# -- layers ----------------------------------------------------------------------------------------------------


def _mode(rel: str, st_mode: int) -> int:
    return 0o755 if rel in _ALWAYS_EXECUTABLE or st_mode & 0o111 else 0o644


def _walk(root: Path, rel: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    with os.scandir(root / rel if rel else root) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        path = f"{rel}/{entry.name}" if rel else entry.name
        yield path, entry
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(root, path)


def module_layer_spec(module: Module) -> LayerSpec:
    """The layer holding *module* at its ``/cnb/…/<id>/<version>/`` path, normalised as pack does."""
    prefix = module.layer_dir
    entries = [Entry.directory(prefix.rsplit("/", 1)[0]), Entry.directory(prefix)]
    for rel, item in _walk(module.directory):
        path = f"{prefix}/{rel}"
        if item.is_symlink():
            entries.append(Entry.symlink(path, os.readlink(item.path)))
        elif item.is_dir(follow_symlinks=False):
            entries.append(Entry.directory(path))
        elif item.is_file(follow_symlinks=False):
            st = item.stat(follow_symlinks=False)
            entries.append(Entry.host_file(path, Path(item.path), mode=_mode(rel, st.st_mode)))
        # sockets, fifos and devices have no place in a buildpack: left out
    return LayerSpec(entries=tuple(entries), uid=0, gid=0)


def file_layer(spec: LayerSpec, layer_cache: LayerCache, blobs_dir: Path) -> FileLayer:
    blob = layer_cache.create(spec, blobs_dir).blob
    return FileLayer(OciDescriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, blob.path)


def module_layer(module: Module, layer_cache: LayerCache, blobs_dir: Path) -> FileLayer:
    try:
        return file_layer(module_layer_spec(module), layer_cache, blobs_dir)
    except OSError as exc:
        raise CnbError(f"adding {module.kind} {module.key} from {module.source}: {exc}") from exc


# -- writing ---------------------------------------------------------------------------------------------------


def _check_references(main: Module, modules: Sequence[Module]) -> None:
    """pack's rules: every buildpack a composite refers to is in the package, and every dependency is used."""
    present = {m.key: False for m in modules if m is not main}
    for module in modules:
        for group in getattr(module.descriptor, "order", ()):
            for entry in group:
                ref = f"{entry.id}@{entry.version}"
                if ref not in present:
                    raise CnbError(f"buildpack {module.key} references buildpack {ref} which is not in the package")
                present[ref] = True
    unused = [key for key, used in present.items() if not used]
    if unused:
        raise CnbError(f"buildpack {unused[0]} is not used by buildpack {main.key}")


def _merge_stacks(a: tuple[Stack, ...], b: tuple[Stack, ...]) -> tuple[Stack, ...]:
    """pack's ``stack.MergeCompatible``: the stacks both support (``*`` is any), mixins unioned."""
    a_any, b_any = any(s.id == "*" for s in a), any(s.id == "*" for s in b)
    if a_any and b_any:
        return (Stack("*"),)
    if a_any or b_any:
        return b if a_any else a
    mixins = {s.id: s.mixins for s in a}
    return tuple(Stack(s.id, tuple(sorted(set(mixins[s.id]) | set(s.mixins)))) for s in b if s.id in mixins)


def _stacks_of(module: Module) -> tuple[Stack, ...] | None:
    """A module's stacks, ``*`` for a target-based component buildpack, None for a composite."""
    if getattr(module.descriptor, "order", ()):
        return None
    stacks: tuple[Stack, ...] = getattr(module.descriptor, "stacks", ())
    return stacks or (Stack("*"),)


def package_stacks(main: Module, modules: Sequence[Module]) -> tuple[Stack, ...]:
    stacks = _stacks_of(main) or ()
    for module in modules:
        own = _stacks_of(module)
        if module is main or own is None:
            continue
        stacks = _merge_stacks(stacks, own) if stacks else own
    return stacks


def create_package(
    main: Module,
    dependencies: Sequence[Module],
    *,
    layer_cache: LayerCache,
    blobs_dir: Path,
    os_name: str = "linux",
    arch: str = "amd64",
) -> BuiltImage:
    """The buildpackage image of *main* and *dependencies*: one layer per module, sorted by ``id@version``."""
    modules = {m.key: m for m in dependencies}
    modules[main.key] = main
    ordered = [modules[key] for key in sorted(modules)]
    _check_references(main, ordered)
    stacks: tuple[Stack, ...] = ()
    if main.kind == "buildpack":
        stacks = package_stacks(main, ordered)
        if not stacks:
            raise CnbError(f"packaging {main.key}: no stack is supported by all of its buildpacks")
    layers: list[Layer] = []
    layer_info: bl.ModuleLayers = {}
    for module in ordered:
        layer = module_layer(module, layer_cache, blobs_dir)
        layers.append(layer)
        layer_info.setdefault(module.descriptor.id, {})[module.descriptor.version] = bl.ModuleLayer.of(
            module.descriptor, layer.diff_id
        )
    if main.kind == "buildpack":
        meta_label, layers_label = bl.BUILDPACKAGE_METADATA_LABEL, bl.BUILDPACK_LAYERS_LABEL
    else:
        meta_label, layers_label = bl.EXTENSION_METADATA_LABEL, bl.EXTENSION_LAYERS_LABEL
    labels = {
        meta_label: bl.PackageMetadata(main.descriptor.info, stacks).to_json(),
        layers_label: bl.module_layers_label(layer_info),
    }
    history = tuple(History(created=CREATED, created_by=f"cnb buildpack package: {m.key}") for m in ordered)
    config = ImageConfig(
        architecture=arch,
        os=os_name,
        diff_ids=(),
        created=CREATED,
        config=ContainerConfig(labels=labels),
        history=history,
    )
    return BuiltImage(config, layers)


def _tar_info(name: str, size: int = 0, *, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uid, info.gid, info.uname, info.gname = size, EPOCH, 0, 0, "", ""
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    return info


def write_package_file(image: Image, path: Path) -> OciDescriptor:
    """Write *image* as a ``.cnb`` file (an uncompressed OCI layout tar), atomically; the bytes depend only on the
    image."""
    manifest = image.descriptor
    index = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [{"mediaType": manifest.media_type, "digest": manifest.digest, "size": manifest.size}],
    }
    small = {manifest.digest: image.raw_manifest, image.manifest.config.digest: image.raw_config}
    layers = {layer.descriptor.digest: layer for layer in image.layers()}
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            tar.addfile(_tar_info("blobs", directory=True))
            tar.addfile(_tar_info("blobs/sha256", directory=True))
            for digest in sorted({*small, *layers}):
                name = f"blobs/sha256/{hex_part(digest)}"
                if digest in small:
                    data = small[digest]
                    tar.addfile(_tar_info(name, len(data)), _Bytes(data))
                else:
                    layer = layers[digest]
                    with layer.open() as blob:
                        tar.addfile(_tar_info(name, layer.descriptor.size), blob)
            for name, data in (
                ("index.json", canonical_json(index).encode()),
                ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
            ):
                tar.addfile(_tar_info(name, len(data)), _Bytes(data))
        os.replace(tmp, path)
    except OSError as exc:
        raise CnbError(f"writing buildpackage file {path}: {exc.strerror or exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return manifest


class _Bytes:
    """A minimal file object over bytes for ``TarFile.addfile``."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._pos + size
        chunk = self._data[self._pos : end]
        self._pos += len(chunk)
        return chunk
