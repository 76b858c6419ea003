"""Reading buildpackages back: a buildpackage image or a ``.cnb`` file (an OCI layout as a tar) into buildpack
directories (docs/spec-notes.md §10.1). Pack's absolute tar names (``/cnb/buildpacks/…``, ``/index.json``) and
flattened packages (several buildpacks in one layer) are accepted; the layout is written by
:mod:`cnbplatform.builder.buildpackage`."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from cnbplatform.builder.buildpackage import Module, load_module
from cnbplatform.errors import CnbError
from cnbplatform.files import builder_labels as bl
from cnbplatform.files.buildpack_toml import (
    escape_id,
)
from cnbplatform.files.untrusted import join
from cnbplatform.oci.digest import verified_reader
from cnbplatform.oci.image import Image
from cnbplatform.oci.layers.compress import open_uncompressed
from cnbplatform.oci.rootfs.unpack import unpack_tar


def extract_tar(stream: BinaryIO, dest: Path, *, what: str) -> None:
    """Unpack a tar (plain, gzip or zstd) into *dest* with :func:`cnbplatform.oci.rootfs.unpack.unpack_tar`:
    absolute names (``/cnb/…``, pack's style) are rooted under *dest*, escapes are refused, no device node, fifo or
    set-id bit is made, and the per-layer byte and entry limits hold while the stream is read (no temporary copy)."""
    unpack_tar(open_uncompressed(stream, None), dest, what=what)


def read_package_image(image: Image, root: Path, *, kind: str = "buildpack", what: str) -> list[Module]:
    """Unpack the buildpackage *image* under *root* and return its modules, the entry module first."""
    labels = image.config.labels
    if kind == "buildpack":
        meta_label, layers_label = bl.BUILDPACKAGE_METADATA_LABEL, bl.BUILDPACK_LAYERS_LABEL
    else:
        meta_label, layers_label = bl.EXTENSION_METADATA_LABEL, bl.EXTENSION_LAYERS_LABEL
    if meta_label not in labels or layers_label not in labels:
        missing = meta_label if meta_label not in labels else layers_label
        raise CnbError(f"{what} is not a {kind} package: it has no label {missing}")
    metadata = bl.PackageMetadata.from_json(labels[meta_label], meta_label)
    layer_info = bl.parse_module_layers(labels[layers_label], layers_label)
    diff_ids = set(image.config.diff_ids)
    for module_id, versions in layer_info.items():
        for version, info in versions.items():
            if info.layer_diff_id not in diff_ids:
                raise CnbError(
                    f"{what}: {kind} {module_id}@{version} names layer {info.layer_diff_id}, not in the image"
                )
    for layer in image.layers():
        with layer.open() as compressed:
            plain = verified_reader(open_uncompressed(compressed, None), layer.diff_id, None, "layer content (diffID)")
            unpack_tar(plain, root, what=f"{what} layer {layer.descriptor.digest}")
    modules = []
    for module_id, versions in sorted(layer_info.items()):
        for version in sorted(versions):
            directory = join(root, "cnb", f"{kind}s", escape_id(module_id), version, file=what)
            module = load_module(directory, kind, what)
            if (module.descriptor.id, module.descriptor.version) != (module_id, version):
                raise CnbError(f"{what}: {directory} holds {module.key}, not {module_id}@{version}")
            modules.append(module)
    main = next(
        (m for m in modules if (m.descriptor.id, m.descriptor.version) == (metadata.info.id, metadata.info.version)),
        None,
    )
    if main is None:
        raise CnbError(f"{what}: the entry {kind} {metadata.info.id}@{metadata.info.version} is not in the package")
    return [main, *(m for m in modules if m is not main)]


def read_package_file(path: Path, layout_dir: Path) -> Path:
    """Unpack the ``.cnb`` file *path* (an OCI layout tar) into *layout_dir*; returns the layout directory."""
    try:
        with open(path, "rb") as stream:
            extract_tar(stream, layout_dir, what=f"buildpackage {path}")
    except OSError as exc:
        raise CnbError(f"reading buildpackage {path}: {exc.strerror or exc}") from exc
    if not (layout_dir / "index.json").is_file():
        raise CnbError(f"{path} is not a buildpackage: no index.json in it")
    return layout_dir
