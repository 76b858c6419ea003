"""The export phase (docs/spec-notes.md §2.5, §6, §7.2; §16 items 33-48): the app image, report.toml and the cache.

``export(ExportInputs, reporter) -> ExportResult``:

1. read ``<layers>/config/metadata.toml`` and each group buildpack's layer tomls; check that every ``launch=true``
   layer without contents can be reused from the previous image (:mod:`.reuse`);
2. compile the launcher's per-process environment into ``<layers>/config/launch/`` so it travels in the config
   layer (docs/design.md §3 decision 3);
3. make every layer (:mod:`.layers`, :mod:`.slices`) through the layer cache (on ``parallel`` threads),
   so an unchanged directory costs one stat walk (docs/design.md §3 decision 4);
4. stack them on the run image in the order of §6.1 (:mod:`.image`), replacing each layer whose diffID the
   previous image recorded by the previous image's own layer, with the config and labels of :mod:`.config`;
5. write the same image to every destination, and the cache (:mod:`.cache`) after it, or concurrently when
   ``parallel > 1``; cache failures are warnings;
6. write report.toml.

Failures raise :class:`~cnbplatform.errors.PhaseError` with exit code 62.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.errors import CnbError, PhaseError
from cnbplatform.files.analyzed import Analyzed
from cnbplatform.files.apis import ApiVersion
from cnbplatform.files.build_toml import BuildToml
from cnbplatform.files.buildpack_toml import escape_id
from cnbplatform.files.group import GroupFile
from cnbplatform.files.launch import BomEntry, bom_json
from cnbplatform.files.metadata import BuildMetadata
from cnbplatform.files.report import ProjectMetadata, Report
from cnbplatform.files.run_toml import RunConfig
from cnbplatform.lifecycle.cache.protocol import Cache
from cnbplatform.lifecycle.common import Reporter, check_group_apis, run_concurrently
from cnbplatform.lifecycle.export.cache import CacheOutcome, export_cache
from cnbplatform.lifecycle.export.image import ExportedLayer, ImagePlan, LayerJob, plan_image
from cnbplatform.lifecycle.export.layers import export_error, optional_dir, real_dir
from cnbplatform.oci.image import Image
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import LayerBlob
from cnbplatform.oci.model import Descriptor
from cnbplatform.oci.store.local import LocalStore
from cnbplatform.oci.store.protocol import ImageStore, Progress, WriteResult

__all__ = ["ExportInputs", "ExportResult", "ExportedLayer", "export"]


@dataclass(frozen=True)
class ExportInputs:
    """Everything the exporter needs, resolved by the platform (no environment is read here).

    ``run_image`` is the image at ``analyzed.run_image.reference``; ``previous_image`` the image whose metadata is
    ``analyzed.metadata`` (layers are reused from it by diffID). ``destinations`` are ``(store, ref)`` pairs that
    all receive the same image; ``report_tags`` (default: derived from the stores) name them in report.toml.
    New layer blobs go to ``blobs_dir`` through ``layer_cache``. ``run_image_has_shell=False`` makes the image
    start its default process without the sh launcher (docs/design.md §3 decision 3).
    """

    layers_dir: Path
    app_dir: Path
    group: GroupFile
    analyzed: Analyzed
    run_image: Image
    destinations: Sequence[tuple[ImageStore, str]]
    blobs_dir: Path
    layer_cache: LayerCache
    uid: int
    gid: int
    previous_image: Image | None = None
    layers_mount: str = "/layers"
    app_mount: str = "/workspace"
    platform_api: str = "0.15"
    default_process: str | None = None
    project_metadata: ProjectMetadata | None = None
    run_config: RunConfig | None = None
    launcher_file: Path | None = None
    source_date_epoch: int | None = None
    cache: Cache | None = None
    exec_env: str = "production"
    report_path: Path | None = None
    report_tags: Sequence[str] | None = None
    parallel: int = 1
    run_image_has_shell: bool = True
    progress: Progress | None = None


@dataclass(frozen=True)
class ExportResult:
    """What the export produced: the image, how each destination received it, its layers, the cache outcome."""

    descriptor: Descriptor
    image_id: str  # the config digest
    writes: tuple[tuple[str, WriteResult], ...]  # (tag, result) per destination
    layers: tuple[ExportedLayer, ...]  # the layers added on top of the run image, in order
    report: Report
    cache: CacheOutcome | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def added(self) -> tuple[str, ...]:
        """diffIDs of the layers this export made (not taken from the previous image)."""
        return tuple(layer.diff_id for layer in self.layers if not layer.reused)

    @property
    def reused(self) -> tuple[str, ...]:
        """diffIDs of the layers taken from the previous image."""
        return tuple(layer.diff_id for layer in self.layers if layer.reused)


def export(inputs: ExportInputs, reporter: Reporter) -> ExportResult:
    """Run the export phase (module docstring); raises PhaseError (exit 62) on failure."""
    return _Exporter(inputs, reporter).run()


@contextlib.contextmanager
def _doing(action: str) -> Iterator[None]:
    try:
        yield
    except PhaseError:
        raise
    except CnbError as exc:
        raise export_error(action, exc.message) from exc
    except OSError as exc:
        raise export_error(action, f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")) from exc


def _is_daemon(store: ImageStore) -> bool:
    """Whether *store* is a Docker engine (without importing docker-py when no engine store exists)."""
    module = sys.modules.get("cnbplatform.oci.store.daemon")
    return module is not None and isinstance(store, module.DaemonStore)


def tag_name(store: ImageStore, ref: str) -> str:
    """How report.toml names a destination: the reference for the local store and a Docker engine, else
    ``<store>:<ref>`` (``registry/repo:tag``, ``oci:<dir>:<tag>``)."""
    return ref if isinstance(store, LocalStore) or _is_daemon(store) else f"{store.description}:{ref}"


class _Exporter:
    def __init__(self, inputs: ExportInputs, reporter: Reporter) -> None:
        self.inputs = inputs
        self.reporter = reporter
        self.timings: dict[str, float] = {}

    def run(self) -> ExportResult:
        inputs = self.inputs
        start = time.monotonic()
        if not inputs.destinations:
            raise export_error("export the image", "no destination tag given")
        with _doing("read the platform API version"):
            ApiVersion.parse(inputs.platform_api)
        check_group_apis(inputs.group, "export")
        if not real_dir(inputs.layers_dir) or not real_dir(inputs.app_dir):
            raise export_error("read the layers and app dirs", f"{inputs.layers_dir} and {inputs.app_dir} must be dirs")
        if optional_dir(inputs.layers_dir / "config", "the launcher config dir") is None:
            raise export_error("read metadata.toml", f"{inputs.layers_dir / 'config'} does not exist")
        with _doing("read metadata.toml"):
            metadata = BuildMetadata.load(inputs.layers_dir / "config" / "metadata.toml")
        with tempfile.TemporaryDirectory(prefix="cnb-export-") as scratch:
            plan = plan_image(inputs, metadata, Path(scratch), self.reporter)
        self.timings["prepare"] = time.monotonic() - start
        blobs = self._make_layers(plan)
        image, layers = plan.assemble(blobs)
        self.timings["layers"] = time.monotonic() - start - self.timings["prepare"]
        writes, cache_outcome = self._write(image, plan, blobs)
        report = self._report(image.descriptor, image.raw_manifest, image.manifest.config.digest)
        self.timings["total"] = time.monotonic() - start
        self.reporter.info(f"*** Digest: {image.descriptor.digest}")
        return ExportResult(
            descriptor=image.descriptor,
            image_id=image.manifest.config.digest,
            writes=tuple(writes),
            layers=tuple(layers),
            report=report,
            cache=cache_outcome,
            timings=dict(self.timings),
        )

    # -- layers -----------------------------------------------------------------------------------------

    def _create(self, job: LayerJob) -> LayerBlob:
        result = self.inputs.layer_cache.create(job.spec, self.inputs.blobs_dir)
        self.reporter.debug(f"Layer {job.name}: {result.outcome} ({result.blob.diff_id})")
        return result.blob

    def _make_layers(self, plan: ImagePlan) -> dict[str, LayerBlob]:
        """Every layer's blob by job name; image layers must succeed, cache-only ones may fail with a warning."""
        blobs: dict[str, LayerBlob] = {}
        jobs = [*plan.jobs, *plan.cache_jobs]
        outcomes = run_concurrently(
            [functools.partial(self._create, job) for job in jobs], self.inputs.parallel, name="cnb-export-layer"
        )
        failure: PhaseError | None = None
        for job, (blob, exc) in zip(jobs, outcomes, strict=True):
            if isinstance(exc, CnbError | OSError):
                reason = exc.message if isinstance(exc, CnbError) else (exc.strerror or str(exc))
                if job.cache_only:
                    self.reporter.warn(f"Failed to create the cache layer {job.name}: {reason}")
                elif failure is None:
                    failure = export_error(f"create layer {job.name}", reason)
            elif exc is not None:
                raise exc
            else:
                assert blob is not None
                blobs[job.name] = blob
        if failure is not None:
            raise failure
        return blobs

    # -- writing ----------------------------------------------------------------------------------------

    def _write_image(self, image: Image) -> list[tuple[str, WriteResult]]:
        inputs = self.inputs
        tags = list(inputs.report_tags or [tag_name(store, ref) for store, ref in inputs.destinations])
        if len(tags) != len(inputs.destinations):
            raise export_error("write the image", "report_tags must name every destination")
        writes: list[tuple[str, WriteResult]] = []
        for (store, ref), tag in zip(inputs.destinations, tags, strict=True):
            self.reporter.info(f"Saving {tag}...")
            with _doing(f"save image {tag}"):
                result = store.write(image, ref, inputs.progress)
            self.reporter.debug(f"{tag}: {len(result.written)} written, {len(result.existing)} present")
            writes.append((tag, result))
        return writes

    def _write(
        self, image: Image, plan: ImagePlan, blobs: dict[str, LayerBlob]
    ) -> tuple[list[tuple[str, WriteResult]], CacheOutcome | None]:
        cache = self.inputs.cache
        started = time.monotonic()
        if cache is None:
            self.reporter.debug("No cache given: the cache is not written")
            writes = self._write_image(image)
            self.timings["image"] = time.monotonic() - started
            return writes, None
        outcome: list[CacheOutcome] = []
        image_done = threading.Event()
        image_ok = [False]

        def write_cache() -> None:
            cache_started = time.monotonic()

            def image_written() -> bool:
                image_done.wait()
                return image_ok[0]

            outcome.append(
                export_cache(
                    cache,
                    plan.buildpacks,
                    {name: blobs[job] for name, job in plan.cache_blob_jobs.items() if job in blobs},
                    blobs.get(plan.sbom_cache_job) if plan.sbom_cache_job else None,
                    image_written=image_written,
                    reporter=self.reporter,
                )
            )
            self.timings["cache"] = time.monotonic() - cache_started

        worker = threading.Thread(target=write_cache, name="cnb-export-cache") if self.inputs.parallel > 1 else None
        if worker is not None:
            worker.start()
        try:
            writes = self._write_image(image)
            image_ok[0] = True
        finally:
            image_done.set()
            self.timings["image"] = time.monotonic() - started
            if worker is not None:
                worker.join()
        if worker is None:
            write_cache()
        return writes, outcome[0] if outcome else None

    # -- report.toml ------------------------------------------------------------------------------------

    def _build_bom(self) -> tuple[dict[str, Any], ...]:
        """Platform API < 0.9: the ``[[bom]]`` entries of every buildpack's build.toml, for ``[build] bom``."""
        inputs = self.inputs
        if ApiVersion.parse(inputs.platform_api).at_least("0.9"):
            return ()
        entries: list[tuple[str, str, BomEntry]] = []
        for member in inputs.group.group:
            path = inputs.layers_dir / escape_id(member.id) / "build.toml"
            with _doing(f"read {path}"):
                if path.is_file():
                    entries.extend((member.id, member.version, e) for e in BuildToml.load(path).bom)
        return tuple(bom_json(entries))

    def _report(self, descriptor: Descriptor, raw_manifest: bytes, config_digest: str) -> Report:
        inputs = self.inputs
        tags = tuple(inputs.report_tags or [tag_name(store, ref) for store, ref in inputs.destinations])
        daemon = any(_is_daemon(store) for store, _ in inputs.destinations)
        registry = any(not _is_daemon(store) for store, _ in inputs.destinations)
        report = Report(
            tags=tags,
            digest=descriptor.digest if registry else "",
            manifest_size=len(raw_manifest) if registry else 0,
            image_id=config_digest if daemon else "",
            build_bom=self._build_bom(),
        )
        if inputs.report_path is not None:
            with _doing(f"write {inputs.report_path}"):
                report.dump(inputs.report_path)
        return report
