"""Planning and assembling the app image (docs/spec-notes.md §6.1-§6.7; §16 items 33, 34, 41, 43-46).

:func:`plan_image` decides, before any tar is written, which layers the image gets and in what order (§6.1): run
image layers unchanged, buildpack launch layers (group order, then by name), the SBOM layer, the app slices and the
remainder, the launcher, the config layer, the process types. It also compiles the launcher's environment into
``<layers>/config/launch/`` (so the config layer carries it), and lists the cache-only layers. :meth:`ImagePlan.
assemble` turns the blobs made from that plan into the image: each slot's blob, or the previous image's layer when
the previous metadata recorded the same diffID; the lifecycle metadata label; the config of :mod:`.config`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cnbplatform.errors import CnbError
from cnbplatform.files.analyzed import BuildpackLayers, LayerEntry, RunImageForRebase, RunImageRef
from cnbplatform.files.apis import ApiVersion
from cnbplatform.files.buildpack_toml import escape_id
from cnbplatform.files.labels import LifecycleMetadata
from cnbplatform.files.metadata import BuildMetadata, ProcessEntry
from cnbplatform.launcher import (
    LaunchBuildpack,
    LaunchCompileError,
    LaunchLayer,
    compile_launch_env,
    launch_processes,
    write_launch_env,
)
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.lifecycle.export import config as cfg
from cnbplatform.lifecycle.export.layers import (
    BuildpackDir,
    BuildpackLayer,
    buildpack_layer_spec,
    export_error,
    image_path,
    launcher_spec,
    optional_dir,
    process_types_spec,
    read_buildpack_dir,
    tree_spec,
)
from cnbplatform.lifecycle.export.reuse import PreviousLayers, launch_skeleton
from cnbplatform.oci.image import FileLayer, Layer
from cnbplatform.oci.layers.spec import LayerBlob, LayerSpec
from cnbplatform.oci.model import Descriptor, History, created_time
from cnbplatform.oci.mutate import BuiltImage, append_layers, with_config

if TYPE_CHECKING:
    from cnbplatform.lifecycle.export.phase import ExportInputs


@dataclass(frozen=True)
class LayerJob:
    """A layer to make: its name (``<id>:<layer>``, ``sbom``, ``app slice 1``…) and spec."""

    name: str
    spec: LayerSpec
    cache_only: bool = False


@dataclass(frozen=True)
class ExportedLayer:
    """A layer the export put on top of the run image: whether it came from the previous image."""

    name: str
    diff_id: str
    digest: str
    reused: bool


@dataclass(frozen=True)
class _Slot:
    name: str
    kind: str  # buildpack | sbom | app | launcher | config | process-types
    created_by: str
    recorded: tuple[str | None, ...]  # shas the previous metadata has for this slot
    job: str | None = None  # None: reused from the previous image without local contents
    previous: Layer | None = None
    layer: BuildpackLayer | None = None


@dataclass
class ImagePlan:
    inputs: ExportInputs
    metadata: BuildMetadata
    process: ProcessEntry | None
    static: cfg.StaticProcess | None
    previous: PreviousLayers
    buildpacks: tuple[BuildpackDir, ...]
    reporter: Reporter
    slots: list[_Slot] = field(default_factory=list)
    jobs: list[LayerJob] = field(default_factory=list)
    cache_jobs: list[LayerJob] = field(default_factory=list)
    cache_blob_jobs: dict[str, str] = field(default_factory=dict)  # "<id>:<layer>" -> job making its tar
    sbom_cache_job: str | None = None

    def add(self, slot: _Slot, spec: LayerSpec | None) -> None:
        if spec is not None:
            self.jobs.append(LayerJob(slot.name, spec))
            slot = replace(slot, job=slot.name)
        self.slots.append(slot)

    # -- assembling -------------------------------------------------------------------------------------

    def _layer(self, slot: _Slot, blobs: dict[str, LayerBlob]) -> tuple[Layer, bool]:
        if slot.job is None:
            assert slot.previous is not None
            return slot.previous, True
        blob = blobs[slot.job]
        previous = self.previous.matching(blob.diff_id, slot.recorded)
        if previous is not None:
            return previous, True
        return FileLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, blob.path), False

    def assemble(self, blobs: dict[str, LayerBlob]) -> tuple[BuiltImage, list[ExportedLayer]]:
        inputs, say = self.inputs, self.reporter
        created = created_time(inputs.source_date_epoch)
        with_history = ApiVersion.parse(inputs.platform_api).at_least("0.12")
        layers: list[Layer] = []
        history: list[History] = []
        exported: list[ExportedLayer] = []
        shas: dict[str, list[str]] = {}
        entries: dict[str, dict[str, LayerEntry]] = {}
        for slot in self.slots:
            layer, reused = self._layer(slot, blobs)
            say.info(f"{'Reusing' if reused else 'Adding'} layer '{slot.name}'")
            say.debug(f"Layer '{slot.name}' SHA: {layer.diff_id}")
            layers.append(layer)
            history.append(History(created=created, created_by=slot.created_by if with_history else None))
            exported.append(ExportedLayer(slot.name, layer.diff_id, layer.descriptor.digest, reused))
            shas.setdefault(slot.kind, []).append(layer.diff_id)
            if slot.layer is not None:
                entry = LayerEntry.from_layer_toml(slot.layer.toml, layer.diff_id)
                entries.setdefault(slot.layer.buildpack.id, {})[slot.layer.name] = entry
        app = [(slot, layer) for slot, layer in zip(self.slots, exported, strict=True) if slot.kind == "app"]
        reused_app = sum(layer.reused for _, layer in app)
        if reused_app:
            say.info(f"Reused {reused_app}/{len(app)} app layer(s)")
        if len(app) - reused_app:
            say.info(f"Added {len(app) - reused_app}/{len(app)} app layer(s)")
        label = self._lifecycle_metadata(shas, entries)
        base = inputs.run_image
        image = append_layers(base, layers, history)
        container = base.config.config
        env = cfg.image_env(
            container.env,
            layers_mount=inputs.layers_mount,
            app_mount=inputs.app_mount,
            platform_api=inputs.platform_api,
        )
        entrypoint, command, workdir = cfg.entrypoint_for(self.process), None, inputs.app_mount
        if self.static is not None:
            env, entrypoint, command, workdir = (
                self.static.env,
                self.static.entrypoint,
                self.static.cmd,
                self.static.working_dir,
            )
        labels = cfg.image_labels(
            container.labels,
            lifecycle=label,
            metadata=self.metadata,
            project=inputs.project_metadata,
            launcher=cfg.launcher_info(inputs.launcher_file is not None),
            exec_env=inputs.exec_env,
            platform_api=inputs.platform_api,
            reporter=say,
        )
        config = replace(container, env=env, entrypoint=entrypoint, cmd=command, working_dir=workdir, labels=labels)
        return with_config(image, config, created=created), exported

    def _lifecycle_metadata(
        self, shas: dict[str, list[str]], entries: dict[str, dict[str, LayerEntry]]
    ) -> LifecycleMetadata:
        inputs = self.inputs
        run_ref = cfg.run_image_for_export(inputs.run_config, inputs.analyzed, self.metadata)
        diff_ids = inputs.run_image.config.diff_ids
        with_name = ApiVersion.parse(inputs.platform_api).at_least("0.12")  # below: only the stack key names it
        run_image = RunImageForRebase(
            top_layer=diff_ids[-1] if diff_ids else "",
            reference=inputs.analyzed.run_image_ref,
            image=run_ref.image if with_name else "",
            mirrors=run_ref.mirrors if with_name else (),
        )
        buildpacks = tuple(
            BuildpackLayers(
                key=bp.buildpack.id,
                version=bp.buildpack.version,
                layers=entries.get(bp.buildpack.id, {}),
                store=bp.store,
            )
            for bp in self.buildpacks
        )

        def one(kind: str) -> str | None:
            return shas[kind][0] if kind in shas else None

        return LifecycleMetadata(
            app=tuple(shas.get("app", ())),
            sbom=one("sbom"),
            config=one("config"),
            launcher=one("launcher"),
            process_types=one("process-types"),
            buildpacks=buildpacks,
            run_image=run_image,
            stack=RunImageRef(run_ref.image, run_ref.mirrors) if run_ref.image else None,
        )


# -- planning -----------------------------------------------------------------------------------------------


def _reusable(inputs: ExportInputs, previous: PreviousLayers, layer: BuildpackLayer) -> Layer:
    """The previous image's layer for a ``launch=true`` layer without contents (§6.7; §16 items 43, 44)."""
    if layer.toml.types.cache:
        raise export_error(f"reuse layer '{layer.key}'", "layer is cache=true but has no contents")
    recorded = inputs.analyzed.metadata.for_buildpack(layer.buildpack.id)
    entry = recorded.layers.get(layer.name) if recorded else None
    if entry is None or not entry.sha:
        raise export_error(f"cannot reuse '{layer.key}'", f"previous image has no metadata for layer '{layer.key}'")
    found = previous.get(entry.sha)
    if found is None:
        raise export_error(f"cannot reuse '{layer.key}'", f"previous image has no layer {entry.sha}")
    return found


def _compile(plan: ImagePlan, launch: Sequence[LaunchBuildpack], reporter: Reporter) -> None:
    inputs = plan.inputs
    try:
        files = compile_launch_env(
            launch,
            launch_processes(plan.metadata),
            app_dir=inputs.app_mount,
            layers_dir=inputs.layers_mount,
            platform_api=inputs.platform_api,
            warn=reporter.warn,
        )
        write_launch_env(inputs.layers_dir, files)
    except LaunchCompileError as exc:
        raise export_error("compile the launch environment", exc.message) from exc
    except CnbError as exc:
        raise export_error("write the launch environment", exc.message) from exc


def plan_image(inputs: ExportInputs, metadata: BuildMetadata, scratch: Path, reporter: Reporter) -> ImagePlan:
    """Decide the image's layers (module docstring); reused layers' launch files are read into *scratch*. The order
    of the steps is the order of the layers."""
    _check_analyzed(inputs)
    try:
        previous = PreviousLayers(inputs.previous_image)
    except CnbError as exc:
        raise export_error("read the previous image", exc.message) from exc
    process = cfg.default_process(metadata, inputs.default_process, reporter)
    buildpacks = tuple(read_buildpack_dir(inputs.layers_dir, member) for member in inputs.group.group)
    types_spec = process_types_spec([p.type for p in metadata.processes]) if metadata.processes else None
    plan = ImagePlan(inputs, metadata, process, None, previous, buildpacks, reporter)
    launch = _plan_buildpack_layers(plan, previous, scratch)
    _plan_sbom(plan)
    _plan_app(plan)
    old = inputs.analyzed.metadata
    plan.add(
        _Slot("launcher", "launcher", cfg.LAUNCHER_CREATED_BY, (old.launcher,)), launcher_spec(inputs.launcher_file)
    )
    _compile(plan, launch, reporter)
    _plan_static(plan, launch)
    _plan_config(plan, types_spec)
    if process is not None:
        reporter.info(f"Setting default process type '{process.type}'")
    else:
        reporter.info("No default process type: the entrypoint is the launcher")
    return plan


def _check_analyzed(inputs: ExportInputs) -> None:
    analyzed = inputs.analyzed
    if not analyzed.run_image_ref:
        raise export_error("read analyzed.toml", "it names no run image (run-image.reference)")
    if analyzed.run_image is not None and analyzed.run_image.extend:
        raise export_error("read analyzed.toml", "extended run images (run-image.extend) are not supported")


def _plan_buildpack_layers(plan: ImagePlan, previous: PreviousLayers, scratch: Path) -> list[LaunchBuildpack]:
    """Each buildpack's layers: cache jobs for cached ones, image layers (made, or reused from the previous image
    with their launch files read into *scratch*) for launch ones; what the launcher needs of each buildpack."""
    inputs = plan.inputs
    old = inputs.analyzed.metadata
    uid, gid, mount = inputs.uid, inputs.gid, inputs.layers_mount
    launch: list[LaunchBuildpack] = []
    for bp in plan.buildpacks:
        launch_layers: list[LaunchLayer] = []
        old_bp = old.for_buildpack(bp.buildpack.id)
        for layer in bp.layers:
            if layer.toml.types.cache and layer.dir is not None:
                if layer.toml.types.launch:
                    plan.cache_blob_jobs[layer.key] = layer.key
                else:
                    plan.cache_jobs.append(
                        LayerJob(layer.key, buildpack_layer_spec(layer, mount, uid=uid, gid=gid), True)
                    )
                    plan.cache_blob_jobs[layer.key] = layer.key
            if not layer.toml.types.launch:
                continue
            old_entry = old_bp.layers.get(layer.name) if old_bp else None
            slot = _Slot(layer.key, "buildpack", layer.created_by, (old_entry.sha if old_entry else None,), layer=layer)
            if layer.dir is not None:
                plan.add(slot, buildpack_layer_spec(layer, mount, uid=uid, gid=gid))
                launch_layers.append(LaunchLayer(layer.name, layer.dir))
                continue
            found = _reusable(inputs, previous, layer)
            plan.add(replace(slot, previous=found), None)
            in_image = image_path(mount, escape_id(layer.buildpack.id), layer.name)
            try:
                stand_in = launch_skeleton(found, in_image, scratch / escape_id(layer.buildpack.id) / layer.name)
            except CnbError as exc:
                raise export_error(f"reuse layer '{layer.key}'", exc.message) from exc
            launch_layers.append(LaunchLayer(layer.name, stand_in))
        launch.append(LaunchBuildpack(bp.buildpack.id, tuple(launch_layers)))
    return launch


def _plan_sbom(plan: ImagePlan) -> None:
    """The launch SBOMs as an image layer, the cache SBOMs as a cache layer (Platform 0.8+)."""
    inputs = plan.inputs
    old = inputs.analyzed.metadata
    uid, gid, mount = inputs.uid, inputs.gid, inputs.layers_mount
    sbom_root = optional_dir(inputs.layers_dir / "sbom", "the SBOM dir")  # never through a symlink
    if sbom_root is not None and ApiVersion.parse(inputs.platform_api).at_least("0.8"):
        sbom_launch = optional_dir(inputs.layers_dir / "sbom" / "launch", "the launch SBOMs")
        if sbom_launch is not None:
            spec = tree_spec(sbom_launch, image_path(mount, "sbom", "launch"), uid=uid, gid=gid)
            plan.add(_Slot("sbom", "sbom", cfg.SBOM_CREATED_BY, (old.sbom,)), spec)
        sbom_cache = optional_dir(inputs.layers_dir / "sbom" / "cache", "the cache SBOMs")
        if sbom_cache is not None and inputs.cache is not None:
            spec = tree_spec(sbom_cache, image_path(mount, "sbom", "cache"), uid=uid, gid=gid)
            plan.cache_jobs.append(LayerJob("cache.sbom", spec, True))
            plan.sbom_cache_job = "cache.sbom"


def _plan_app(plan: ImagePlan) -> None:
    """The app dir as one layer, or one layer per slice and the rest."""
    inputs, metadata = plan.inputs, plan.metadata
    old = inputs.analyzed.metadata
    uid, gid = inputs.uid, inputs.gid
    slices = [s.paths for s in metadata.slices]
    if not slices:
        app_specs = [tree_spec(inputs.app_dir, inputs.app_mount, uid=uid, gid=gid)]
    else:
        from cnbplatform.lifecycle.export.slices import app_layer_specs

        try:
            app_specs = app_layer_specs(inputs.app_dir, slices, app_mount=inputs.app_mount, uid=uid, gid=gid)
        except CnbError as exc:
            raise export_error("slice the app dir", exc.message) from exc
    for index, spec in enumerate(app_specs, 1):
        created_by = cfg.SLICE_CREATED_BY.format(index) if slices else cfg.APP_CREATED_BY
        name = f"app slice {index}" if slices else "app"
        plan.add(_Slot(name, "app", created_by, old.app), spec)


def _plan_static(plan: ImagePlan, launch: list[LaunchBuildpack]) -> None:
    """A run image without a shell: the default process's environment baked into the config."""
    inputs, metadata, process, reporter = plan.inputs, plan.metadata, plan.process, plan.reporter
    mount = inputs.layers_mount
    if not inputs.run_image_has_shell:
        api = next((b.api for b in metadata.buildpacks if process and b.id == process.buildpack_id), "")
        plan.static = cfg.static_process(
            process,
            launch,
            inputs.run_image.config.config.env,
            layers_mount=mount,
            app_mount=inputs.app_mount,
            platform_api=inputs.platform_api,
            buildpack_api=api,
            reporter=reporter,
        )


def _plan_config(plan: ImagePlan, types_spec: LayerSpec | None) -> None:
    """The launch config layer, then the process-types layer."""
    inputs = plan.inputs
    old = inputs.analyzed.metadata
    uid, gid, mount = inputs.uid, inputs.gid, inputs.layers_mount
    config_dir = inputs.layers_dir / "config"
    plan.add(
        _Slot("config", "config", cfg.CONFIG_CREATED_BY, (old.config,)),
        tree_spec(config_dir, image_path(mount, "config"), uid=uid, gid=gid),
    )
    if types_spec is not None:
        plan.add(
            _Slot("process-types", "process-types", cfg.PROCESS_TYPES_CREATED_BY, (old.process_types,)), types_spec
        )
