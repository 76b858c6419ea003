"""A hand-made build result to export: a busybox run image (tests/support/images.py), a layers dir with layer
tomls, metadata.toml and SBOMs written through cnbplatform.files, and an app dir; plus readers that look at what
the exporter wrote with plain ``tarfile``/``gzip``."""

from __future__ import annotations

import dataclasses
import gzip
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.files.analyzed import Analyzed, LayersMetadata, RunImageInfo
from cnbplatform.files.group import GroupFile, GroupMember
from cnbplatform.files.labels import LIFECYCLE_METADATA_LABEL, LifecycleMetadata
from cnbplatform.files.launch import Label, Slice
from cnbplatform.files.layer_toml import LayerToml, LayerTypes
from cnbplatform.files.metadata import BuildMetadata, BuildpackRef, ProcessEntry
from cnbplatform.files.run_toml import RunConfig, RunImage
from cnbplatform.lifecycle.common import RecordingReporter
from cnbplatform.lifecycle.export.phase import ExportInputs, ExportResult, export
from cnbplatform.oci.image import Image, as_image
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.oci.store.protocol import ImageStore
from tests.support.images import make_busybox_image

UID, GID = 1000, 1001
NODE = GroupMember("example/node", "1.2.3", "0.12", homepage="https://example.com/node")
PY = GroupMember("example/py", "0.1.0", "0.12")
RUN_NAME = "registry.example/run:busybox"
RUN_MIRROR = "mirror.example/run:busybox"
NODE_HELLO = b"#!/bin/sh\necho hello from node\n"
WEB_COMMAND = ("/bin/sh", "-c", 'echo "web says $GREETING"; node-hello')


def write_files(root: Path, files: Mapping[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        if data.startswith(b"#!"):
            path.chmod(0o755)
    return root


@dataclass
class Scene:
    """One build's worth of export inputs under *root*."""

    root: Path
    reporter: RecordingReporter = field(default_factory=RecordingReporter)

    def __post_init__(self) -> None:
        self.layers = self.root / "layers"
        self.app = self.root / "workspace"
        self.out = LayoutStore(self.root / "out")
        self.blobs = self.root / "blobs"
        self.layer_cache = LayerCache(self.root / "layer-cache", racy_margin_ns=0)
        run_layout = self.root / "run"
        self.run_digest = make_busybox_image(run_layout, "busybox")
        self.run_image = as_image(LayoutStore(run_layout).read("busybox"))
        self.run_reference = f"{run_layout}@{self.run_digest}"
        self.layers.mkdir(parents=True)
        self.app.mkdir(parents=True)
        self.group = GroupFile(group=(NODE, PY))
        self.metadata_kwargs: dict[str, Any] = {}

    # -- writing the build result ---------------------------------------------------------------------

    def layer(
        self,
        bp: GroupMember,
        name: str,
        files: Mapping[str, bytes] | None,
        *,
        launch: bool = False,
        build: bool = False,
        cache: bool = False,
        metadata: Mapping[str, Any] | None = None,
    ) -> Path:
        bp_dir = self.layers / bp.id.replace("/", "_")
        bp_dir.mkdir(parents=True, exist_ok=True)
        LayerToml(LayerTypes(launch=launch, build=build, cache=cache), dict(metadata or {})).dump(
            bp_dir / f"{name}.toml"
        )
        if files is not None:
            write_files(bp_dir / name, files)
        return bp_dir / name

    def write_metadata(
        self,
        *,
        processes: Sequence[ProcessEntry] | None = None,
        default: str = "web",
        slices: Sequence[Sequence[str]] = (),
        labels: Sequence[Label] = (),
    ) -> None:
        if processes is None:
            processes = [
                ProcessEntry("web", WEB_COMMAND, (), True, NODE.id),
                ProcessEntry("worker", ("echo", "worker"), (), True, PY.id),
            ]
        BuildMetadata(
            buildpacks=tuple(BuildpackRef(m.id, m.version, m.api, m.homepage) for m in self.group.group),
            labels=tuple(labels),
            processes=tuple(processes),
            slices=tuple(Slice(tuple(paths)) for paths in slices),
            default_process_type=default,
        ).dump(self.layers / "config" / "metadata.toml")

    def standard(self, *, slices: Sequence[Sequence[str]] = ()) -> Scene:
        """Launch, launch+cache, build-only and cache-only layers, an SBOM, an app, two processes."""
        self.layer(
            NODE,
            "node",
            {"bin/node-hello": NODE_HELLO, "env.launch/GREETING": b"hi there", "lib/libnode.txt": b"lib"},
            launch=True,
            metadata={"version": "18.1"},
        )
        self.layer(NODE, "deps", {"node_modules/left-pad/index.js": b"module.exports = 1\n"}, launch=True, cache=True)
        self.layer(NODE, "toolchain", {"bin/tsc": b"#!/bin/sh\n"}, build=True)
        self.layer(PY, "wheels", {"w/a.whl": b"wheel"}, cache=True)
        self.layer(PY, "runtime", {"python.txt": b"py"}, launch=True)
        write_files(self.layers / "sbom" / "launch", {"example_node/node/sbom.cdx.json": b'{"bomFormat":"x"}'})
        write_files(self.layers / "sbom" / "cache", {"example_py/wheels/sbom.cdx.json": b'{"bomFormat":"y"}'})
        write_files(
            self.app,
            {"index.js": b"console.log(1)\n", "static/a.css": b"a{}", "static/img/b.png": b"png", "README.md": b"hi"},
        )
        self.write_metadata(
            slices=slices,
            labels=[Label("com.example.a", "first"), Label("com.example.b", "b"), Label("com.example.a", "last")],
        )
        return self

    # -- exporting ------------------------------------------------------------------------------------

    def analyzed(self, previous: Image | None = None) -> Analyzed:
        metadata = LayersMetadata()
        if previous is not None:
            label = previous.config.labels.get(LIFECYCLE_METADATA_LABEL)
            metadata = LifecycleMetadata.from_json(label).to_layers_metadata()
        return Analyzed(run_image=RunImageInfo(reference=self.run_reference, image=RUN_NAME), metadata=metadata)

    def inputs(self, tag: str = "app", *, previous: Image | None = None, **overrides: Any) -> ExportInputs:
        destinations: list[tuple[ImageStore, str]] = [(self.out, tag)]
        base = ExportInputs(
            layers_dir=self.layers,
            app_dir=self.app,
            group=self.group,
            analyzed=self.analyzed(previous),
            run_image=self.run_image,
            destinations=destinations,
            blobs_dir=self.blobs,
            layer_cache=self.layer_cache,
            uid=UID,
            gid=GID,
            previous_image=previous,
            run_config=RunConfig((RunImage(RUN_NAME, (RUN_MIRROR,)),)),
            report_path=self.layers / "report.toml",
        )
        return dataclasses.replace(base, **overrides)

    def export(self, tag: str = "app", *, previous: Image | None = None, **overrides: Any) -> ExportResult:
        return export(self.inputs(tag, previous=previous, **overrides), self.reporter)

    def image(self, tag: str = "app") -> Image:
        return as_image(self.out.read(tag))


def layer_tar(image: Image, index: int) -> list[tarfile.TarInfo]:
    """The tar members of layer *index* of *image* (read from the layout with plain gzip + tarfile)."""
    layer = image.layers()[index]
    path = layer.path()
    assert path is not None
    with gzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        return list(tar)


def layer_files(image: Image, index: int) -> dict[str, bytes]:
    """Regular files of layer *index*: archive name -> content."""
    layer = image.layers()[index]
    path = layer.path()
    assert path is not None
    out: dict[str, bytes] = {}
    with gzip.open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        for member in tar:
            if member.isfile():
                source = tar.extractfile(member)
                assert source is not None
                out[member.name] = source.read()
    return out


def names(members: Sequence[tarfile.TarInfo]) -> list[str]:
    return [m.name.rstrip("/") for m in members]
