"""``cnb inspect``: what a buildpacks-built app image is made of, read from its labels (docs/spec-notes.md §6.3 to §6.6,
§1.1).

The image may live in any store (local, ``oci:DIR``, a registry, ``docker-daemon:``). The report comes from:

- ``io.buildpacks.lifecycle.metadata`` (§6.4): the run image (name, mirrors, reference, top layer) and which
  diffID each buildpack launch layer, the SBOM, app, launcher, config and process-types layers have;
- ``io.buildpacks.build.metadata`` (§6.5): buildpacks with versions and homepages, processes, the default type;
- ``io.buildpacks.project.metadata`` (§6.6): the project source;
- the base labels inherited from the run image (§1.1): ``io.buildpacks.base.*``, ``io.buildpacks.stack.id``,
  ``io.buildpacks.rebasable`` (the rebaser refuses only the exact value ``"false"``, §8 step 3).

Each layer of the image gets an origin: the run image's layers are the layers up to and including
``runImage.topLayer``; the layers above are matched by diffID against the label, in export order (§6.1); an
unmatched layer above the base is an extension layer when its history says so, else ``unknown``.

``AppImageReport.to_json_dict()`` gives ``cnb inspect --json``. Its keys are stable:

```
image           the address as given              digest      manifest digest (engine: image ID)
platform        os/arch[/variant]                 created     config "created" or null
base            {id, distro: {name, version}, maintainer, homepage, description, released, stackId}
runImage        {image, mirrors: [..], reference, topLayer}
rebasable       bool                              rebasableLabel   the label's value or null
buildpacks      [{id, version, homepage, layers: [launch layer names]}]
extensions      [{id, version, homepage}]
processes       [{type, command: [..], args: [..], workingDir, direct, buildpackId, execEnv: [..], default}]
defaultProcess  type or null                      entrypoint  [..]
execEnv         label io.buildpacks.exec-env or ""
launcher        {version, repository, commit}      project     the project metadata label ({} when none)
layers          [{index, diffId, digest, size, mediaType, origin, buildpack, name}]
                origin: run-image | extension | buildpack | sbom | app | launcher | config | process-types | unknown
```
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cnbplatform.errors import CnbError, UsageError
from cnbplatform.files import labels as lb
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.labels import BuildMetadataLabel, LauncherInfo, LifecycleMetadata, ProjectMetadataLabel
from cnbplatform.oci.address import parse_address
from cnbplatform.oci.image import Artifact, Image, as_image, is_index, resolve_platform
from cnbplatform.oci.model import Descriptor, ImageConfig, Platform
from cnbplatform.oci.store.stores import Stores
from cnbplatform.platform.context import PlatformContext

PROCESS_DIR = "/cnb/process/"
EXTENSION_MARK = "Created by extension: "


class LayerOrigin(StrEnum):
    RUN_IMAGE = "run-image"
    EXTENSION = "extension"
    BUILDPACK = "buildpack"
    SBOM = "sbom"
    APP = "app"
    LAUNCHER = "launcher"
    CONFIG = "config"
    PROCESS_TYPES = "process-types"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class LayerInfo:
    """One layer of the image, bottom first; *buildpack*/*name* say which buildpack layer or app slice it is."""

    index: int
    diff_id: str
    digest: str
    size: int
    media_type: str
    origin: LayerOrigin
    buildpack: str = ""
    name: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "diffId": self.diff_id,
            "digest": self.digest,
            "size": self.size,
            "mediaType": self.media_type,
            "origin": str(self.origin),
            "buildpack": self.buildpack,
            "name": self.name,
        }


@dataclass(frozen=True)
class BaseInfo:
    """The base (run image) labels the app image inherited (§1.1)."""

    id: str = ""
    distro_name: str = ""
    distro_version: str = ""
    maintainer: str = ""
    homepage: str = ""
    description: str = ""
    released: str = ""
    stack_id: str = ""

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> BaseInfo:
        return cls(
            id=labels.get(lb.BASE_ID_LABEL, ""),
            distro_name=labels.get(lb.BASE_DISTRO_NAME_LABEL, ""),
            distro_version=labels.get(lb.BASE_DISTRO_VERSION_LABEL, ""),
            maintainer=labels.get(lb.BASE_MAINTAINER_LABEL, ""),
            homepage=labels.get(lb.BASE_HOMEPAGE_LABEL, ""),
            description=labels.get(lb.BASE_DESCRIPTION_LABEL, ""),
            released=labels.get(lb.BASE_RELEASED_LABEL, ""),
            stack_id=labels.get(lb.STACK_ID_LABEL, ""),
        )

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "distro": {"name": self.distro_name, "version": self.distro_version},
            "maintainer": self.maintainer,
            "homepage": self.homepage,
            "description": self.description,
            "released": self.released,
            "stackId": self.stack_id,
        }


@dataclass(frozen=True)
class RunImageInfo:
    """The run image the app was built on and where a rebase looks for a newer one (§6.4 ``runImage``)."""

    image: str = ""
    mirrors: tuple[str, ...] = ()
    reference: str = ""
    top_layer: str = ""

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "mirrors": list(self.mirrors),
            "reference": self.reference,
            "topLayer": self.top_layer,
        }


@dataclass(frozen=True)
class BuildpackInfo:
    id: str
    version: str
    homepage: str = ""
    layers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProcessInfo:
    type: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    working_dir: str = ""
    direct: bool = True
    buildpack_id: str = ""
    exec_env: tuple[str, ...] = ()
    default: bool = False

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "command": list(self.command),
            "args": list(self.args),
            "workingDir": self.working_dir,
            "direct": self.direct,
            "buildpackId": self.buildpack_id,
            "execEnv": list(self.exec_env),
            "default": self.default,
        }


@dataclass(frozen=True)
class AppImageReport:
    """Everything ``cnb inspect`` shows about one app image."""

    image: str
    digest: str
    platform: str
    created: str | None
    base: BaseInfo
    run_image: RunImageInfo
    rebasable: bool
    rebasable_label: str | None
    buildpacks: tuple[BuildpackInfo, ...]
    extensions: tuple[BuildpackInfo, ...]
    processes: tuple[ProcessInfo, ...]
    default_process: str | None
    entrypoint: tuple[str, ...]
    exec_env: str
    launcher: LauncherInfo
    project: ProjectMetadataLabel
    layers: tuple[LayerInfo, ...]

    def to_json_dict(self) -> dict[str, Any]:
        def bp(b: BuildpackInfo, with_layers: bool) -> dict[str, Any]:
            out: dict[str, Any] = {"id": b.id, "version": b.version, "homepage": b.homepage}
            if with_layers:
                out["layers"] = list(b.layers)
            return out

        return {
            "image": self.image,
            "digest": self.digest,
            "platform": self.platform,
            "created": self.created,
            "base": self.base.to_json_dict(),
            "runImage": self.run_image.to_json_dict(),
            "rebasable": self.rebasable,
            "rebasableLabel": self.rebasable_label,
            "buildpacks": [bp(b, True) for b in self.buildpacks],
            "extensions": [bp(e, False) for e in self.extensions],
            "processes": [p.to_json_dict() for p in self.processes],
            "defaultProcess": self.default_process,
            "entrypoint": list(self.entrypoint),
            "execEnv": self.exec_env,
            "launcher": {
                "version": self.launcher.version,
                "repository": self.launcher.repository,
                "commit": self.launcher.commit,
            },
            "project": self.project.to_dict(),
            "layers": [layer.to_json_dict() for layer in self.layers],
        }


# -- reading ----------------------------------------------------------------------------------------------------


def inspect_app_image(ctx: PlatformContext, where: str, *, platform: str | None = None) -> AppImageReport:
    """Open *where* in its store and report on it; an image without buildpacks labels is a one-line error."""
    address = parse_address(where)
    with Stores(ctx) as stores:
        store, ref = stores.open(address)
        image = _pick_image(store.read(ref), platform, where)
        config = image.config
        descriptor = image.descriptor
        layers = image.manifest.layers
    return build_report(where, descriptor, config, layers)


def _pick_image(artifact: Artifact, platform: str | None, where: str) -> Image:
    if platform:
        return as_image(resolve_platform(artifact, Platform.parse(platform)))
    if is_index(artifact):
        children = artifact.index.manifests
        if len(children) != 1:
            raise UsageError(f"{where} is an image index of {len(children)} images: choose one with --platform os/arch")
        return as_image(artifact.child(children[0]))
    return as_image(artifact)


def _decode(cls: Any, text: str | None, where: str, label: str) -> Any:
    if text is None:
        return cls()
    try:
        return cls.from_json_strict(text)
    except SpecFileError as exc:
        raise CnbError(f"{where}: cannot read label {label}: {exc.message}") from exc


def build_report(
    where: str, descriptor: Descriptor, config: ImageConfig, layers: Sequence[Descriptor]
) -> AppImageReport:
    """The report for an image whose config and manifest layers were read (no I/O)."""
    labels = config.config.labels
    if lb.LIFECYCLE_METADATA_LABEL not in labels:
        raise CnbError(f"{where} was not built by buildpacks: it has no {lb.LIFECYCLE_METADATA_LABEL} label")
    if len(layers) != len(config.diff_ids):
        raise CnbError(f"{where}: the manifest has {len(layers)} layers but the config {len(config.diff_ids)} diff_ids")
    lifecycle: LifecycleMetadata = _decode(
        LifecycleMetadata, labels[lb.LIFECYCLE_METADATA_LABEL], where, lb.LIFECYCLE_METADATA_LABEL
    )
    build: BuildMetadataLabel = _decode(
        BuildMetadataLabel, labels.get(lb.BUILD_METADATA_LABEL), where, lb.BUILD_METADATA_LABEL
    )
    project: ProjectMetadataLabel = _decode(
        ProjectMetadataLabel, labels.get(lb.PROJECT_METADATA_LABEL), where, lb.PROJECT_METADATA_LABEL
    )
    entrypoint = tuple(config.config.entrypoint or ())
    default = _default_process(entrypoint, build)
    rebasable_label = labels.get(lb.REBASABLE_LABEL)
    run = lifecycle.run_image
    stack = lifecycle.stack
    return AppImageReport(
        image=where,
        digest=descriptor.digest,
        platform=str(config.platform),
        created=config.created,
        base=BaseInfo.from_labels(labels),
        run_image=RunImageInfo(
            image=run.image or (stack.image if stack else ""),
            mirrors=run.mirrors or (stack.mirrors if stack else ()),
            reference=run.reference,
            top_layer=run.top_layer,
        ),
        rebasable=rebasable_label != "false",
        rebasable_label=rebasable_label,
        buildpacks=_buildpacks(lifecycle, build),
        extensions=tuple(BuildpackInfo(e.id, e.version, e.homepage) for e in build.extensions),
        processes=tuple(
            ProcessInfo(
                type=p.type,
                command=p.command,
                args=p.args,
                working_dir=p.working_dir or config.config.working_dir,
                direct=p.direct,
                buildpack_id=p.buildpack_id,
                exec_env=p.exec_env,
                default=p.type == default,
            )
            for p in build.processes
        ),
        default_process=default,
        entrypoint=entrypoint,
        exec_env=labels.get(lb.EXEC_ENV_LABEL, ""),
        launcher=build.launcher,
        project=project,
        layers=map_layers(lifecycle, config, layers),
    )


def _default_process(entrypoint: tuple[str, ...], build: BuildMetadataLabel) -> str | None:
    """The process the image runs: the one its entrypoint names (§6.3), else the buildpacks' default."""
    types = {p.type for p in build.processes}
    if len(entrypoint) == 1 and entrypoint[0].startswith(PROCESS_DIR):
        named = entrypoint[0][len(PROCESS_DIR) :]
        if named in types:
            return named
    return build.default_process_type if build.default_process_type in types else None


def _buildpacks(lifecycle: LifecycleMetadata, build: BuildMetadataLabel) -> tuple[BuildpackInfo, ...]:
    """The group's buildpacks, from the build label (versions, homepages), with their launch layers' names."""
    out = []
    for ref in build.buildpacks:
        entry = lifecycle.for_buildpack(ref.id)
        names = tuple(sorted(entry.layers)) if entry is not None else ()
        out.append(BuildpackInfo(ref.id, ref.version, ref.homepage, names))
    known = {ref.id for ref in build.buildpacks}
    for entry in lifecycle.buildpacks:  # no build label (or an older one): the lifecycle label still names them
        if entry.key not in known:
            out.append(BuildpackInfo(entry.key, entry.version, "", tuple(sorted(entry.layers))))
    return tuple(out)


# -- layer origins ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expected:
    diff_id: str
    origin: LayerOrigin
    buildpack: str = ""
    name: str = ""


def _expected_layers(lifecycle: LifecycleMetadata) -> list[_Expected]:
    """The layers the exporter appends above the base, in its order (§6.1), as the label records them."""
    out: list[_Expected] = []
    for bp in lifecycle.buildpacks:
        for name in sorted(bp.layers):
            if bp.layers[name].sha:
                out.append(_Expected(bp.layers[name].sha, LayerOrigin.BUILDPACK, bp.key, name))
    if lifecycle.sbom:
        out.append(_Expected(lifecycle.sbom, LayerOrigin.SBOM))
    slices = len(lifecycle.app) - 1
    for i, sha in enumerate(lifecycle.app):
        name = f"slice {i + 1}" if i < slices else ("remaining files" if slices else "")
        out.append(_Expected(sha, LayerOrigin.APP, name=name))
    for single, origin in (
        (lifecycle.launcher, LayerOrigin.LAUNCHER),
        (lifecycle.config, LayerOrigin.CONFIG),
        (lifecycle.process_types, LayerOrigin.PROCESS_TYPES),
    ):
        if single:
            out.append(_Expected(single, origin))
    return out


def _history_per_layer(config: ImageConfig) -> list[str]:
    """``created_by`` of each layer, when the history lines up with the layers (else empty strings)."""
    entries = [h.created_by or "" for h in config.history if not h.empty_layer]
    return entries if len(entries) == len(config.diff_ids) else [""] * len(config.diff_ids)


def map_layers(
    lifecycle: LifecycleMetadata, config: ImageConfig, layers: Sequence[Descriptor]
) -> tuple[LayerInfo, ...]:
    """Give every layer its origin: run image up to ``runImage.topLayer``, then the label's layers by diffID."""
    diff_ids = config.diff_ids
    expected = _expected_layers(lifecycle)
    present = sum(1 for e in expected if e.diff_id in diff_ids)
    highest_base = len(diff_ids) - 1 - present  # the base's top cannot be above the layers the label names
    top = lifecycle.run_image.top_layer
    base_end = max((i for i, d in enumerate(diff_ids) if d == top and i <= highest_base), default=-1)
    queues: dict[str, deque[_Expected]] = {}
    for e in expected:
        queues.setdefault(e.diff_id, deque()).append(e)
    history = _history_per_layer(config)
    out: list[LayerInfo] = []
    for i, (diff_id, desc) in enumerate(zip(diff_ids, layers, strict=True)):
        origin, buildpack, name = LayerOrigin.UNKNOWN, "", ""
        if i <= base_end:
            origin = LayerOrigin.RUN_IMAGE
        elif queues.get(diff_id):
            e = queues[diff_id].popleft()
            origin, buildpack, name = e.origin, e.buildpack, e.name
        elif EXTENSION_MARK in history[i]:
            origin = LayerOrigin.EXTENSION
            buildpack = history[i].split(EXTENSION_MARK, 1)[1].strip()
            name = history[i].split("'")[1] if history[i].count("'") >= 2 else ""
        out.append(LayerInfo(i + 1, diff_id, desc.digest, desc.size, desc.media_type, origin, buildpack, name))
    return tuple(out)
