"""``cnb run``: run an image from any store in the bwrap sandbox, no daemon (issue: platform item 6).

The image is unpacked once per manifest digest into ``$CNB_HOME/rootfs``; the process runs as the image's user,
with its env, entrypoint, cmd and working dir, sharing the host network so a web app is reachable on 127.0.0.1.
Ctrl-C (or a SIGTERM to cnb) stops it the way ``docker stop`` does: SIGTERM to the app's main process, then
SIGKILL after ``STOP_GRACE`` seconds; a second Ctrl-C kills it at once. cnb exits with the app's exit code.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.errors import UsageError
from cnbplatform.oci.address import parse_address
from cnbplatform.oci.image import Image, as_image, is_index, resolve_platform
from cnbplatform.oci.model import Platform
from cnbplatform.oci.rootfs.cache import rootfs_for
from cnbplatform.oci.store.stores import Stores
from cnbplatform.platform.context import PlatformContext
from cnbplatform.sandbox import BwrapSandbox, RunRequest

STOP_GRACE = 10.0  # seconds, as docker stop


@dataclass(frozen=True)
class RunOptions:
    image: str
    process: str | None = None
    args: Sequence[str] = ()
    env: Mapping[str, str] | None = None
    network: bool = True
    timeout: float | None = None
    stop_grace: float = STOP_GRACE


def host_os_arch() -> Platform:
    from cnbplatform.oci.store.pull import host_platform

    return host_platform()


def resolve_user(user: str, rootfs: Path) -> tuple[int, int]:
    """Image config ``User`` (``name``, ``uid``, ``uid:gid``, ``name:group``) to numeric ids via the image's files."""
    if not user:
        return 0, 0
    name, _, group = user.partition(":")

    def lookup(path: Path, key: str, field: int) -> int | None:
        try:
            for line in path.read_text(errors="replace").splitlines():
                parts = line.split(":")
                if len(parts) > 3 and parts[0] == key:
                    return int(parts[field])
        except (OSError, ValueError):
            return None
        return None

    passwd, groups = rootfs / "etc" / "passwd", rootfs / "etc" / "group"
    uid = int(name) if name.isdigit() else lookup(passwd, name, 2)
    if uid is None:
        raise UsageError(f"image user {name!r} is not in the image's /etc/passwd")
    if group:
        gid = int(group) if group.isdigit() else lookup(groups, group, 2)
        if gid is None:
            raise UsageError(f"image group {group!r} is not in the image's /etc/group")
    else:
        found = lookup(passwd, name, 3) if not name.isdigit() else None
        gid = found if found is not None else uid
    return uid, gid


def home_of(uid: int, rootfs: Path) -> str:
    """The user's home from the image's /etc/passwd, as Docker sets ``HOME`` (``/`` when unknown)."""
    try:
        for line in (rootfs / "etc" / "passwd").read_text(errors="replace").splitlines():
            parts = line.split(":")
            if len(parts) > 5 and parts[2] == str(uid) and parts[5]:
                return parts[5]
    except OSError:
        pass
    return "/"


def open_image(ctx: PlatformContext, where: str) -> tuple[Image, Path]:
    """Read *where* (any store), pick the host's platform from an index, and unpack it (cached)."""
    address = parse_address(where)
    with Stores(ctx) as stores:
        store, ref = stores.open(address)
        artifact = store.read(ref)
        if is_index(artifact):
            artifact = resolve_platform(artifact, host_os_arch())
        image = as_image(artifact)
        rootfs = rootfs_for(image, ctx.home / "rootfs", limits=ctx.unpack_limits)
    return image, rootfs


def run_image(ctx: PlatformContext, options: RunOptions) -> int:
    from cnbplatform.platform.build_locks import home_in_use

    with home_in_use(ctx.home):  # cnb prune leaves the unpacked tree alone while the app runs in it
        return _run_image(ctx, options)


def _run_image(ctx: PlatformContext, options: RunOptions) -> int:
    image, rootfs = open_image(ctx, options.image)
    cfg = image.config.config
    if options.process:
        entrypoint: list[str] = [f"/cnb/process/{options.process}"]
        if not (rootfs / "cnb" / "process" / options.process).is_symlink():
            known = sorted(p.name for p in (rootfs / "cnb" / "process").glob("*"))
            raise UsageError(f"image has no process {options.process!r} (it has: {', '.join(known) or 'none'})")
        cmd: list[str] = []
    else:
        entrypoint, cmd = list(cfg.entrypoint or ()), list(cfg.cmd or ())
    argv = entrypoint + (list(options.args) if options.args else cmd)
    if not argv:
        raise UsageError(f"{options.image} has no entrypoint or cmd; pass a command after --")
    env = cfg.env_dict()
    env.update(options.env or {})
    uid, gid = resolve_user(cfg.user, rootfs)
    env.setdefault("HOME", home_of(uid, rootfs))

    def out(data: bytes) -> None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def err(data: bytes) -> None:
        sys.stderr.buffer.write(data)
        sys.stderr.buffer.flush()

    sandbox = BwrapSandbox(rootfs, network="host")  # the app's port must be reachable on this machine's 127.0.0.1
    request = RunRequest(
        argv=argv,
        env=env,
        cwd=cfg.working_dir or "/",
        mounts=[],
        uid=uid,
        gid=gid,
        network=options.network,
        timeout=options.timeout,
        stdout=out,
        stderr=err,
        output_limit=0,
        stop_grace=options.stop_grace,
    )
    try:
        with _sigterm_as_interrupt():
            result = sandbox.run(request)
    finally:
        sandbox.close()
    return result.exit_code


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the app runs, a SIGTERM to cnb (``kill``, a service manager) stops it like Ctrl-C: gracefully."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
