"""The analyze phase (docs/spec-notes.md §2.1, §5.1): record the previous image and the run image in analyzed.toml.

The platform resolves and opens the images (registry, layout or daemon) and passes them in; this phase

* decodes the previous image's ``io.buildpacks.lifecycle.metadata`` label into ``[metadata]`` (a missing or
  undecodable label is empty metadata) and records its identifier in ``[image] reference`` (``""`` if none);
* records the run image's identifier and, from Platform API 0.12 on, its name as selected and
  ``[run-image.target]`` from its config (os, arch, variant) and labels (``io.buildpacks.base.distro.name/version``,
  ``io.buildpacks.base.id``); a run image without an OS is then an error, and one without distro labels gets
  its distro from its own ``os-release`` (https://github.com/buildpacks/spec/blob/main/platform.md#analyzedtoml-toml:
  "if target distribution data is missing, it will be inferred from /etc/os-release"). Below 0.12
  ``[run-image]`` holds only ``reference``, as the spec of those versions and the Go lifecycle write it;
* unless skip-layers (Platform ≥ 0.8), extracts the previous image's SBOM layer (``sbom.sha``), whose entries
  are ``<layers mount>/sbom/…``, into the host layers directory so ``<layers>/sbom/launch/…`` is back for the
  restorer (§7.3 step 5); a previous image that lacks that layer, or whose layer is corrupt, fails the phase
  (as LC does: continuing would silently drop SBOMs of reused layers).

:func:`select_run_image` implements §2.1 step 2. Failures raise :class:`PhaseError` with exit code 32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.errors import CnbError, PhaseError
from cnbplatform.files.analyzed import Analyzed, ImageIdentifier, LayersMetadata, RunImageInfo, TargetInfo
from cnbplatform.files.apis import ApiVersion
from cnbplatform.files.labels import (
    BASE_DISTRO_NAME_LABEL,
    BASE_DISTRO_VERSION_LABEL,
    BASE_ID_LABEL,
    LIFECYCLE_METADATA_LABEL,
    LifecycleMetadata,
)
from cnbplatform.lifecycle.cache.protocol import READ_ERRORS, extract_layer, tar_opener
from cnbplatform.lifecycle.common import EXIT_ANALYZE, Reporter
from cnbplatform.lifecycle.run_image import first_readable
from cnbplatform.oci.image import Image
from cnbplatform.oci.model import ImageConfig
from cnbplatform.oci.reference import normal_registry


@dataclass(frozen=True)
class AnalyzeInputs:
    """What the analyzer needs, already resolved by the platform.

    ``previous_reference`` is the identifier to record for *previous_image* (registry digest reference, layout
    ``path@digest`` or daemon image ID); ``run_image_name`` is the run image as selected (``[run-image] image``)
    and ``run_image_reference`` its identifier. ``layers_mount`` is the layers directory's path inside the build
    container, which the SBOM layer's entries start with.
    """

    previous_image: Image | None
    previous_reference: str
    run_image: Image
    run_image_name: str
    run_image_reference: str
    layers_dir: Path
    analyzed_path: Path
    skip_layers: bool = False
    layers_mount: str = "/layers"
    platform_api: str = "0.15"


def _fail(action: str, reason: str = "") -> PhaseError:
    return PhaseError("analyze", EXIT_ANALYZE, action, reason)


def _config(image: Image, what: str) -> ImageConfig:
    try:
        return image.config
    except CnbError as exc:
        raise _fail(f"read {what} config", exc.message) from exc


def previous_metadata(image: Image | None, reporter: Reporter) -> LayersMetadata:
    """The lifecycle metadata label of the previous image; absent or undecodable is empty (§2.1 step 3)."""
    if image is None:
        return LayersMetadata()
    label = _config(image, "previous image").labels.get(LIFECYCLE_METADATA_LABEL)
    if not label:
        return LayersMetadata()
    try:
        return LifecycleMetadata.from_json_strict(label).to_layers_metadata()
    except CnbError as exc:
        reporter.debug(f"ignoring the previous image's undecodable metadata label: {exc.message}")
        return LayersMetadata()


def run_image_target(image: Image, reporter: Reporter | None = None) -> TargetInfo:
    """``[run-image.target]`` from the run image's config and ``io.buildpacks.base.*`` labels (§2.1 step 5); a
    Linux image without distro labels gets ``ID``/``VERSION_ID`` of its own ``os-release``."""
    config = _config(image, "run image")
    if not config.os:
        raise _fail("read run image target", "the run image config has no os")
    labels = config.labels
    name = labels.get(BASE_DISTRO_NAME_LABEL, "")
    version = labels.get(BASE_DISTRO_VERSION_LABEL, "")
    if config.os == "linux" and BASE_DISTRO_NAME_LABEL not in labels and BASE_DISTRO_VERSION_LABEL not in labels:
        from cnbplatform.sbom.ospkgs import scan_distro  # only for images without distro labels

        try:
            distro = scan_distro(image)
        except CnbError as exc:  # a hint for target matching, not worth failing the build over
            distro = None
            if reporter is not None:
                reporter.warn(f"could not read the run image's os-release for its distro: {exc.message}")
        if distro is not None:
            name, version = distro.id, distro.version_id
            if reporter is not None:
                reporter.debug(f"run image distro from its os-release: {name} {version}".rstrip())
    return TargetInfo(
        os=config.os,
        arch=config.architecture,
        arch_variant=config.variant or "",
        distro_name=name,
        distro_version=version,
        id=labels.get(BASE_ID_LABEL, ""),
    )


def restore_sbom_layer(image: Image, sha: str, inputs: AnalyzeInputs, reporter: Reporter) -> None:
    """Extract the previous image's SBOM layer *sha* into the layers directory (§2.1 step 4)."""
    action = f"restore SBOM layer {sha} of the previous image"
    try:
        layer = next((layer for layer in image.layers() if layer.diff_id == sha), None)
    except CnbError as exc:
        raise _fail(action, exc.message) from exc
    if layer is None:
        raise _fail(action, "the previous image has no such layer")
    reporter.info("Restoring data for SBOM from previous image")
    try:
        extract_layer(tar_opener(layer), inputs.layers_dir, layers_mount=inputs.layers_mount, what=f"layer {sha}")
    except READ_ERRORS as exc:
        raise _fail(action, exc.message if isinstance(exc, CnbError) else str(exc)) from exc


def analyze(inputs: AnalyzeInputs, reporter: Reporter) -> Analyzed:
    """Run the analyze phase (module docstring): write and return analyzed.toml."""
    metadata = previous_metadata(inputs.previous_image, reporter)
    api = ApiVersion.parse(inputs.platform_api)
    if api.at_least("0.12"):
        run_image = RunImageInfo(
            reference=inputs.run_image_reference,
            image=inputs.run_image_name,
            target=run_image_target(inputs.run_image, reporter),
        )
    else:
        run_image = RunImageInfo(reference=inputs.run_image_reference)
    analyzed = Analyzed(
        previous_image=ImageIdentifier(inputs.previous_reference if inputs.previous_image is not None else ""),
        run_image=run_image,
        metadata=metadata,
    )
    sbom_wanted = not inputs.skip_layers and api.at_least("0.8")
    if inputs.previous_image is not None and metadata.sbom and sbom_wanted:
        restore_sbom_layer(inputs.previous_image, metadata.sbom, inputs, reporter)
    try:
        analyzed.dump(inputs.analyzed_path)
    except (CnbError, OSError) as exc:
        reason = exc.message if isinstance(exc, CnbError) else (exc.strerror or str(exc))
        raise _fail(f"write {inputs.analyzed_path}", reason) from exc
    return analyzed


def select_run_image(
    images: Sequence[tuple[str, Sequence[str]]], output_registry: str, readable: Callable[[str], bool]
) -> str:
    """The run image to use when none was given (§2.1 step 2): of run.toml's first image and its mirrors, the
    first readable one on *output_registry* (the output image's registry), else the first readable one."""
    if not images or not images[0][0]:
        raise _fail("resolve run image", "-run-image is required when there is no run image metadata available")
    image, mirrors = images[0]
    candidates = [image, *mirrors]
    chosen = first_readable(candidates, normal_registry(output_registry), readable)
    if chosen is not None:
        return chosen
    raise _fail("resolve run image", f"none of {', '.join(candidates)} is readable")
