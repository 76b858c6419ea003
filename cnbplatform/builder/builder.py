"""Builder images from builder.toml, laid out and labelled as pack lays them out (docs/spec-notes.md §10.2, §1.1, §5.2).

On top of the build image's layers:

1. the default directories: ``/workspace`` and ``/layers`` owned by ``CNB_USER_ID:CNB_GROUP_ID``; ``/cnb``,
   ``/cnb/buildpacks``, ``/cnb/extensions``, ``/platform``, ``/platform/env``, ``/cnb/build-config``,
   ``/cnb/build-config/env`` owned by root;
2. one layer per buildpack (then per extension), sorted by ``id@version`` as pack sorts them, each holding the
   module at ``/cnb/buildpacks/<escaped id>/<version>/`` (:func:`~cnbplatform.builder.buildpackage.module_layer`);
3. one layer with ``/cnb/order.toml`` (versions resolved), ``/cnb/run.toml``, ``/cnb/stack.toml`` (for Platform
   API < 0.12), ``/cnb/system.toml`` (when there are system buildpacks) and ``/cnb/build-config/env/*``.

Between the directories and the buildpacks comes the lifecycle layer: ``/cnb/lifecycle`` (cnb's own, a
self-contained bundle, :mod:`cnbplatform.builder.lifecycle_bundle`, or the last layer of a lifecycle image) and
the ``/lifecycle`` link pack adds, so Tekton and kpack can run the phases in the builder image. ``cnb build`` does
not use it: cnb's lifecycle runs on the host and sandboxes only the buildpacks (docs/design.md). ``[lifecycle]`` is
accepted and ignored; ``io.buildpacks.builder.metadata`` names the lifecycle and the APIs it supports.
The labels (``io.buildpacks.builder.metadata``, ``io.buildpacks.buildpack.layers``,
``io.buildpacks.buildpack.order``, ``io.buildpacks.buildpack.system``, …) have pack's JSON shapes; WorkingDir is
``/layers``; every time is 1980-01-01T00:00:01Z, so the same inputs give the same digest.

The build image must have ``CNB_USER_ID`` and ``CNB_GROUP_ID`` in its env and a non-root ``User`` (§1.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cnbplatform import __version__
from cnbplatform.builder.buildpackage import Module, file_layer, module_layer
from cnbplatform.builder.modules import ModuleResolver, Reporter
from cnbplatform.errors import CnbError
from cnbplatform.files import apis
from cnbplatform.files import builder_labels as bl
from cnbplatform.files.builder_toml import BuilderConfig, ModuleConfig
from cnbplatform.files.buildpack_toml import Target
from cnbplatform.files.common import dumps_toml
from cnbplatform.files.labels import canonical_json
from cnbplatform.files.order import GroupEntry, Order, OrderGroup
from cnbplatform.files.run_toml import RunConfig
from cnbplatform.files.system import SystemConfig
from cnbplatform.oci.image import Image, Layer
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import Entry, LayerSpec, TreeSource
from cnbplatform.oci.model import NORMALIZED_CREATED as CREATED
from cnbplatform.oci.model import ContainerConfig, History, ImageConfig
from cnbplatform.oci.mutate import BuiltImage, append_layers, with_config

ROOT_DIRS = (
    "cnb",
    "cnb/buildpacks",
    "cnb/extensions",
    "platform",
    "platform/env",
    "cnb/build-config",
    "cnb/build-config/env",
)
USER_DIRS = ("workspace", "layers")
CREATED_BY = ("cnb", __version__)


def lifecycle_info() -> bl.LifecycleInfo:
    """cnb's own lifecycle, as the builder metadata describes it."""
    return bl.LifecycleInfo(
        version=apis.LIFECYCLE_VERSION,
        buildpack_apis=tuple(str(v) for v in apis.SUPPORTED_BUILDPACK_APIS),
        platform_apis=tuple(str(v) for v in apis.SUPPORTED_PLATFORM_APIS),
        deprecated_buildpack_apis=tuple(
            str(v) for v in apis.SUPPORTED_BUILDPACK_APIS if apis.is_deprecated_buildpack_api(v)
        ),
        deprecated_platform_apis=tuple(
            str(v) for v in apis.SUPPORTED_PLATFORM_APIS if apis.is_deprecated_platform_api(v)
        ),
    )


def lifecycle_toml() -> str:
    """``lifecycle.toml`` as the Go lifecycle's tarball carries it: the APIs, the legacy ``[api]`` and the version."""
    info = lifecycle_info().to_json()
    return dumps_toml({"apis": info["apis"], "api": info["api"], "lifecycle": {"version": info["version"]}})


LIFECYCLE_VERSION_LABEL = "io.buildpacks.lifecycle.version"
LIFECYCLE_APIS_LABEL = "io.buildpacks.lifecycle.apis"


def lifecycle_labels(info: bl.LifecycleInfo) -> dict[str, str]:
    """What the Go lifecycle's image says of itself (pack and kpack read these); builders carry them too."""
    described = info.to_json()
    return {LIFECYCLE_VERSION_LABEL: described["version"], LIFECYCLE_APIS_LABEL: canonical_json(described["apis"])}


_ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def lifecycle_image(layer: Layer, info: bl.LifecycleInfo) -> BuiltImage:
    """A lifecycle image as kpack's ClusterLifecycle reads one: the lifecycle in its last (only) layer, the
    ``io.buildpacks.lifecycle.*`` labels and ``io.buildpacks.builder.metadata`` with the lifecycle version, and
    this machine's os/arch (the bundle's interpreter is this machine's)."""
    import platform

    described = info.to_json()
    labels = lifecycle_labels(info)
    labels[bl.BUILDER_METADATA_LABEL] = canonical_json(
        {"lifecycle": {"version": info.version}, "api": described["api"]}
    )
    machine = platform.machine()
    config = ImageConfig(
        architecture=_ARCHES.get(machine, machine),
        os="linux",
        diff_ids=(),
        created=CREATED,
        config=ContainerConfig(labels=labels),
        history=(History(created=CREATED, created_by=f"cnb lifecycle image: lifecycle {info.version}"),),
    )
    return BuiltImage(config, [layer])


def lifecycle_info_of(labels: dict[str, str]) -> bl.LifecycleInfo | None:
    """The lifecycle a lifecycle image's labels describe, or None when it has no such labels."""
    import json

    version, apis_text = labels.get(LIFECYCLE_VERSION_LABEL), labels.get(LIFECYCLE_APIS_LABEL)
    if not version or not apis_text:
        return None
    try:
        apis_json = json.loads(apis_text)
        bp, pf = apis_json["buildpack"], apis_json["platform"]
        return bl.LifecycleInfo(
            version=version,
            buildpack_apis=tuple(str(v) for v in bp.get("supported", [])),
            platform_apis=tuple(str(v) for v in pf.get("supported", [])),
            deprecated_buildpack_apis=tuple(str(v) for v in bp.get("deprecated", [])),
            deprecated_platform_apis=tuple(str(v) for v in pf.get("deprecated", [])),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CnbError(f"label {LIFECYCLE_APIS_LABEL}: not the lifecycle's JSON shape") from None


def cnb_user(image: Image, where: str) -> tuple[int, int]:
    """``CNB_USER_ID``/``CNB_GROUP_ID`` of a build image, which must also run as a non-root ``User`` (§1.1)."""
    env = image.config.config.env_dict()
    ids = []
    for name in ("CNB_USER_ID", "CNB_GROUP_ID"):
        value = env.get(name, "")
        if not value:
            raise CnbError(f"build image {where} is missing the required env var {name}")
        if not value.isdigit():
            raise CnbError(f"build image {where}: {name}={value!r} is not a number")
        ids.append(int(value))
    user = image.config.config.user.split(":", 1)[0]
    if user in ("", "0", "root"):
        raise CnbError(
            f"build image {where} runs as root (User {image.config.config.user or 'unset'}); it needs a non-root User"
        )
    if ids[0] == 0:
        raise CnbError(f"build image {where}: CNB_USER_ID must not be 0 (root)")
    return ids[0], ids[1]


def _check(config: ModuleConfig, module: Module) -> None:
    for field, expected, actual in (
        ("id", config.id, module.descriptor.id),
        ("version", config.version, module.descriptor.version),
    ):
        if expected and expected != actual:
            raise CnbError(
                f"{config.where}: {config.locator} holds {module.kind} {module.key}, not {field} {expected!r}"
            )


def _collect(
    entries: Sequence[ModuleConfig], base: Path, kind: str, resolver: ModuleResolver, reporter: Reporter
) -> list[Module]:
    """Every module the entries name (a package brings all of its buildpacks); a later ``id@version`` wins."""
    found: dict[str, Module] = {}
    for entry in entries:
        resolved = resolver.resolve(entry.locator, base, kind=kind, image=bool(entry.image))
        _check(entry, resolved.main)
        for module in (resolved.main, *sorted(resolved.dependencies, key=lambda m: m.key)):
            if module.key in found:
                reporter.debug(f"{kind} {module.key} is given twice; using the one from {module.source}")
            found[module.key] = module
            reporter.debug(f"{kind} {module.key} from {module.source}")
    return list(found.values())


def resolve_entry(entry: GroupEntry, modules: Sequence[Module], kind: str, where: str) -> GroupEntry:
    """*entry* with its version filled in from the modules on the builder (pack's ``resolveRef``)."""
    versions = sorted({m.descriptor.version for m in modules if m.descriptor.id == entry.id})
    if not versions:
        raise CnbError(f"{where}: {kind} {entry.id} is not on the builder (add it to [[{kind}s]])")
    if not entry.version:
        if len(versions) > 1:
            raise CnbError(f"{where}: {kind} {entry.id} has versions {', '.join(versions)} on the builder; pick one")
        return replace(entry, version=versions[0])
    if entry.version not in versions:
        raise CnbError(
            f"{where}: {kind} {entry.id}@{entry.version} is not on the builder (it has {', '.join(versions)})"
        )
    return entry


def _resolve_order(
    order: Sequence[OrderGroup], modules: Sequence[Module], kind: str, key: str
) -> tuple[OrderGroup, ...]:
    return tuple(
        OrderGroup(tuple(resolve_entry(e, modules, kind, f"{key}[{i}]") for e in group))
        for i, group in enumerate(order)
    )


def _check_modules(buildpacks: Sequence[Module], image: Image, where: str) -> None:
    """Composite buildpacks find what they refer to; component buildpacks declare a target the build image meets."""
    keys = {m.key for m in buildpacks}
    labels, cfg = image.config.labels, image.config
    distro = (labels.get("io.buildpacks.base.distro.name", ""), labels.get("io.buildpacks.base.distro.version", ""))
    for module in buildpacks:
        for group in getattr(module.descriptor, "order", ()):
            for entry in group:
                if f"{entry.id}@{entry.version}" not in keys:
                    raise CnbError(
                        f"buildpack {module.key} refers to {entry.id}@{entry.version}, which is not on the builder"
                    )
        targets = module.descriptor.targets
        if targets and not any(_meets(t, cfg.os, cfg.architecture, distro) for t in targets):
            wanted = ", ".join("/".join(x for x in (t.os, t.arch, t.variant) if x) or "any" for t in targets)
            have = f"{cfg.os}/{cfg.architecture}" + (f" ({distro[0]} {distro[1]})" if distro[0] else "")
            raise CnbError(f"buildpack {module.key} supports {wanted}, not the build image {where}: {have}")


def _meets(target: Target, os_name: str, arch: str, distro: tuple[str, str]) -> bool:
    """pack's ``EnsureTargetSupport``: os equal; arch empty or equal; distros checked only when the image has one."""
    if (target.os and target.os != os_name) or (target.arch and arch and target.arch != arch):
        return False
    if not target.distros or not distro[0] or not distro[1]:
        return True
    return any(d.name == distro[0] and (not d.version or d.version == distro[1]) for d in target.distros)


def _config_layer_spec(config: BuilderConfig, order: Order, system: SystemConfig) -> LayerSpec:
    run = RunConfig(config.run_images)
    files = {
        "cnb/order.toml": dumps_toml(order.to_dict()),
        "cnb/run.toml": dumps_toml(run.to_dict()),
        "cnb/stack.toml": dumps_toml({"run-image": config.run_images[0].to_dict()}),
    }
    if not system.is_empty:
        files["cnb/system.toml"] = dumps_toml(system.to_dict())
    entries = [Entry.file(path, text.encode()) for path, text in files.items()]
    entries += [Entry.file(f"cnb/build-config/env/{name}", data) for name, data in config.env_files.items()]
    return LayerSpec(entries=tuple(entries), uid=0, gid=0)


def lifecycle_layer_spec(bundle: Path) -> LayerSpec:
    """``/cnb/lifecycle`` from the bundle dir *bundle*, and the ``/lifecycle`` link, all ``0:0``."""
    link = Entry.symlink("lifecycle", "/cnb/lifecycle", uid=0, gid=0)
    return LayerSpec(trees=(TreeSource(bundle, prefix="cnb/lifecycle"),), entries=(link,), uid=0, gid=0)


@dataclass(frozen=True)
class LifecycleLayer:
    """The lifecycle a builder carries: its layer and what it says of itself."""

    layer: Layer
    info: bl.LifecycleInfo
    source: str


def create_builder(
    config: BuilderConfig,
    *,
    resolver: ModuleResolver,
    layer_cache: LayerCache,
    blobs_dir: Path,
    reporter: Reporter,
    lifecycle: LifecycleLayer | None = None,
) -> BuiltImage:
    """The builder image *config* describes, on the build image read through *resolver* (§10.2)."""
    build = resolver.read_image(config.build_image, what="build image")
    uid, gid = cnb_user(build, config.build_image)
    stack_label = build.config.labels.get("io.buildpacks.stack.id", "")
    if config.stack_id and stack_label and stack_label != config.stack_id:
        raise CnbError(
            f"stack {config.stack_id} from builder config is incompatible with stack {stack_label} of the build image"
        )
    buildpacks = _collect(config.buildpacks, config.base_dir, "buildpack", resolver, reporter)
    extensions = _collect(config.extensions, config.base_dir, "extension", resolver, reporter)
    _check_modules(buildpacks, build, config.build_image)
    where = f"{config.path}: " if config.path else ""
    order = Order(
        _resolve_order(config.order, buildpacks, "buildpack", f"{where}order"),
        _resolve_order(config.order_extensions, extensions, "extension", f"{where}order-extensions"),
    )
    system = SystemConfig(
        pre=tuple(resolve_entry(e, buildpacks, "buildpack", f"{where}system.pre") for e in config.system.pre),
        post=tuple(resolve_entry(e, buildpacks, "buildpack", f"{where}system.post") for e in config.system.post),
    )
    dirs = [Entry.directory(d, uid=uid, gid=gid) for d in USER_DIRS] + [Entry.directory(d) for d in ROOT_DIRS]
    layers: list[Layer] = [file_layer(LayerSpec(entries=tuple(dirs)), layer_cache, blobs_dir)]
    history = [History(created=CREATED, created_by="cnb builder create: default directories")]
    if lifecycle is not None:
        reporter.info(f"adding lifecycle {lifecycle.info.version} from {lifecycle.source}")
        layers.append(lifecycle.layer)
        history.append(History(created=CREATED, created_by=f"cnb builder create: lifecycle {lifecycle.info.version}"))
    module_layers: dict[str, bl.ModuleLayers] = {"buildpack": {}, "extension": {}}
    for module in sorted(buildpacks, key=lambda m: m.key) + sorted(extensions, key=lambda m: m.key):
        reporter.info(f"adding {module.kind} {module.key}")
        layer = module_layer(module, layer_cache, blobs_dir)
        layers.append(layer)
        history.append(History(created=CREATED, created_by=f"cnb builder create: {module.kind} {module.key}"))
        info = bl.ModuleLayer.of(module.descriptor, layer.diff_id)
        module_layers[module.kind].setdefault(module.descriptor.id, {})[module.descriptor.version] = info
    layers.append(file_layer(_config_layer_spec(config, order, system), layer_cache, blobs_dir))
    history.append(
        History(created=CREATED, created_by="cnb builder create: order, run, stack, system, build-config env")
    )
    labels = dict(build.config.labels)
    described = lifecycle.info if lifecycle is not None else lifecycle_info()
    labels.update(_labels(config, order, system, buildpacks, extensions, module_layers, described))
    labels[bl.BUILD_IMAGE_LABEL] = canonical_json({"image": config.build_image, "digest": build.descriptor.digest})
    image = append_layers(build, layers, history)
    container = replace(image.config.config, working_dir="/layers", labels=labels)
    return with_config(image, container, created=CREATED)


def _labels(
    config: BuilderConfig,
    order: Order,
    system: SystemConfig,
    buildpacks: Sequence[Module],
    extensions: Sequence[Module],
    module_layers: dict[str, bl.ModuleLayers],
    lifecycle: bl.LifecycleInfo,
) -> dict[str, str]:
    metadata = bl.BuilderMetadata(
        description=config.description,
        buildpacks=tuple(m.descriptor.info for m in buildpacks),
        extensions=tuple(m.descriptor.info for m in extensions),
        run_images=config.run_images,
        lifecycle=lifecycle,
        created_by=CREATED_BY,
    )
    labels = {
        bl.BUILDER_METADATA_LABEL: metadata.to_json(),
        bl.BUILDPACK_LAYERS_LABEL: bl.module_layers_label(module_layers["buildpack"]),
        bl.BUILDPACK_ORDER_LABEL: bl.order_label(order.groups),
    }
    # pack writes both on every builder: {} for no extensions, the order (null when there is none)
    labels[bl.EXTENSION_LAYERS_LABEL] = bl.module_layers_label(module_layers["extension"])
    labels[bl.ORDER_EXTENSIONS_LABEL] = bl.order_label(order.order_extensions) if order.order_extensions else "null"
    if not system.is_empty:
        labels[bl.SYSTEM_LABEL] = bl.system_label(system)
    labels.update(lifecycle_labels(lifecycle))
    return labels
