"""One image's software, merged from every source (docs/design.md §3 decision 9; docs/spec-notes.md §3.7, §6.4, §6.5).

Sources: the buildpacks' SBOMs in the SBOM layer (``launch/<bp>/[<layer>/]sbom.<ext>``, CycloneDX, SPDX and Syft),
the OS packages in the image's own package databases, and the image's labels (run image, buildpacks, versions).
The result is a tree: the image (root) -> the run image (its OS and OS packages) and each buildpack (the
packages its SBOMs list). Components are de-duplicated by purl (else by kind, name and version): one component
found by several sources appears once, with every file it was found in, and is a member of each source's group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from cnbplatform.errors import CnbError
from cnbplatform.files.labels import BUILD_METADATA_LABEL, BuildMetadataLabel, LifecycleMetadata
from cnbplatform.oci.digest import is_digest
from cnbplatform.oci.image import Image
from cnbplatform.oci.reference import has_registry_host, parse_reference
from cnbplatform.sbom.collect import SBOM_MEDIA_TYPES, SbomFile, lifecycle_metadata, read_sbom_files
from cnbplatform.sbom.inputs import make_component, read_legacy_bom, read_sbom
from cnbplatform.sbom.model import (
    BuildpackInfo,
    Component,
    Distro,
    Group,
    Inventory,
    Kind,
    RunImageInfo,
    Subject,
    plain_ref,
)
from cnbplatform.sbom.ospkgs import OsInventory, lifecycle_layers, scan_os_packages
from cnbplatform.sbom.pkgdb import OsPackage

LIFECYCLE_DIR = "buildpacksio_lifecycle"  # §3.7: the launcher's own SBOM
_ADDRESS_PREFIXES = ("local:", "docker-daemon:", "docker://", "registry:")


def oci_purl(name: str, digest: str, *, arch: str = "") -> str | None:
    """``pkg:oci/<repo>@<digest>`` (with ``repository_url`` when *name* names a registry), or ``None``."""
    if not is_digest(digest):
        return None
    from packageurl import PackageURL

    text = name
    for prefix in _ADDRESS_PREFIXES:
        text = text.removeprefix(prefix)
    qualifiers: dict[str, str] = {"arch": arch} if arch else {}
    if text.startswith("oci:"):
        base = text[4:].rsplit("@", 1)[0].rstrip(":").rsplit("/", 1)[-1]
    else:
        try:
            ref = parse_reference(text)
        except CnbError:
            return None
        base = ref.repository.rsplit("/", 1)[-1]
        if has_registry_host(text):
            qualifiers["repository_url"] = ref.name
        if ref.tag:
            qualifiers["tag"] = ref.tag
    base = "".join(c if c.isalnum() or c in "._-" else "-" for c in base.split(":", 1)[0].lower()) or "image"
    return str(PackageURL(type="oci", name=base, version=digest, qualifiers=qualifiers).to_string())


def _readable(identifier: str) -> str:
    """A run image identifier without its store prefix where that is unambiguous (``local:docker.io/library/x``
    -> ``x``); registry and layout identifiers stay as they are."""
    for prefix in ("local:", "docker-daemon:"):
        if identifier.startswith(prefix):
            try:
                return parse_reference(identifier[len(prefix) :], default_tag=None).familiar()
            except CnbError:
                return identifier
    return identifier


def run_image_info(metadata: LifecycleMetadata) -> RunImageInfo | None:
    """§6.4 ``runImage``: ``image`` (from run.toml) names it; else the ``reference`` the exporter recorded."""
    run = metadata.run_image
    if not run.reference and not run.image:
        return None
    base, _, digest = run.reference.rpartition("@")
    if not is_digest(digest):
        base, digest = run.reference, ""
    name = run.image or _readable(base)
    return RunImageInfo(name=name, reference=run.reference, digest=digest, top_layer=run.top_layer)


def image_subject(image: Image, name: str, metadata: LifecycleMetadata) -> Subject:
    """What the image's config and labels say about it (§6.4 ``runImage``, §6.5 ``buildpacks``, ``launcher``)."""
    config = image.config
    build = BuildMetadataLabel.from_json(config.labels.get(BUILD_METADATA_LABEL))
    if build.buildpacks:
        buildpacks = tuple(BuildpackInfo(b.id, b.version, b.homepage) for b in build.buildpacks)
    else:
        buildpacks = tuple(BuildpackInfo(b.key, b.version) for b in metadata.buildpacks)
    distro_name = config.labels.get("io.buildpacks.base.distro.name", "")
    return Subject(
        name=name,
        digest=image.descriptor.digest,
        created=config.created or "",
        os=config.os,
        architecture=config.architecture,
        run_image=run_image_info(metadata),
        buildpacks=buildpacks,
        launcher_version=build.launcher.version,
        distro=Distro(distro_name, config.labels.get("io.buildpacks.base.distro.version", "")) if distro_name else None,
    )


def os_component(distro: Distro) -> Component:
    version = distro.version_id or distro.codename
    return Component(
        ref=plain_ref(Kind.OPERATING_SYSTEM.value, distro.id, version),
        name=distro.id,
        version=version,
        kind=Kind.OPERATING_SYSTEM,
        description=distro.pretty_name,
    )


def package_component(package: OsPackage, distro: Distro | None) -> Component:
    """An OS package with its purl: ``pkg:deb/<distro id>/<name>@<version>?arch=…&distro=<id>-<version>``."""
    from packageurl import PackageURL

    namespace = distro.id if distro else ("debian" if package.manager == "deb" else "alpine")
    qualifiers = {"arch": package.arch, "distro": distro.qualifier if distro else ""}
    purl = PackageURL(
        type=package.manager,
        namespace=namespace,
        name=package.name,
        version=package.version,
        qualifiers={k: v for k, v in qualifiers.items() if v},
    ).to_string()
    properties = [("cnb:package-manager", "dpkg" if package.manager == "deb" else "apk")]
    if package.source:
        properties.append(("cnb:source-package", f"{package.source} {package.source_version}".strip()))
    return make_component(
        package.name,
        package.version,
        purl=str(purl),
        licenses=package.licenses,
        description=package.description,
        supplier=package.maintainer,
        properties=tuple(properties),
        found_in=package.database,
    )


def merge_into(index: dict[str, Component], component: Component) -> str:
    """Add *component* to *index* (by ref), merging with an equal one; returns its ref."""
    old = index.get(component.ref)
    if old is None:
        index[component.ref] = component
        return component.ref
    index[component.ref] = replace(
        old,
        licenses=tuple(dict.fromkeys((*old.licenses, *component.licenses))),
        description=old.description or component.description,
        supplier=old.supplier or component.supplier,
        properties=tuple(dict.fromkeys((*old.properties, *component.properties))),
        found_in=tuple(sorted({*old.found_in, *component.found_in})),
    )
    return component.ref


def _buildpack_node(info: BuildpackInfo) -> Component:
    properties = [("cnb:kind", "buildpack")]
    if info.homepage:
        properties.append(("cnb:homepage", info.homepage))
    return Component(
        ref=plain_ref("buildpack", info.id, info.version),
        name=info.id,
        version=info.version,
        kind=Kind.APPLICATION,
        properties=tuple(properties),
    )


def _run_image_node(run: RunImageInfo, arch: str) -> Component:
    purl = oci_purl(run.name, run.digest, arch=arch)
    properties = tuple((k, v) for k, v in (("cnb:kind", "run-image"), ("cnb:reference", run.reference)) if v)
    return Component(
        ref=purl or plain_ref("run-image", run.name, run.digest),
        name=run.name,
        version=run.digest,
        kind=Kind.CONTAINER,
        purl=purl,
        properties=properties,
    )


def assemble(subject: Subject, sbom_files: Sequence[SbomFile], os_inventory: OsInventory | None) -> Inventory:
    """The merged inventory from already-read parts (pure: no I/O)."""
    index: dict[str, Component] = {}
    groups: list[Group] = []
    warnings: list[str] = []
    distro = (os_inventory.distro if os_inventory else None) or subject.distro
    subject = replace(subject, distro=distro)

    os_refs: list[str] = []
    if distro is not None:
        os_refs.append(merge_into(index, os_component(distro)))
    for package in os_inventory.packages if os_inventory else ():
        os_refs.append(merge_into(index, package_component(package, distro)))
    if subject.run_image is not None:
        node = _run_image_node(subject.run_image, subject.architecture)
        groups.append(Group("run-image", f"Run image {subject.run_image.name}", node, _sorted(os_refs)))
    elif os_refs:
        groups.append(Group("os", "Operating system", None, _sorted(os_refs)))

    by_dir: dict[str, list[str]] = {}
    legacy: dict[str, list[str]] = {}
    for file in sbom_files:
        if file.extension == "legacy.json" and not file.buildpack_dir:
            for bp_id, component in read_legacy_bom(file.data, file.path):
                legacy.setdefault(bp_id, []).append(merge_into(index, component))
        elif file.extension in SBOM_MEDIA_TYPES:
            refs = [merge_into(index, c) for c in read_sbom(file.data, file.extension, file.path)]
            by_dir.setdefault(file.buildpack_dir, []).extend(refs)
        else:
            warnings.append(
                f"ignoring {file.path}: not an SBOM document (§3.7 extensions: {', '.join(SBOM_MEDIA_TYPES)})"
            )

    known = list(subject.buildpacks)
    dirs = {b.id.replace("/", "_"): b for b in known}
    extra = sorted(d for d in by_dir if d not in dirs)
    for directory in extra:
        name = "buildpacksio/lifecycle" if directory == LIFECYCLE_DIR else directory
        known.append(BuildpackInfo(name, subject.launcher_version if directory == LIFECYCLE_DIR else ""))
        dirs[directory] = known[-1]
    for info in known:
        directory = info.id.replace("/", "_")
        members = by_dir.get(directory, []) + legacy.get(info.id, [])
        groups.append(
            Group(
                f"buildpack:{info.id}",
                f"Buildpack {info.id} {info.version}".strip(),
                _buildpack_node(info),
                _sorted(members),
            )
        )
    components = tuple(sorted(index.values(), key=lambda c: c.sort_key))
    root = image_root(subject)
    return Inventory(subject, root, tuple(groups), components, tuple(warnings))


def image_root(subject: Subject) -> Component:
    purl = oci_purl(subject.name, subject.digest, arch=subject.architecture)
    return Component(
        ref=purl or plain_ref("image", subject.name, subject.digest),
        name=subject.name,
        version=subject.digest,
        kind=Kind.CONTAINER,
        purl=purl,
        properties=tuple(
            (k, v)
            for k, v in (
                ("cnb:created", subject.created),
                ("cnb:platform", f"{subject.os}/{subject.architecture}" if subject.os else ""),
                ("cnb:launcher-version", subject.launcher_version),
            )
            if v
        ),
    )


def _sorted(refs: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(refs)))


def collect_inventory(image: Image, name: str) -> Inventory:
    """Read the SBOM layer and the OS package databases of *image* and merge them with what its labels say."""
    metadata = lifecycle_metadata(image)
    subject = image_subject(image, name, metadata)
    files = read_sbom_files(image, metadata)
    os_inventory = scan_os_packages(image, lifecycle_layers(metadata))
    inventory = assemble(subject, files, os_inventory)
    if metadata.sbom is None and subject.buildpacks:
        warning = "the image has no SBOM layer: buildpack components are missing"
        inventory = replace(inventory, warnings=(*inventory.warnings, warning))
    return inventory
