"""Run lifecycle phases from resolved settings: open stores, pick the sandbox, read and write the spec's files.

``cnb lifecycle <phase>`` calls one method; ``cnb lifecycle create`` (and later ``cnb build``) calls them in the
Platform ≥0.7 order analyze → detect → restore → build → export (docs/spec-notes.md §1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from cnbplatform.errors import CnbError, NotFoundError, PhaseError, UsageError
from cnbplatform.files.analyzed import Analyzed, TargetInfo
from cnbplatform.files.apis import LATEST_PLATFORM_API, ApiVersion, check_platform_api
from cnbplatform.files.group import GroupFile
from cnbplatform.files.order import Order
from cnbplatform.lifecycle.common import EXIT_ANALYZE, Reporter, check_group_apis
from cnbplatform.lifecycle.context import Dirs, Execution, SandboxPaths, filter_base_env
from cnbplatform.lifecycle.detect.phase import DetectInputs, DetectResult, detect
from cnbplatform.oci.address import ImageAddress, StoreKind, parse_address, pinned_address
from cnbplatform.platform.build_locks import home_in_use
from cnbplatform.platform.context import PlatformContext
from cnbplatform.platform.lifecycle_settings import LifecycleSettings
from cnbplatform.sandbox import BwrapSandbox, HostSandbox, Mount, Sandbox, loopback_proxy_ports, proxy_env
from cnbplatform.sandbox.bwrap import private_network_for
from cnbplatform.sandbox.network import PrivateNetwork

if TYPE_CHECKING:
    from cnbplatform.files.run_toml import RunConfig
    from cnbplatform.files.system import SystemConfig
    from cnbplatform.lifecycle.build.phase import BuildResult
    from cnbplatform.lifecycle.cache.protocol import Cache
    from cnbplatform.oci.image import Image
    from cnbplatform.oci.layers.cache import LayerCache
    from cnbplatform.oci.store.stores import Stores

# analyze, restore, build and image reading are imported where they are used: the detector started in a build
# container imports only what detection needs (start-up, bench/lifecycle_bundle.py).


@dataclass
class OpenedImage:
    address: ImageAddress
    image: Image
    identifier: str  # the reference to record (a valid image reference for the local store and registries)
    name: str = ""  # the name as given (recorded as the run image's name)


class Phases:
    """One command's worth of phases sharing stores, caches and a sandbox."""

    def __init__(
        self,
        ctx: PlatformContext,
        settings: LifecycleSettings,
        reporter: Reporter,
        *,
        extra_mounts: tuple[Mount, ...] = (),
        pull_policy: str = "if-not-present",
    ) -> None:
        self.ctx = ctx
        self.pull_policy = pull_policy
        self.settings = settings
        self.reporter = reporter
        self.extra_mounts = extra_mounts
        self.blobs_dir = ctx.home / "blobs"
        self._execution: Execution | None = None
        self._distro: tuple[str, str] | None = None
        self._in_use = home_in_use(ctx.home)
        self._sandbox: Sandbox | None = None
        self._early_network: PrivateNetwork | None = None  # started by start_network_soon, for execution()'s sandbox

    @cached_property
    def stores(self) -> Stores:
        """The command's image stores (made when first used: a detector reads no image)."""
        from cnbplatform.oci.store.stores import Stores

        return Stores(self.ctx)

    @cached_property
    def layer_cache(self) -> LayerCache:
        """The layer cache restore and export share (made when first used: detect and build need none)."""
        from cnbplatform.oci.layers.cache import LayerCache

        return LayerCache(self.ctx.home / "layer-cache")

    def __enter__(self) -> Phases:
        self._in_use.__enter__()  # cnb prune leaves the caches alone while phases use them
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        try:
            if self._early_network is not None:
                self._early_network.close()
            if self._sandbox is not None:
                self._sandbox.close()
            if "stores" in self.__dict__:  # made (cached_property)
                self.stores.close()
        finally:
            self._in_use.__exit__(None, None, None)

    def start_network_soon(self) -> None:
        """create and build: the bwrap sandbox's private network starts now, while analyze works, instead of at the
        first run in detect (pasta takes some 25 ms to be ready). Nothing of it is visible before that run; a network
        that cannot start is reported by that run, as before."""
        s = self.settings
        if s.sandbox != "bwrap" or s.network != "private" or self._execution is not None:
            return
        if self._early_network is None:
            self._early_network = private_network_for(loopback_proxy_ports(self.ctx.env))
            self._early_network.start_soon()

    def runs_done(self) -> None:
        """No more buildpack executables run in this command (export is next): the sandbox's network starts
        going down now, in parallel with what follows; ``__exit__`` waits for it (a later run would start anew)."""
        if isinstance(self._sandbox, BwrapSandbox):
            self._sandbox.begin_close()

    # -- inputs ------------------------------------------------------------------------------------------

    def platform_api(self) -> str:
        """docs/spec-notes.md §1.2: checked before any other input; unset or unsupported exits 11."""
        check_platform_api(self.settings.platform_api)
        assert self.settings.platform_api is not None
        return self.settings.platform_api

    def run_config(self) -> RunConfig | None:
        """Where run images live: run.toml, or below Platform API 0.12 the legacy stack.toml; None if absent."""
        from cnbplatform.files.run_toml import RunConfig

        s = self.settings
        if ApiVersion.parse(self.platform_api()).less_than("0.12"):
            return RunConfig.load_stack(s.stack) if s.stack.is_file() else None
        return RunConfig.load(s.run) if s.run.is_file() else None

    def output_address(self) -> ImageAddress:
        """Where the image goes: as the platform decided it (``cnb build``), else from the first image given."""
        if self.settings.outputs:
            return self.settings.outputs[0]
        if not self.settings.images:
            raise UsageError("an output image is required")
        return self.address(self.settings.images[0])

    def output_addresses(self) -> tuple[ImageAddress, ...]:
        """Every address export writes the image to: the output images, then the tags."""
        s = self.settings
        return s.outputs or tuple(self.address(name) for name in (*s.images, *s.tags))

    def address(self, text: str) -> ImageAddress:
        if self.settings.daemon and not text.startswith(("docker-daemon:", "oci:", "local:")):
            text = f"docker-daemon:{text}"
        return parse_address(text)

    def open_image(self, text: str, *, missing_ok: bool = False) -> OpenedImage | None:
        return self.open_address(self.address(text), text, missing_ok=missing_ok)

    def open_address(self, address: ImageAddress, text: str, *, missing_ok: bool = False) -> OpenedImage | None:
        from cnbplatform.oci.image import as_image, is_index, resolve_platform
        from cnbplatform.oci.store.pull import host_platform  # not via platform.run (cnb run's module)

        store, ref = self.stores.open(address)
        try:
            artifact = store.read(ref)
        except NotFoundError:
            if missing_ok:
                return None
            raise
        if is_index(artifact):
            artifact = resolve_platform(artifact, host_platform())
        image = as_image(artifact)
        return OpenedImage(address, image, pinned_address(address, image.descriptor.digest), text)

    def input_image(self, text: str, *, missing_ok: bool = False) -> OpenedImage | None:
        """An image this command only reads (run image, build image, an explicit previous image), from where its
        name says (:mod:`cnbplatform.oci.store.pull`): the local store when it has the name, else its registry (through
        the mirrors) under the pull policy, copied into the local store unless the output goes to a registry.
        With ``-daemon`` images come from the Docker engine, as for the Go lifecycle."""
        from cnbplatform.oci.store.pull import fetch

        if self.settings.daemon and not text.startswith(("oci:", "local:", "docker://", "registry:")):
            return self.open_image(text, missing_ok=missing_ok)
        keep = not (self.settings.images and self.output_address().kind is StoreKind.REGISTRY)
        announce = self.reporter.info
        # a digest names one content: once it is here, "always" has nothing newer to pull
        policy = "if-not-present" if "@sha256:" in text and self.pull_policy == "always" else self.pull_policy
        try:
            fetched = fetch(self.stores, text, pull_policy=policy, keep=keep, announce=announce)
        except NotFoundError:
            if missing_ok:
                return None
            raise
        return OpenedImage(parse_address(fetched.address), fetched.image, fetched.reference, text)

    def uid_gid(self, image_env: dict[str, str] | None = None) -> tuple[int, int]:
        env = image_env or {}
        uid = self.settings.uid if self.settings.uid is not None else _int(env.get("CNB_USER_ID"))
        gid = self.settings.gid if self.settings.gid is not None else _int(env.get("CNB_GROUP_ID"))
        return (os.getuid() if uid is None else uid), (os.getgid() if gid is None else gid)

    def export_ids(self) -> tuple[int, int]:
        """Owner of layer and app files in the image: flags/env, else the build image's CNB_USER_ID/GROUP_ID."""
        if self.settings.sandbox == "bwrap" and self.settings.build_image:
            opened = self.input_image(self.settings.build_image)
            assert opened is not None
            return self.uid_gid(opened.image.config.config.env_dict())
        return self.uid_gid(dict(self.ctx.env))

    def dirs(self) -> Dirs:
        """The phase's directories; the operator's build-config dir only from Platform API 0.11, which added it
        (https://github.com/buildpacks/spec/blob/platform/v0.11/platform.md#build-time-environment)."""
        s = self.settings
        api = ApiVersion.parse(s.platform_api or str(LATEST_PLATFORM_API))
        build_config = s.build_config if api.at_least("0.11") else None
        return Dirs(layers=s.layers, app=s.app, platform=s.platform, buildpacks=s.buildpacks, build_config=build_config)

    def execution(self) -> Execution:
        """The sandbox buildpacks run in: the host itself (inside a build container) or bwrap over the build image."""
        from cnbplatform.oci.rootfs.cache import rootfs_for

        if self._execution is not None:
            return self._execution
        s = self.settings
        dirs = self.dirs()
        if s.sandbox == "host":
            self._sandbox = HostSandbox()
            uid, gid = self.uid_gid(dict(self.ctx.env))
            base_env = filter_base_env(self.ctx.env)
            paths = SandboxPaths.same_as(dirs)
        elif s.sandbox == "bwrap":
            if not s.build_image:
                raise UsageError("--sandbox bwrap needs --build-image (the image buildpacks run in)")
            opened = self.input_image(s.build_image)
            assert opened is not None
            rootfs = rootfs_for(opened.image, self.ctx.home / "rootfs", limits=self.ctx.unpack_limits)
            image_env = opened.image.config.config.env_dict()
            network = "host" if s.network == "host" else "private"
            # a proxy that this machine's environment names on its loopback stays reachable (only its port)
            ports = loopback_proxy_ports(self.ctx.env) if network == "private" else ()
            early, self._early_network = self._early_network, None  # the sandbox owns it now
            self._sandbox = BwrapSandbox(rootfs, network=network, host_ports=ports, private_network=early)
            uid, gid = self.uid_gid(image_env)
            base_env = {**filter_base_env(image_env), **self._proxy_env()}
            paths = SandboxPaths()
        else:
            if not s.build_image:
                raise UsageError("--sandbox docker needs --build-image (the image buildpacks run in)")
            opened = self.input_image(s.build_image)
            assert opened is not None
            image_env = opened.image.config.config.env_dict()
            self._sandbox = self._docker_sandbox(opened.image)
            uid, gid = self.uid_gid(image_env)
            base_env = {**filter_base_env(image_env), **self._proxy_env()}
            paths = SandboxPaths()
        self._execution = Execution(
            sandbox=self._sandbox,
            dirs=dirs,
            paths=paths,
            uid=uid,
            gid=gid,
            network=s.network != "none",
            timeout=s.detect_timeout,
            base_env=base_env,
            extra_mounts=self.extra_mounts,
        )
        return self._execution

    def _docker_sandbox(self, image: Image) -> Sandbox:
        """One container of the build image per build (the image is loaded into the engine first)."""
        from cnbplatform.oci.store.daemon import DaemonStore
        from cnbplatform.sandbox import DockerSandbox

        name = f"cnb-build-image:{image.descriptor.digest[7:19]}"
        DaemonStore(environment=self.ctx.env, spool_dir=self.ctx.home / "tmp").write(image, name)
        for path in (self.settings.layers, self.settings.app):
            _chown_tree(path, *self.uid_gid(image.config.config.env_dict()))
        return DockerSandbox(
            name, environment=self.ctx.env, network="host" if self.settings.network == "host" else "private"
        )

    def _proxy_env(self) -> dict[str, str]:
        """This machine's proxy variables for buildpacks that have a network (pack passes them to its build
        containers too); the image's own values (docs/spec-notes.md §3.9 step 1) give way to them."""
        return proxy_env(self.ctx.env) if self.settings.network != "none" else {}

    def buildpack_target(self, analyzed: Analyzed | None) -> TargetInfo:
        """The target buildpacks see (``CNB_TARGET_*``) and match against: analyzed.toml's run image target, else
        (Platform API < 0.12 records none) ``linux``, this machine's architecture and the distro of the build
        image's ``os-release``, as the Go lifecycle infers it from the filesystem it runs on."""
        target = analyzed.run_image.target if analyzed and analyzed.run_image else None
        if target is not None:
            return target
        from cnbplatform.oci.store.pull import host_platform

        name, version = self._build_distro()
        return TargetInfo(os="linux", arch=host_platform().architecture, distro_name=name, distro_version=version)

    def _build_distro(self) -> tuple[str, str]:
        """``ID`` and ``VERSION_ID`` of the build image's os-release (this machine's with ``--sandbox host``), read
        once per command: from the unpacked root of ``--sandbox bwrap``, else from the image's layers."""
        if self._distro is None:
            self._distro = self._read_build_distro()
        return self._distro

    def _read_build_distro(self) -> tuple[str, str]:
        from cnbplatform.sbom.pkgdb import parse_os_release

        s = self.settings
        root = Path("/")
        if s.sandbox != "host" and s.build_image:
            opened = self.open_image(s.build_image)
            assert opened is not None
            if s.sandbox != "bwrap":
                from cnbplatform.sbom.ospkgs import scan_distro

                distro = scan_distro(opened.image)
                return (distro.id, distro.version_id) if distro else ("", "")
            from cnbplatform.oci.rootfs.cache import rootfs_for

            root = rootfs_for(opened.image, self.ctx.home / "rootfs")  # the one execution() unpacks
        for rel in ("etc/os-release", "usr/lib/os-release"):
            path = root / rel
            if path.is_symlink() and root != Path("/"):
                continue  # a link in an image's root would resolve on this machine: try the next one
            try:
                distro = parse_os_release(path.read_text(errors="replace"))
            except OSError:
                continue
            return (distro.id, distro.version_id) if distro else ("", "")
        return "", ""

    def cache(self) -> Cache | None:
        from cnbplatform.lifecycle.cache.directory import DirCache

        s = self.settings
        if s.cache_image:
            from cnbplatform.lifecycle.cache.image import ImageCache

            store, ref = self.stores.open(self.address(s.cache_image))
            return ImageCache(
                store, ref or "latest", self.layer_cache, blobs_dir=self.blobs_dir, reporter=self.reporter
            )
        if s.cache_dir:
            return DirCache(s.cache_dir, self.layer_cache, reporter=self.reporter)
        return None

    # -- phases ------------------------------------------------------------------------------------------

    def analyze(self) -> Analyzed:
        from cnbplatform.lifecycle.analyze import AnalyzeInputs, analyze

        api = self.platform_api()
        s = self.settings
        output = self.output_address()
        if s.previous_image:
            previous = self.input_image(s.previous_image, missing_ok=True)
        else:
            previous = self.open_address(output, s.images[0], missing_ok=True)
        run = self._run_image(output)
        return analyze(
            AnalyzeInputs(
                previous_image=previous.image if previous else None,
                previous_reference=previous.identifier if previous else "",
                run_image=run.image,
                run_image_name=run.name,
                run_image_reference=run.identifier,
                layers_dir=s.layers,
                analyzed_path=s.analyzed,
                skip_layers=s.skip_layers,
                platform_api=api,
            ),
            self.reporter,
        )

    def _run_image(self, output: ImageAddress) -> OpenedImage:
        from cnbplatform.files.run_toml import RunConfig
        from cnbplatform.lifecycle.analyze import select_run_image

        s = self.settings
        if s.run_image:
            opened = self.input_image(s.run_image)
            assert opened is not None
            return opened
        config = self.run_config() or RunConfig()
        candidates = [(entry.image, tuple(entry.mirrors)) for entry in config.images]
        registry = output.reference.registry if output.reference else ""

        opened_by_name: dict[str, OpenedImage] = {}

        def readable(name: str) -> bool:
            try:
                opened = self.input_image(name, missing_ok=True)
            except CnbError as exc:
                self.reporter.debug(f"run image {name} is not readable: {exc.message}")
                return False
            if opened is not None:
                opened_by_name[name] = opened
            return opened is not None

        chosen = select_run_image(candidates, registry, readable)
        opened = opened_by_name.get(chosen) or self.input_image(chosen)
        if opened is None:
            raise PhaseError("analyze", EXIT_ANALYZE, f"read run image {chosen}", "not found")
        return opened

    def detect(self) -> DetectResult:
        api = self.platform_api()
        s = self.settings
        analyzed = Analyzed.load(s.analyzed) if s.analyzed.exists() else None
        execution = replace(self.execution(), timeout=s.detect_timeout)
        return detect(
            DetectInputs(
                execution=execution,
                order=Order.load(s.order),
                system=_system(s.system),
                run_target=self.buildpack_target(analyzed),
                platform_api=api,
                exec_env=s.exec_env,
                group_path=s.group,
                plan_path=s.plan,
            ),
            self.reporter,
        )

    def restore(self) -> None:
        from cnbplatform.lifecycle.restore import RestoreInputs, restore

        api = self.platform_api()
        s = self.settings
        cache = self.cache()
        own = os.getuid() == 0  # as root, restored files get the owner buildpacks run as, not the tar's
        if s.sandbox == "bwrap":
            uid, gid = os.getuid(), os.getgid()  # bwrap maps the CNB user to whoever runs cnb
        else:
            uid, gid = self.uid_gid(dict(self.ctx.env))
        restore(
            RestoreInputs(
                group=GroupFile.load(s.group),
                analyzed=Analyzed.load(s.analyzed) if s.analyzed.exists() else Analyzed(),
                cache=cache,
                layers_dir=s.layers,
                skip_layers=s.skip_layers,
                uid=uid if own else None,
                gid=gid if own else None,
                platform_api=api,
            ),
            self.reporter,
        )

    def build(self) -> BuildResult:
        from cnbplatform.files.plan import Plan
        from cnbplatform.lifecycle.build.phase import BuildInputs, build

        api = self.platform_api()
        s = self.settings
        analyzed = Analyzed.load(s.analyzed) if s.analyzed.exists() else None
        group = GroupFile.load(s.group)
        check_group_apis(group, "build")  # before the sandbox is set up, as the Go builder checks its inputs first
        execution = replace(self.execution(), timeout=s.build_timeout)
        return build(
            BuildInputs(
                execution=execution,
                group=group,
                plan=Plan.load(s.plan),
                analyzed_target=self.buildpack_target(analyzed),
                platform_api=api,
                exec_env=s.exec_env,
            ),
            self.reporter,
        )


def _system(path: Path) -> SystemConfig | None:
    """system.toml (docs/spec-notes.md §4.1) when the builder has one."""
    if not path.exists():
        return None
    from cnbplatform.files.system import SystemConfig

    return SystemConfig.load(path)


def _int(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"expected a numeric user/group id, got {value!r}") from None


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """The Docker sandbox uses real uids: the CNB user must own the dirs buildpacks write (as root only)."""
    if os.getuid() != 0:
        return
    for dirpath, dirnames, filenames in os.walk(root):
        os.lchown(dirpath, uid, gid)
        for name in (*dirnames, *filenames):
            os.lchown(os.path.join(dirpath, name), uid, gid)


def ensure_dirs(paths: list[Path]) -> None:
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
