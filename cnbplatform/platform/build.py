"""``cnb build``: analyze → detect → restore → build → export with a builder, buildpacks sandboxed in the
builder's build image (docs/design.md §1, §3 decision 1). Flags follow pack's where pack has one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cnbplatform.errors import NotFoundError, UsageError
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.address import ImageAddress, parse_destination
from cnbplatform.oci.reference import has_registry_host
from cnbplatform.oci.rootfs.cache import rootfs_for
from cnbplatform.platform.build_builder import BuilderRef, resolve_builder
from cnbplatform.platform.build_locks import (
    cache_dir_lock,
    cache_key,
    holding,
    home_in_use,
    image_lock,
    own_workdir,
)
from cnbplatform.platform.build_workspace import (
    Workspace,
    add_buildpack_dir,
    copy_app,
    link_tree,
    parse_env,
    resolve_in,
    write_inline_buildpack,
    write_order,
    write_platform_env,
)
from cnbplatform.platform.context import PlatformContext, creation_epoch
from cnbplatform.platform.lifecycle_run import run_phases
from cnbplatform.platform.lifecycle_settings import LifecycleSettings
from cnbplatform.platform.phases import Phases
from cnbplatform.sandbox import Mount, check_network

if TYPE_CHECKING:
    from cnbplatform.files.project_toml import GroupRef, ProjectDescriptor
    from cnbplatform.lifecycle.export.phase import ExportResult

PLATFORM_API = "0.15"


@dataclass(frozen=True)
class BuildRequest:
    image: str
    builder: str | None = None
    path: Path = Path(".")
    publish: bool = False
    daemon: bool = False
    tags: tuple[str, ...] = ()
    run_image: str | None = None
    env: tuple[str, ...] = ()
    env_files: tuple[Path, ...] = ()
    buildpacks: tuple[str, ...] = ()
    descriptor: Path | None = None
    cache_dir: Path | None = None
    cache_image: str | None = None
    clear_cache: bool = False
    previous_image: str | None = None
    default_process: str | None = None
    sbom_output_dir: Path | None = None
    report_output_dir: Path | None = None
    creation_time: str | None = None
    pull_policy: str = "if-not-present"
    network: str = "private"
    volumes: tuple[str, ...] = ()
    sandbox: str = "bwrap"
    detect_timeout: float | None = 600.0
    build_timeout: float | None = None
    host_ca_certs: Path | None = None
    keep_workspace: bool = False


@dataclass(frozen=True)
class Outputs:
    """Where the image goes, decided once: each name as the image records it (the image, then its tags) and
    its parsed address."""

    names: tuple[str, ...]
    addresses: tuple[ImageAddress, ...]


@dataclass
class BuildOutcome:
    image: str
    digest: str
    size: int
    added: int
    reused: int
    seconds: float
    phases: dict[str, float] = field(default_factory=dict)
    export: ExportResult | None = None


def destination(request: BuildRequest, name: str) -> str:
    """Where the image goes: the local store by default, a registry with --publish, the engine with --daemon."""
    if name.startswith(("oci:", "docker-daemon:", "local:", "docker://", "registry:")):
        return name
    if request.publish:
        return f"docker://{name}"
    if request.daemon:
        return f"docker-daemon:{name}"
    return f"local:{name}"


def input_name(request: BuildRequest, name: str) -> str:
    """How the build reads an input image given by name (--run-image): an explicit store prefix as is, the Docker
    engine with --daemon, else the name itself, read from where it says (:mod:`cnbplatform.oci.store.pull`: the local
    store when it has the name, else the registry of the normalised name under --pull-policy)."""
    if name.startswith(("oci:", "docker-daemon:", "local:", "docker://", "registry:")):
        return name
    return f"docker-daemon:{name}" if request.daemon else name


def previous_name(request: BuildRequest, name: str) -> str:
    """--previous-image and --cache-image: where the output goes (destination), except that a name whose first
    component is a registry host is that registry's (its local copy, if any, for the previous image)."""
    if request.publish or request.daemon or not has_registry_host(name):
        return destination(request, name)
    return name


def own_run_config(builder_root: Path, run_image: str, ws_root: Path) -> Path | None:
    """A run.toml naming *run_image* when the builder's does not, so the app records the run image it was built
    on (``runImage.image``, what ``cnb rebase --run-image`` checks); None keeps the builder's."""
    from cnbplatform.files.run_toml import RunConfig, RunImage
    from cnbplatform.lifecycle.run_image import run_image_entry

    config = RunConfig.load(builder_root / "cnb" / "run.toml")
    # the name without a store prefix (local:cnb/run is cnb/run to pack inspect and to a rebase)
    name = run_image
    for prefix in ("local:", "docker://", "registry:"):
        name = name.removeprefix(prefix)
    if run_image_entry(config, name) is not None:
        return None
    path = ws_root / "run.toml"
    RunConfig((RunImage(name),)).dump(path)
    return path


def builder_launcher(builder_root: Path) -> Path | None:
    """The builder's own ``/cnb/lifecycle/launcher`` (pack's builders carry the Go launcher), which the exporter
    copies into the app image instead of cnb's sh launcher. Only a regular file inside the unpacked builder counts:
    a link that leads out of it (the builder is untrusted) leaves cnb's launcher in place."""
    candidate = builder_root / "cnb" / "lifecycle" / "launcher"
    try:
        resolved = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not resolved.is_relative_to(builder_root.resolve()) or not resolved.is_file():
        return None
    from cnbplatform.launcher import launcher_script

    try:
        if resolved.stat().st_size == len(ours := launcher_script()) and resolved.read_bytes() == ours:
            return None  # cnb's own sh launcher (a builder carrying cnb's lifecycle): use it as ours, version known
    except OSError:
        return None
    return resolved


HOST_CA_PATH = "/cnb/host-ca-certificates.crt"
CA_ENV = ("SSL_CERT_FILE", "PIP_CERT", "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE")


def host_ca_mount(bundle: Path) -> tuple[Mount, dict[str, str]]:
    """This machine's CA bundle for buildpacks (behind a TLS-intercepting proxy the build image's CAs are not
    enough): mounted read-only at HOST_CA_PATH and named by the variables pip, requests, node and curl read.
    Nothing of it reaches the app image."""
    if not bundle.is_file():
        raise UsageError(f"--host-ca-certs {bundle}: no such file")
    return Mount(bundle.resolve(), HOST_CA_PATH, read_only=True), {name: HOST_CA_PATH for name in CA_ENV}


def parse_volume(spec: str) -> Mount:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
        raise UsageError(f"--volume {spec!r}: expected HOST:/path/in/sandbox[:ro|:rw]")
    if len(parts) == 3 and parts[2] not in ("ro", "rw"):
        raise UsageError(f"--volume {spec!r}: the mode must be ro or rw")
    source = Path(parts[0]).resolve()
    if not source.exists():
        raise UsageError(f"--volume {spec!r}: {source} does not exist")
    return Mount(source, parts[1], read_only=len(parts) == 3 and parts[2] == "ro")


def _has_own_order(request: BuildRequest, project: ProjectDescriptor | None) -> bool:
    """Whether --buildpack or project.toml (group, pre, post) replace or extend the builder's order."""
    return bool(request.buildpacks) or (project is not None and bool(project.group or project.pre or project.post))


def _order_groups(
    ctx: PlatformContext, request: BuildRequest, project: ProjectDescriptor | None, ws: Workspace, builder_root: Path
) -> list[list[tuple[str, str, bool]]] | None:
    """The order to use when --buildpack or project.toml says so (one group); None keeps the builder's."""
    if not _has_own_order(request, project):
        return None
    group: list[tuple[str, str, bool]] = []
    for ref in request.buildpacks:
        group.append(_buildpack_flag(ctx, ref, ws))
    if not group and project is not None and project.group:
        for entry in project.group:
            group.append(_project_ref(ctx, entry, ws, project))
    pre = [_project_ref(ctx, e, ws, project) for e in (project.pre if project else ())]
    post = [_project_ref(ctx, e, ws, project) for e in (project.post if project else ())]
    if group:
        groups = [group]
    else:
        from cnbplatform.files.order import Order

        builder_order = Order.load(builder_root / "cnb" / "order.toml")
        groups = [[(e.id, e.version, e.optional) for e in g.entries] for g in builder_order.groups]
    return [[*pre, *g, *post] for g in groups]


def _buildpack_flag(ctx: PlatformContext, ref: str, ws: Workspace) -> tuple[str, str, bool]:
    """--buildpack, in pack's forms: a directory; a ``.cnb``/``.tgz`` file or ``file://``; a buildpackage image
    (``docker://REF`` or a reference whose first component names a registry); ``urn:cnb:builder:ID[@VERSION]`` or
    ``ID[@VERSION]`` from the builder; ``urn:cnb:registry:NS/NAME[@VERSION]`` looked up in the buildpack registry.
    An ID the builder lacks that reads as an image name is tried as a buildpackage image, as pack does."""
    from cnbplatform.platform.build_builder import add_packaged_buildpack, buildpack_registry_image

    path = Path(ref)
    if path.is_dir():
        descriptor = add_buildpack_dir(ws.buildpacks, path)
        return descriptor.id, descriptor.version, False
    if ref.startswith(("/", "./", "../")) and not path.exists():
        raise UsageError(f"--buildpack {ref}: no such file or directory")
    if ref.startswith("urn:cnb:registry:"):
        bp_id, version = add_packaged_buildpack(ctx, buildpack_registry_image(ctx, ref), ws.buildpacks)
        return bp_id, version, False
    packaged = ref.endswith((".cnb", ".tgz")) or ref.startswith(("docker://", "file://"))
    if packaged or (not ref.startswith("urn:") and has_registry_host(ref)):
        bp_id, version = add_packaged_buildpack(ctx, ref, ws.buildpacks)
        return bp_id, version, False
    bp_id, _, version = ref.removeprefix("urn:cnb:builder:").partition("@")
    try:
        found = resolve_in(ws.buildpacks, bp_id, version)
    except NotFoundError as exc:
        if ref.startswith("urn:cnb:builder:") or path.exists() or not _is_image_name(ref):
            raise
        try:
            bp_id, version = add_packaged_buildpack(ctx, ref, ws.buildpacks)
        except NotFoundError as image_exc:
            raise NotFoundError(f"{exc.message}; as a buildpackage image: {image_exc.message}") from exc
        return bp_id, version, False
    return found[0], found[1], False


def _is_image_name(ref: str) -> bool:
    from cnbplatform.errors import InvalidReferenceError
    from cnbplatform.oci.reference import parse_reference

    try:
        parse_reference(ref)
    except InvalidReferenceError:
        return False
    return True


def _project_ref(
    ctx: PlatformContext, entry: GroupRef, ws: Workspace, project: ProjectDescriptor | None
) -> tuple[str, str, bool]:
    if entry.script is not None:
        bp_id, version = write_inline_buildpack(ws.buildpacks, entry)
        return bp_id, version, False
    if entry.uri:
        from cnbplatform.files.project_toml import REMOTE_URI_PREFIXES
        from cnbplatform.files.untrusted import join

        uri = entry.uri
        if uri.startswith(REMOTE_URI_PREFIXES):
            return _buildpack_flag(ctx, uri, ws)
        base = project.path.parent if project and project.path else Path(".")
        local = join(base, uri.removeprefix("file://"), file=(project and project.path) or "", key="uri")
        if local.is_dir():
            descriptor = add_buildpack_dir(ws.buildpacks, local)
            return descriptor.id, descriptor.version, False
        return _buildpack_flag(ctx, str(local), ws)
    found = resolve_in(ws.buildpacks, entry.id, entry.version)
    return found[0], found[1], False


def run_build(ctx: PlatformContext, request: BuildRequest, reporter: Reporter) -> BuildOutcome:
    started = time.perf_counter()
    if request.publish and request.daemon:
        raise UsageError("--publish and --daemon exclude each other")
    check_network(request.network)
    if request.sandbox not in ("bwrap", "docker", "host"):
        raise UsageError("--sandbox must be bwrap, docker or host")
    outputs = decide_outputs(request)  # before any work
    output = outputs.names[0]
    if request.cache_image is not None:
        parse_destination(previous_name(request, request.cache_image))
    project = _load_project(request)
    builder_name = request.builder or (project.builder if project else "") or _default_builder(ctx)
    if not request.builder and project is not None and project.builder and Path(project.builder).exists():
        raise UsageError(
            f"{project.path}: key 'io.buildpacks.builder': {project.builder!r} names a path on this machine; "
            "an app's project.toml names a builder image (a builder directory is given with --builder)"
        )
    if not builder_name:
        raise UsageError("no builder: pass --builder, set one in project.toml, or `cnb config default-builder NAME`")

    locks = [image_lock(output)]
    if request.cache_image is not None:
        locks.append(image_lock(previous_name(request, request.cache_image)))
    if request.cache_dir is not None:  # the default cache dir is the image's own: its lock covers it
        locks.append(cache_dir_lock(request.cache_dir))
    cache_dir = request.cache_dir or ctx.home / "cache" / cache_key(output)
    with (
        home_in_use(ctx.home),
        holding(ctx.home, locks, reporter),
        own_workdir(ctx.home, keep_on_failure=request.keep_workspace, reporter=reporter) as root,
    ):
        ws = Workspace.in_dir(root)
        outcome = _build(ctx, request, reporter, ws, builder_name, project, cache_dir, outputs, started)
    if outcome.added:  # the caches grew: keep them within their budget (a no-op rebuild skips the measuring)
        from cnbplatform.platform.prune import auto_prune

        auto_prune(ctx.home, reporter)
    return outcome


def _build(
    ctx: PlatformContext,
    request: BuildRequest,
    reporter: Reporter,
    ws: Workspace,
    builder_name: str,
    project: ProjectDescriptor | None,
    cache_dir: Path,
    outputs: Outputs,
    started: float,
) -> BuildOutcome:
    """The build itself, in its own workspace, holding the locks of its image and cache."""
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    builder: BuilderRef = resolve_builder(ctx, builder_name, request.pull_policy, reporter)
    builder_root = rootfs_for(builder.image, ctx.home / "rootfs", limits=ctx.unpack_limits)
    timings["builder"] = time.perf_counter() - tick

    buildpacks = _stage(request, ws, builder_root, project)
    ca_mounts = _platform_env(ctx, request, ws, project)
    order = _order_file(ctx, request, project, ws, builder_root)
    run_toml = _run_toml(request, builder_root, ws)
    _use_cache_dir(request, cache_dir)
    launcher = builder_launcher(builder_root) or ws.root / "no-launcher"
    settings = phase_settings(request, ws, builder_root, builder.address, buildpacks, order, run_toml, launcher,
                              cache_dir, outputs)  # fmt: skip
    mounts = (*ca_mounts, *(parse_volume(v) for v in request.volumes))

    def announce(name: str, seconds: float | None) -> None:
        if seconds is not None:
            reporter.info(f"[{name}] done in {seconds:.2f}s")

    with Phases(ctx, settings, reporter, extra_mounts=mounts, pull_policy=request.pull_policy) as phases:
        result, phase_timings = run_phases(phases, reporter, announce)
    timings.update(phase_timings)
    _copy_outputs(request, ws)
    size = _image_size(result)
    return BuildOutcome(
        image=request.image,
        digest=result.descriptor.digest,
        size=size,
        added=len(result.added),
        reused=len(result.reused),
        seconds=time.perf_counter() - started,
        phases=timings,
        export=result,
    )


def _stage(request: BuildRequest, ws: Workspace, builder_root: Path, project: ProjectDescriptor | None) -> Path:
    """A fresh workspace with the app copied in; the buildpacks dir the build uses.

    The builder's buildpacks are used where they are (cnb's private, read-only copy of the image) unless this
    build adds some (--buildpack, project.toml groups): then they are linked into a workspace dir of their own."""
    ws.reset()
    copy_app(request.path.resolve(), ws.app, project)
    buildpacks = builder_root / "cnb" / "buildpacks"
    if _has_own_order(request, project):
        link_tree(buildpacks, ws.buildpacks)
        buildpacks = ws.buildpacks
    return buildpacks


def _platform_env(
    ctx: PlatformContext, request: BuildRequest, ws: Workspace, project: ProjectDescriptor | None
) -> tuple[Mount, ...]:
    """``<platform>/env`` from --env, --env-file, project.toml and the host CA bundle; the CA bundle's mount."""
    env = parse_env(request.env, request.env_files, ctx.env)
    if project is not None:
        env = {**{e.name: e.value for e in project.env}, **env}
    ca_mounts: tuple[Mount, ...] = ()
    if request.host_ca_certs is not None:
        ca_mount, ca_env = host_ca_mount(request.host_ca_certs)
        ca_mounts = (ca_mount,)
        env = {**ca_env, **env}
    write_platform_env(ws.platform, env)
    return ca_mounts


def _order_file(
    ctx: PlatformContext, request: BuildRequest, project: ProjectDescriptor | None, ws: Workspace, builder_root: Path
) -> Path:
    """The builder's order.toml, or one of this build's own groups (--buildpack, project.toml)."""
    groups = _order_groups(ctx, request, project, ws, builder_root)
    if groups is None:
        return builder_root / "cnb" / "order.toml"
    write_order(ws.order, groups)
    return ws.order


def _run_toml(request: BuildRequest, builder_root: Path, ws: Workspace) -> Path:
    """The builder's run.toml, or one naming --run-image when the builder's does not."""
    run_toml = builder_root / "cnb" / "run.toml"
    if request.run_image:
        run_toml = own_run_config(builder_root, request.run_image, ws.root) or run_toml
    return run_toml


def _use_cache_dir(request: BuildRequest, cache_dir: Path) -> None:
    """--clear-cache empties the cache dir; its mtime records this use (cnb prune's least-recently-used order)."""
    if request.clear_cache and cache_dir.exists() and request.cache_image is None:
        shutil.rmtree(cache_dir)
    with contextlib.suppress(OSError):
        os.utime(cache_dir)


def decide_outputs(request: BuildRequest) -> Outputs:
    """Where the image goes (the image, then its tags), decided once; a bad reference or a digest fails here."""
    names = (destination(request, request.image), *(destination(request, t) for t in request.tags))
    return Outputs(names, tuple(parse_destination(where) for where in names))


def phase_settings(
    request: BuildRequest,
    ws: Workspace,
    builder_root: Path,
    build_image: str,
    buildpacks: Path,
    order: Path,
    run_toml: Path,
    launcher: Path,
    cache_dir: Path,
    outputs: Outputs,
) -> LifecycleSettings:
    """The lifecycle's inputs for this build, typed: the work dir's directories, the builder's files, the
    request's choices."""
    return LifecycleSettings(
        platform_api=PLATFORM_API,
        layers=ws.layers,
        app=ws.app,
        platform=ws.platform,
        buildpacks=buildpacks,
        build_config=builder_root / "cnb" / "build-config",
        analyzed=ws.layers / "analyzed.toml",
        group=ws.layers / "group.toml",
        plan=ws.layers / "plan.toml",
        order=order,
        run=run_toml,
        stack=Path("/cnb/stack.toml"),  # read below Platform API 0.12 only
        system=builder_root / "cnb" / "system.toml",
        report=ws.layers / "report.toml",
        project_metadata=ws.layers / "project-metadata.toml",
        launcher=launcher,
        cache_dir=None if request.cache_image else cache_dir,
        cache_image=previous_name(request, request.cache_image) if request.cache_image else None,
        previous_image=previous_name(request, request.previous_image) if request.previous_image else None,
        run_image=input_name(request, request.run_image) if request.run_image else None,
        skip_layers=request.clear_cache,
        process_type=request.default_process or None,
        sandbox=request.sandbox,
        build_image=build_image,
        detect_timeout=_seconds(request.detect_timeout),
        build_timeout=_seconds(request.build_timeout),
        network=request.network,
        images=outputs.names[:1],
        tags=outputs.names[1:],
        outputs=outputs.addresses,
        source_date_epoch=creation_epoch(request.creation_time),
    )


def _seconds(timeout: float | None) -> float | None:
    """A time limit; none for 0 or less, as for ``cnb lifecycle``."""
    return timeout if timeout is not None and timeout > 0 else None


def _image_size(result: ExportResult) -> int:
    for _, write in result.writes:
        return write.bytes_written
    return 0


def _copy_outputs(request: BuildRequest, ws: Workspace) -> None:
    if request.sbom_output_dir is not None:
        source = ws.layers / "sbom"
        if source.is_dir():
            shutil.copytree(source, request.sbom_output_dir, dirs_exist_ok=True)
    if request.report_output_dir is not None:
        request.report_output_dir.mkdir(parents=True, exist_ok=True)
        report = ws.layers / "report.toml"
        if report.is_file():
            shutil.copyfile(report, request.report_output_dir / "report.toml")


def _load_project(request: BuildRequest) -> ProjectDescriptor | None:
    path = request.descriptor or (request.path / "project.toml")
    if request.descriptor is not None and not path.is_file():
        raise UsageError(f"--descriptor {path}: no such file")
    if not path.is_file():
        return None
    from cnbplatform.files.project_toml import ProjectDescriptor

    return ProjectDescriptor.load(path)


def _default_builder(ctx: PlatformContext) -> str:
    from cnbplatform.platform.config import load_config

    return load_config(ctx.home).default_builder


def outcome_json(outcome: BuildOutcome) -> str:
    return json.dumps(
        {
            "image": outcome.image,
            "digest": outcome.digest,
            "layersAdded": outcome.added,
            "layersReused": outcome.reused,
            "seconds": round(outcome.seconds, 3),
            "phases": {k: round(v, 3) for k, v in outcome.phases.items()},
        },
        indent=2,
    )
