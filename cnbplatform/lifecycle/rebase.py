"""The rebase phase (docs/spec-notes.md §2.7, §8; §16 items 57-60): put an app image on a new run image.

``rebase(RebaseInputs, reporter) -> RebaseResult``:

1. decode the app image's ``io.buildpacks.lifecycle.metadata`` label (an image without it was not built by
   buildpacks and is refused);
2. check (§8 step 3) that the app may be rebased onto the new run image: for an app built with Platform API
   ≥ 0.12 ``io.buildpacks.rebasable`` is not ``"false"``, ``os``/``architecture``/``variant`` agree and the
   distro labels agree; for an older app the stack id and mixins; and (§8 step 5) that the new run image is the
   one the app was built for or one of its mirrors. Each check can be overridden with ``force`` (a warning);
3. swap the layers with :func:`cnbplatform.oci.mutate.rebase` (the app's layers stay the same Layer objects, so a
   registry keeps their blobs where they are: docs/design.md §3 decision 6);
4. update ``runImage.topLayer``/``reference`` (and the names, when forced past the name check) and replace the
   ``io.buildpacks.stack.*`` / ``io.buildpacks.base.*`` labels with the new run image's (§8 steps 5-6);
5. write the image to every destination and write report.toml (§8 step 7).

Failures raise :class:`~cnbplatform.errors.PhaseError` with exit code 72.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from cnbplatform.errors import CnbError, PhaseError
from cnbplatform.files.apis import ApiVersion, ApiVersionError
from cnbplatform.files.common import SpecFileError
from cnbplatform.files.layers_metadata import RunImageForRebase, RunImageRef
from cnbplatform.files.lifecycle_label import (
    BASE_DISTRO_NAME_LABEL,
    BASE_DISTRO_VERSION_LABEL,
    BASE_LABEL_PREFIX,
    LIFECYCLE_METADATA_LABEL,
    REBASABLE_LABEL,
    STACK_ID_LABEL,
    STACK_LABEL_PREFIX,
    STACK_MIXINS_LABEL,
    LifecycleMetadata,
)
from cnbplatform.files.report import Report
from cnbplatform.lifecycle.common import EXIT_REBASE, Reporter
from cnbplatform.lifecycle.run_image import first_readable
from cnbplatform.oci.address import image_name
from cnbplatform.oci.image import Image
from cnbplatform.oci.model import NORMALIZED_CREATED, Descriptor
from cnbplatform.oci.mutate import RebaseError
from cnbplatform.oci.mutate import rebase as rebase_layers
from cnbplatform.oci.store.local import LocalStore
from cnbplatform.oci.store.protocol import ImageStore, Progress, WriteResult

__all__ = [
    "RebaseInputs",
    "RebaseResult",
    "app_metadata",
    "choose_run_image",
    "rebase",
]


def _fail(action: str, reason: str = "") -> PhaseError:
    return PhaseError("rebase", EXIT_REBASE, action, reason)


@dataclass(frozen=True)
class RebaseInputs:
    """Everything the rebaser needs, resolved by the platform (no environment is read here).

    ``app_image`` is the image read (``-previous-image`` or the first tag, §8 step 1); ``new_run_image`` the run
    image to put under it, found under ``new_run_image_name`` and recorded as ``new_run_image_reference``.
    ``destinations`` are ``(store, ref)`` pairs that all receive the rebased image; ``report_tags`` name them in
    report.toml (default: derived from the stores). ``old_base_diff_ids``, when the old run image is at hand,
    lets the whole old base be checked as a prefix of the app's layers.
    """

    app_image: Image
    app_name: str
    new_run_image: Image
    new_run_image_name: str
    new_run_image_reference: str
    destinations: Sequence[tuple[ImageStore, str]]
    report_tags: Sequence[str] | None = None
    force: bool = False
    platform_api: str = "0.15"
    created: str = NORMALIZED_CREATED
    old_base_diff_ids: Sequence[str] | None = None
    report_path: Path | None = None
    progress: Progress | None = None


@dataclass(frozen=True)
class RebaseResult:
    """The rebased image, how each destination received it, and what was kept and replaced."""

    descriptor: Descriptor
    image_id: str  # the config digest
    writes: tuple[tuple[str, WriteResult], ...]
    report: Report
    metadata: LifecycleMetadata
    kept: tuple[str, ...]  # diffIDs of the app's layers above the base, unchanged
    base: tuple[str, ...]  # diffIDs of the new base layers
    forced: tuple[str, ...]  # the checks --force overrode


# -- helpers the platform uses before the phase ------------------------------------------------------------


def app_metadata(app: Image, name: str) -> LifecycleMetadata:
    """The app's lifecycle metadata label (§8 step 2); an image without one was not built by buildpacks."""
    try:
        labels = app.config.labels
    except CnbError as exc:
        raise _fail(f"read the config of {name}", exc.message) from exc
    text = labels.get(LIFECYCLE_METADATA_LABEL)
    if not text:
        raise _fail(
            f"read {name}",
            f"not an image built by buildpacks (it has no {LIFECYCLE_METADATA_LABEL} label); nothing to rebase",
        )
    try:
        return LifecycleMetadata.from_json_strict(text)
    except SpecFileError as exc:
        raise _fail(f"decode the {LIFECYCLE_METADATA_LABEL} label of {name}", exc.message) from exc


def recorded_run_image(metadata: LifecycleMetadata) -> RunImageRef:
    """``runImage.image``/``mirrors``, else (labels older than Platform 0.12) ``stack.runImage``."""
    if metadata.run_image.image:
        return RunImageRef(metadata.run_image.image, metadata.run_image.mirrors)
    return metadata.stack or RunImageRef()


def choose_run_image(metadata: LifecycleMetadata, app_registry: str, readable: Callable[[str], bool]) -> str:
    """The run image named by the label (§8 step 2): of the image and its mirrors, the first readable one on the
    app's registry, else the first readable one."""
    recorded = recorded_run_image(metadata)
    if not recorded.image:
        raise _fail("resolve the run image", "--run-image is required when there is no run image metadata")
    candidates = list(dict.fromkeys([recorded.image, *recorded.mirrors]))
    chosen = first_readable(candidates, app_registry, readable)
    if chosen is not None:
        return chosen
    raise _fail("resolve the run image", f"none of {', '.join(candidates)} is readable")


# -- the checks (§8 steps 3 and 5) -------------------------------------------------------------------------


def _app_api(app: Image) -> ApiVersion | None:
    value = app.config.config.env_dict().get("CNB_PLATFORM_API", "")
    try:
        return ApiVersion.parse(value) if value.strip() else None
    except ApiVersionError:
        return None


def _mixins(labels: dict[str, str]) -> set[str]:
    try:
        value = json.loads(labels.get(STACK_MIXINS_LABEL) or "[]")
    except json.JSONDecodeError:
        return set()
    if not isinstance(value, list):
        return set()
    return {str(m).removeprefix("build:").removeprefix("run:") for m in value}


def compatibility_problems(app: Image, new: Image) -> list[tuple[str, str]]:
    """What stands against putting *app* on *new*, as ``(check, reason)`` pairs (§8 step 3; §16 items 57, 58)."""
    problems: list[tuple[str, str]] = []
    app_labels, new_labels = app.config.labels, new.config.labels
    api = _app_api(app)
    if api is None or api.less_than("0.12"):
        app_stack, new_stack = app_labels.get(STACK_ID_LABEL, ""), new_labels.get(STACK_ID_LABEL, "")
        if not app_stack or not new_stack or app_stack != new_stack:
            problems.append(("stack", f"stack ids differ: app {app_stack or 'none'}, run image {new_stack or 'none'}"))
        missing = _mixins(app_labels) - _mixins(new_labels)
        if missing:
            problems.append(("mixins", f"the run image lacks the app's mixins {', '.join(sorted(missing))}"))
        return problems
    if app_labels.get(REBASABLE_LABEL) == "false":
        problems.append(("rebasable", f"the app image is marked {REBASABLE_LABEL}=false"))
    have, want = new.config, app.config
    if have.os != want.os or have.architecture != want.architecture:
        problems.append(
            ("target", f"the run image is {have.os}/{have.architecture}, the app is {want.os}/{want.architecture}")
        )
    elif (have.variant or "") != (want.variant or ""):
        # the spec's "variant (if specified)" must match the old run image: one side without a variant is a
        # difference too (https://github.com/buildpacks/spec/blob/main/platform.md#rebaser)
        problems.append(
            (
                "target",
                f"the run image's variant is {have.variant or 'none'}, the app's is {want.variant or 'none'}",
            )
        )
    new_distro = (new_labels.get(BASE_DISTRO_NAME_LABEL, ""), new_labels.get(BASE_DISTRO_VERSION_LABEL, ""))
    app_distro = (app_labels.get(BASE_DISTRO_NAME_LABEL, ""), app_labels.get(BASE_DISTRO_VERSION_LABEL, ""))
    if any(new_distro) and new_distro != app_distro:
        problems.append(
            (
                "distro",
                f"the run image's distro is {' '.join(new_distro)}, the app's is {' '.join(app_distro) or 'none'}",
            )
        )
    return problems


def _recorded_names(metadata: LifecycleMetadata) -> list[str]:
    names = [metadata.run_image.image, *metadata.run_image.mirrors]
    if metadata.stack is not None:
        names += [metadata.stack.image, *metadata.stack.mirrors]
    return [n for n in names if n]


# -- the phase ---------------------------------------------------------------------------------------------


def _is_daemon(store: ImageStore) -> bool:
    module = sys.modules.get("cnbplatform.oci.store.daemon")
    return module is not None and isinstance(store, module.DaemonStore)


def tag_name(store: ImageStore, ref: str) -> str:
    """How report.toml names a destination (as the exporter does)."""
    return ref if isinstance(store, LocalStore) or _is_daemon(store) else f"{store.description}:{ref}"


def _labels(app_labels: dict[str, str], new_labels: dict[str, str], platform_api: ApiVersion) -> dict[str, str]:
    """§8 step 6: the run-image labels (stack.*, and base.* from Platform 0.12) become the new run image's."""
    prefixes = (STACK_LABEL_PREFIX, BASE_LABEL_PREFIX) if platform_api.at_least("0.12") else (STACK_LABEL_PREFIX,)
    labels = {k: v for k, v in app_labels.items() if not k.startswith(prefixes)}
    labels.update({k: v for k, v in new_labels.items() if k.startswith(prefixes)})
    return labels


def rebase(inputs: RebaseInputs, reporter: Reporter) -> RebaseResult:
    """Run the rebase phase (module docstring); raises PhaseError (exit 72) on failure."""
    if not inputs.destinations:
        raise _fail("save the image", "no destination tag given")
    api = _platform_api(inputs)
    metadata = app_metadata(inputs.app_image, inputs.app_name)
    checks = _Checks(inputs, reporter)
    checks.compatibility()
    run_image, stack = checks.run_image_name(metadata, api)
    updated = _updated_metadata(inputs, metadata, run_image, stack)
    image = _swap(inputs, metadata, updated, api)
    new_diff_ids = inputs.new_run_image.config.diff_ids
    kept = image.config.diff_ids[len(new_diff_ids) :]
    reporter.info(f"Rebasing {inputs.app_name} on run image {inputs.new_run_image_name}")
    reporter.debug(
        f"{len(kept)} app layers kept, {len(new_diff_ids)} base layers from {inputs.new_run_image_reference}"
    )
    writes = _write(inputs, image, reporter)
    report = _report(inputs, image.descriptor, image.raw_manifest, image.manifest.config.digest)
    reporter.info(f"*** Digest: {image.descriptor.digest}")
    return RebaseResult(
        descriptor=image.descriptor,
        image_id=image.manifest.config.digest,
        writes=tuple(writes),
        report=report,
        metadata=updated,
        kept=tuple(kept),
        base=tuple(new_diff_ids),
        forced=tuple(checks.forced),
    )


def _platform_api(inputs: RebaseInputs) -> ApiVersion:
    try:
        return ApiVersion.parse(inputs.platform_api)
    except ApiVersionError as exc:
        raise _fail("read the platform API version", exc.message) from exc


class _Checks:
    """The checks of §8 steps 3 and 5: each problem fails the rebase, or with ``--force`` is a warning and
    recorded in ``forced``."""

    def __init__(self, inputs: RebaseInputs, reporter: Reporter) -> None:
        self.inputs, self.reporter = inputs, reporter
        self.forced: list[str] = []

    def problem(self, check: str, reason: str) -> None:
        if not self.inputs.force:
            raise _fail(f"check {check}", f"{reason} (use --force to rebase anyway)")
        self.reporter.warn(f"{reason}; rebasing anyway (--force)")
        self.forced.append(check)

    def compatibility(self) -> None:
        try:
            for check, reason in compatibility_problems(self.inputs.app_image, self.inputs.new_run_image):
                self.problem(check, reason)
        except CnbError as exc:
            if isinstance(exc, PhaseError):
                raise
            raise _fail("read the image configs", exc.message) from exc

    def run_image_name(
        self, metadata: LifecycleMetadata, api: ApiVersion
    ) -> tuple[RunImageForRebase, RunImageRef | None]:
        """The run image and stack to record: the app's, or (Platform 0.12+) the new name when the app recorded
        another one (a problem) or none."""
        inputs = self.inputs
        recorded = _recorded_names(metadata)
        run_image, stack = metadata.run_image, metadata.stack
        if api.at_least("0.12") and image_name(inputs.new_run_image_name) not in {image_name(n) for n in recorded}:
            if recorded:
                self.problem(
                    "the run image name",
                    f"{inputs.new_run_image_name} is not the run image the app was built for nor one of its mirrors "
                    f"({', '.join(dict.fromkeys(recorded))})",
                )
            else:
                self.reporter.debug(f"the app records no run image name; recording {inputs.new_run_image_name}")
            run_image = replace(run_image, image=inputs.new_run_image_name, mirrors=())
            if stack is not None:
                stack = RunImageRef(inputs.new_run_image_name, ())
        return run_image, stack


def _updated_metadata(
    inputs: RebaseInputs, metadata: LifecycleMetadata, run_image: RunImageForRebase, stack: RunImageRef | None
) -> LifecycleMetadata:
    """The app's lifecycle metadata pointing at the new run image (its top layer and reference)."""
    new_diff_ids = inputs.new_run_image.config.diff_ids
    if not new_diff_ids:
        raise _fail("read the new run image", f"{inputs.new_run_image_name} has no layers")
    return replace(
        metadata,
        run_image=RunImageForRebase(
            top_layer=new_diff_ids[-1],
            reference=inputs.new_run_image_reference,
            image=run_image.image,
            mirrors=run_image.mirrors,
        ),
        stack=stack,
    )


def _swap(inputs: RebaseInputs, metadata: LifecycleMetadata, updated: LifecycleMetadata, api: ApiVersion) -> Image:
    """The app's layers on the new run image, with the labels of §8 step 6."""
    app, new = inputs.app_image, inputs.new_run_image
    labels = _labels(app.config.labels, new.config.labels, api)
    labels[LIFECYCLE_METADATA_LABEL] = updated.to_json()
    container = replace(app.config.config, labels=labels)
    try:
        return rebase_layers(
            app,
            metadata.run_image.top_layer,
            new,
            old_base_diff_ids=inputs.old_base_diff_ids,
            created=inputs.created,
            config=container,
        )
    except RebaseError as exc:
        raise _fail(f"swap the run image of {inputs.app_name}", exc.message) from exc
    except CnbError as exc:
        raise _fail(f"read the layers of {inputs.app_name}", exc.message) from exc


def _tags(inputs: RebaseInputs) -> list[str]:
    tags = list(inputs.report_tags or [tag_name(store, ref) for store, ref in inputs.destinations])
    if len(tags) != len(inputs.destinations):
        raise _fail("save the image", "report_tags must name every destination")
    return tags


def _write(inputs: RebaseInputs, image: Image, reporter: Reporter) -> list[tuple[str, WriteResult]]:
    writes: list[tuple[str, WriteResult]] = []
    for (store, ref), tag in zip(inputs.destinations, _tags(inputs), strict=True):
        reporter.info(f"Saving {tag}...")
        try:
            result = store.write(image, ref, inputs.progress)
        except CnbError as exc:
            raise _fail(f"save image {tag}", exc.message) from exc
        except OSError as exc:
            raise _fail(f"save image {tag}", exc.strerror or str(exc)) from exc
        reporter.debug(
            f"{tag}: {len(result.written)} written, {len(result.mounted)} mounted, {len(result.existing)} present"
        )
        writes.append((tag, result))
    return writes


def _report(inputs: RebaseInputs, descriptor: Descriptor, raw_manifest: bytes, config_digest: str) -> Report:
    daemon = any(_is_daemon(store) for store, _ in inputs.destinations)
    other = any(not _is_daemon(store) for store, _ in inputs.destinations)
    report = Report(
        tags=tuple(_tags(inputs)),
        digest=descriptor.digest if other else "",
        manifest_size=len(raw_manifest) if other else 0,
        image_id=config_digest if daemon else "",
    )
    if inputs.report_path is not None:
        try:
            report.dump(inputs.report_path)
        except (CnbError, OSError) as exc:
            reason = exc.message if isinstance(exc, CnbError) else (exc.strerror or str(exc))
            raise _fail(f"write {inputs.report_path}", reason) from exc
    return report
