"""The labels of builders and buildpackages, in pack's JSON shapes (docs/spec-notes.md §10.1, §10.2).

- ``io.buildpacks.builder.metadata`` → :class:`BuilderMetadata`
  (``description``, ``buildpacks``/``extensions`` as module infos, ``stack.runImage``, ``images``, ``lifecycle``
  with ``version``/``api``/``apis``, ``createdBy``);
- ``io.buildpacks.buildpack.layers`` / ``io.buildpacks.extension.layers`` → :data:`ModuleLayers`
  (``{id: {version: {api, stacks, targets, order, layerDiffID, homepage, name}}}``);
- ``io.buildpacks.buildpack.order``, ``…order-extensions`` (an order as JSON) and ``io.buildpacks.buildpack.system``
  (``{"pre": {"buildpacks": […]}, "post": …}``);
- ``io.buildpacks.buildpackage.metadata`` / ``io.buildpacks.extension.metadata`` → :class:`PackageMetadata`
  (the entry module's info plus ``stacks``).

Go's ``omitempty`` fields are left out when empty; JSON is canonical (sorted keys), so equal data gives equal bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cnbplatform.files.buildpack_toml import Descriptor, Distro, ModuleInfo, Stack, Target
from cnbplatform.files.common import Table
from cnbplatform.files.labels import canonical_json, decode_label
from cnbplatform.files.lifecycle_label import RUN_IMAGE_SHELL_LABEL as RUN_IMAGE_SHELL_LABEL  # (re-exported)
from cnbplatform.files.order import GroupEntry, OrderGroup
from cnbplatform.files.run_toml import RunImage
from cnbplatform.files.system import SystemConfig
from cnbplatform.files.untrusted import check_module_id, check_version

BUILDER_METADATA_LABEL = "io.buildpacks.builder.metadata"
BUILDPACK_LAYERS_LABEL = "io.buildpacks.buildpack.layers"
EXTENSION_LAYERS_LABEL = "io.buildpacks.extension.layers"
BUILDPACK_ORDER_LABEL = "io.buildpacks.buildpack.order"
ORDER_EXTENSIONS_LABEL = "io.buildpacks.buildpack.order-extensions"
SYSTEM_LABEL = "io.buildpacks.buildpack.system"
BUILDPACKAGE_METADATA_LABEL = "io.buildpacks.buildpackage.metadata"
EXTENSION_METADATA_LABEL = "io.buildpacks.extension.metadata"
#: cnb's own label on a builder: the build image it was made from (``{"image": …, "digest": …}``).
BUILD_IMAGE_LABEL = "io.cnb.builder.build-image"


# -- module infos (pack's dist.ModuleInfo) --------------------------------------------------------------------


def module_info_json(info: ModuleInfo) -> dict[str, Any]:
    out: dict[str, Any] = {"id": info.id}
    for key, value in (
        ("name", info.name),
        ("version", info.version),
        ("description", info.description),
        ("homepage", info.homepage),
    ):
        if value:
            out[key] = value
    if info.keywords:
        out["keywords"] = list(info.keywords)
    if info.exec_env:
        out["exec-env"] = list(info.exec_env)
    if info.licenses:
        out["licenses"] = [{"type": x.type, "uri": x.uri} for x in info.licenses]
    if info.clear_env:
        out["clear-env"] = True
    return out


def module_info_from(table: Table) -> ModuleInfo:
    """A module info from label JSON: only ``id`` is required (a label is not a buildpack.toml)."""
    return ModuleInfo(
        id=table.get_str("id", required=True),
        version=table.get_str("version"),
        name=table.get_str("name"),
        homepage=table.get_str("homepage"),
        description=table.get_str("description"),
        keywords=tuple(table.str_list("keywords")),
        clear_env=table.get_bool("clear-env"),
    )


def order_json(order: tuple[OrderGroup, ...]) -> list[dict[str, Any]]:
    return [{"group": [e.to_dict() for e in group]} for group in order]


def order_from(table: Table, key: str) -> tuple[OrderGroup, ...]:
    groups = []
    for group in table.tables(key):
        entries = [
            GroupEntry(t.get_str("id"), t.get_str("version"), t.get_bool("optional")) for t in group.tables("group")
        ]
        groups.append(OrderGroup(tuple(entries)))
    return tuple(groups)


def order_label(order: tuple[OrderGroup, ...]) -> str:
    return canonical_json(order_json(order))


def parse_order_label(text: str, label: str = BUILDPACK_ORDER_LABEL) -> tuple[OrderGroup, ...]:
    return order_from(decode_label(f'{{"order": {text or "[]"}}}', label), "order")


def system_label(system: SystemConfig) -> str:
    out: dict[str, Any] = {}
    for key, entries in (("pre", system.pre), ("post", system.post)):
        if entries:
            out[key] = {"buildpacks": [e.to_dict() for e in entries]}
    return canonical_json(out)


def parse_system_label(text: str) -> SystemConfig:
    table = decode_label(text or "{}", SYSTEM_LABEL)
    return SystemConfig(pre=_entries_of(table, "pre"), post=_entries_of(table, "post"))


def _entries_of(table: Table, key: str) -> tuple[GroupEntry, ...]:
    return _entries(table.table(key).tables("buildpacks"))


def _entries(tables: list[Table]) -> tuple[GroupEntry, ...]:
    return tuple(
        GroupEntry(t.get_str("id", required=True), t.get_str("version"), t.get_bool("optional")) for t in tables
    )


# -- io.buildpacks.buildpack.layers -------------------------------------------------------------------------------


def _target_json(target: Target) -> dict[str, Any]:
    out: dict[str, Any] = {"os": target.os, "arch": target.arch}  # pack: os and arch are always written
    if target.variant:
        out["variant"] = target.variant
    if target.distros:
        out["distros"] = [{k: v for k, v in (("name", d.name), ("version", d.version)) if v} for d in target.distros]
    return out


@dataclass(frozen=True)
class ModuleLayer:
    """One module in a layers label: its descriptor data and the diffID of the layer that holds it."""

    api: str
    layer_diff_id: str
    stacks: tuple[Stack, ...] = ()
    targets: tuple[Target, ...] = ()
    order: tuple[OrderGroup, ...] = ()
    homepage: str = ""
    name: str = ""

    @classmethod
    def of(cls, descriptor: Descriptor, diff_id: str) -> ModuleLayer:
        stacks: tuple[Stack, ...] = getattr(descriptor, "stacks", ())
        order: tuple[OrderGroup, ...] = getattr(descriptor, "order", ())
        return cls(
            descriptor.api, diff_id, stacks, descriptor.targets, order, descriptor.info.homepage, descriptor.info.name
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"api": self.api, "layerDiffID": self.layer_diff_id}
        if self.stacks:
            out["stacks"] = [{"id": s.id, "mixins": list(s.mixins)} if s.mixins else {"id": s.id} for s in self.stacks]
        if self.targets:
            out["targets"] = [_target_json(t) for t in self.targets]
        if self.order:
            out["order"] = order_json(self.order)
        if self.homepage:
            out["homepage"] = self.homepage
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_table(cls, table: Table) -> ModuleLayer:
        targets = []
        for t in table.tables("targets"):
            distros = tuple(Distro(d.get_str("name"), d.get_str("version")) for d in t.tables("distros"))
            targets.append(Target(t.get_str("os"), t.get_str("arch"), t.get_str("variant"), distros))
        return cls(
            api=table.get_str("api"),
            layer_diff_id=table.get_str("layerDiffID", required=True),
            stacks=tuple(Stack(s.get_str("id"), tuple(s.str_list("mixins"))) for s in table.tables("stacks")),
            targets=tuple(targets),
            order=order_from(table, "order"),
            homepage=table.get_str("homepage"),
            name=table.get_str("name"),
        )


#: ``{id: {version: ModuleLayer}}``
ModuleLayers = dict[str, dict[str, ModuleLayer]]


def module_layers_label(layers: ModuleLayers) -> str:
    return canonical_json({i: {v: m.to_json() for v, m in versions.items()} for i, versions in layers.items()})


def parse_module_layers(text: str, label: str = BUILDPACK_LAYERS_LABEL) -> ModuleLayers:
    table = decode_label(text or "{}", label)
    out: ModuleLayers = {}
    for module_id in table.data:
        check_module_id(module_id, file=f"label {label}", key=module_id)  # they name directories when unpacked
        versions = table.table(module_id)
        for v in versions.data:
            check_version(v, file=f"label {label}", key=f"{module_id}.{v}")
        out[module_id] = {v: ModuleLayer.from_table(versions.table(v)) for v in versions.data}
    return out


# -- io.buildpacks.buildpackage.metadata ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PackageMetadata:
    """The entry module of a buildpackage and the stacks the package supports (``*`` for target-based ones)."""

    info: ModuleInfo
    stacks: tuple[Stack, ...] = ()

    def to_json(self) -> str:
        out = module_info_json(self.info)
        out["stacks"] = [{"id": s.id, "mixins": list(s.mixins)} if s.mixins else {"id": s.id} for s in self.stacks]
        return canonical_json(out)

    @classmethod
    def from_json(cls, text: str, label: str = BUILDPACKAGE_METADATA_LABEL) -> PackageMetadata:
        table = decode_label(text, label)
        stacks = tuple(Stack(s.get_str("id"), tuple(s.str_list("mixins"))) for s in table.tables("stacks"))
        return cls(module_info_from(table), stacks)


# -- io.buildpacks.builder.metadata ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LifecycleInfo:
    """``lifecycle`` of the builder metadata: the lifecycle version and the Buildpack/Platform APIs it supports."""

    version: str = ""
    buildpack_apis: tuple[str, ...] = ()
    platform_apis: tuple[str, ...] = ()
    deprecated_buildpack_apis: tuple[str, ...] = ()
    deprecated_platform_apis: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "api": {  # pack's deprecated single-version form: the oldest supported of each
                "buildpack": self.buildpack_apis[0] if self.buildpack_apis else "",
                "platform": self.platform_apis[0] if self.platform_apis else "",
            },
            "apis": {
                "buildpack": {
                    "deprecated": list(self.deprecated_buildpack_apis),
                    "supported": list(self.buildpack_apis),
                },
                "platform": {"deprecated": list(self.deprecated_platform_apis), "supported": list(self.platform_apis)},
            },
        }

    @classmethod
    def from_table(cls, table: Table) -> LifecycleInfo:
        apis = table.table("apis")
        bp, pf = apis.table("buildpack"), apis.table("platform")
        return cls(
            version=table.get_str("version"),
            buildpack_apis=tuple(bp.str_list("supported")),
            platform_apis=tuple(pf.str_list("supported")),
            deprecated_buildpack_apis=tuple(bp.str_list("deprecated")),
            deprecated_platform_apis=tuple(pf.str_list("deprecated")),
        )


def _apis(deprecated: tuple[str, ...], supported: tuple[str, ...]) -> dict[str, list[str]]:
    return {"deprecated": list(deprecated), "supported": list(supported)}


def _run_image_json(image: RunImage) -> dict[str, Any]:
    return {"image": image.image, "mirrors": list(image.mirrors)}


def _run_image_from(table: Table) -> RunImage:
    return RunImage(table.get_str("image"), tuple(table.str_list("mirrors")))


@dataclass(frozen=True)
class BuilderMetadata:
    """The ``io.buildpacks.builder.metadata`` label."""

    description: str = ""
    buildpacks: tuple[ModuleInfo, ...] = ()
    extensions: tuple[ModuleInfo, ...] = ()
    run_images: tuple[RunImage, ...] = ()
    stack_run_image: RunImage | None = None
    lifecycle: LifecycleInfo = field(default_factory=LifecycleInfo)
    created_by: tuple[str, str] = ("", "")

    def to_json(self) -> str:
        stack = self.stack_run_image or (self.run_images[0] if self.run_images else RunImage(""))
        return canonical_json(
            {
                "description": self.description,
                "buildpacks": [module_info_json(b) for b in self.buildpacks],
                "extensions": [module_info_json(e) for e in self.extensions],
                "stack": {"runImage": _run_image_json(stack)},
                "images": [_run_image_json(i) for i in self.run_images],
                "lifecycle": self.lifecycle.to_json(),
                "createdBy": {"name": self.created_by[0], "version": self.created_by[1]},
            }
        )

    @classmethod
    def from_json(cls, text: str) -> BuilderMetadata:
        table = decode_label(text, BUILDER_METADATA_LABEL)
        created = table.table("createdBy")
        stack = table.table("stack").table("runImage")
        return cls(
            description=table.get_str("description"),
            buildpacks=tuple(module_info_from(t) for t in table.tables("buildpacks")),
            extensions=tuple(module_info_from(t) for t in table.tables("extensions")),
            run_images=tuple(_run_image_from(t) for t in table.tables("images")),
            stack_run_image=_run_image_from(stack) if stack.get_str("image") else None,
            lifecycle=LifecycleInfo.from_table(table.table("lifecycle")),
            created_by=(created.get_str("name"), created.get_str("version")),
        )
