"""The ``dockerfile`` builder (kbld's ``docker`` source): BuildKit through a Docker engine when there is one,
else ``buildah bud`` without any daemon; either way the image is pushed with cnb's own registry client.

kbld's ``docker.build`` fields: ``file`` (relative to the source dir, default ``Dockerfile``), ``target``,
``pull`` (always pull the base), ``noCache``, ``buildArgs`` (a mapping), ``rawOptions`` (more flags for the
tool, passed as given). The engine is the one at ``DOCKER_HOST`` (or ``/var/run/docker.sock``); buildah reads
``CONTAINERS_CONF`` and ``CONTAINERS_STORAGE_CONF``, and when they are not set cnb writes both under
``$CNB_HOME/buildah`` (storage there, runc as the runtime). ``SOURCE_DATE_EPOCH`` is passed on to both tools
(buildah ``--timestamp``, a BuildKit build arg) for reproducible images.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cnbplatform.errors import CnbError, UsageError
from cnbplatform.imagebuilders import common
from cnbplatform.imagebuilders.base import BuiltImage, Pushed, SourceBuild
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.registry import Credential
from cnbplatform.platform.context import PlatformContext

FIELDS = ("file", "target", "pull", "noCache", "buildArgs", "rawOptions")
DEFAULT_SOCKET = "/var/run/docker.sock"


class BuildFailedError(CnbError):
    """The Dockerfile build tool exited non-zero."""


def engine_host(env: Mapping[str, str]) -> str | None:
    """The Docker engine to use when one answers: ``DOCKER_HOST``, else the default socket."""
    host = env.get("DOCKER_HOST") or (f"unix://{DEFAULT_SOCKET}" if Path(DEFAULT_SOCKET).exists() else None)
    if host is None:
        return None
    try:
        if host.startswith("unix://"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(host[len("unix://") :])
        elif host.startswith("tcp://"):
            name, _, port = host[len("tcp://") :].rpartition(":")
            socket.create_connection((name, int(port)), timeout=2).close()
        else:
            return None
    except (OSError, ValueError):
        return None
    return host


def buildkit_cli(env: Mapping[str, str]) -> str | None:
    """A ``docker`` client on PATH that can drive BuildKit: before 23.0 it is built in (``DOCKER_BUILDKIT=1``),
    from 23.0 on it needs the buildx plug-in. The first that can, in PATH order."""
    seen: set[str] = set()
    for directory in (env.get("PATH") or "").split(os.pathsep):
        found = shutil.which("docker", path=directory) if directory else None
        if found is None or os.path.realpath(found) in seen:
            continue
        seen.add(os.path.realpath(found))
        try:
            version = subprocess.run(
                [found, "version", "--format", "{{.Client.Version}}"], capture_output=True, text=True, timeout=30,
                env=dict(env), check=False,
            ).stdout.strip()  # fmt: skip
            major = int(version.split(".", 1)[0]) if version.split(".", 1)[0].isdigit() else 0
            if 0 < major < 23:
                return found
            buildx = subprocess.run([found, "buildx", "version"], capture_output=True, timeout=30, env=dict(env))
        except (OSError, subprocess.TimeoutExpired):
            continue
        if buildx.returncode == 0:
            return found
    return None


def tool_args(options: Mapping[str, Any], source: Path, *, buildah: bool, epoch: str | None) -> list[str]:
    """The flags kbld's ``docker.build`` fields become for ``docker build`` or ``buildah bud``."""
    for key in options:
        if key not in FIELDS:
            raise UsageError(f"docker.build.{key} is not a field cnb knows ({', '.join(FIELDS)})")
    dockerfile = options.get("file") or "Dockerfile"
    if not isinstance(dockerfile, str):
        raise UsageError("docker.build.file must be a string")
    path = source / dockerfile
    if not path.is_file():
        raise UsageError(f"build {source}: no Dockerfile at {path}")
    args = ["-f", str(path)]
    if options.get("target"):
        args += ["--target", str(options["target"])]
    if options.get("pull"):
        args.append("--pull-always" if buildah else "--pull")
    if options.get("noCache"):
        args.append("--no-cache")
    build_args = options.get("buildArgs") or {}
    if not isinstance(build_args, dict):
        raise UsageError("docker.build.buildArgs must be a mapping")
    for key, value in build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    if epoch is not None:
        args += ["--timestamp", epoch] if buildah else ["--build-arg", f"SOURCE_DATE_EPOCH={epoch}"]
    raw = options.get("rawOptions") or []
    if not isinstance(raw, list) or not all(isinstance(r, str) for r in raw):
        raise UsageError("docker.build.rawOptions must be a list of strings")
    return args + list(raw)


def buildah_env(ctx: PlatformContext) -> dict[str, str]:
    """The environment for buildah: the caller's, plus containers.conf and storage.conf when not given."""
    env = dict(ctx.env)
    if env.get("DOCKER_CONFIG") and not (Path(env["DOCKER_CONFIG"]) / "config.json").is_file():
        del env["DOCKER_CONFIG"]  # buildah refuses a DOCKER_CONFIG without config.json, even when no auth is needed
    root = ctx.home / "buildah"
    if not env.get("CONTAINERS_CONF"):
        conf = root / "containers.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(
            '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\n'
        )
        env["CONTAINERS_CONF"] = str(conf)
    if not env.get("CONTAINERS_STORAGE_CONF"):
        conf = root / "storage.conf"
        conf.parent.mkdir(parents=True, exist_ok=True)
        conf.write_text(f'[storage]\ndriver = "vfs"\nrunroot = "{root / "run"}"\ngraphroot = "{root / "storage"}"\n')
        env["CONTAINERS_STORAGE_CONF"] = str(conf)
    return env


def _run(command: Sequence[str], env: Mapping[str, str], cwd: Path, reporter: Reporter, action: str) -> None:
    try:
        process = subprocess.Popen(
            list(command),
            cwd=cwd,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise BuildFailedError(f"{action}: {exc}") from exc
    assert process.stdout is not None
    tail: list[bytes] = []
    for line in process.stdout:
        reporter.output(Path(command[0]).name, line)
        tail = [*tail[-4:], line]
    if process.wait() != 0:
        last = next((t.decode(errors="replace").strip() for t in reversed(tail) if t.strip()), "")
        raise BuildFailedError(f"{action}: exit status {process.returncode}" + (f": {last[:300]}" if last else ""))


class DockerfileBuilder:
    name = "dockerfile"

    def __init__(self, engine: str = "auto") -> None:
        if engine not in ("auto", "buildkit", "buildah"):
            raise UsageError(f"dockerfile builder engine {engine!r}: expected auto, buildkit or buildah")
        self.engine = engine

    def tool(self, ctx: PlatformContext) -> str:
        """``buildkit`` or ``buildah``: what this build will use on this machine (or a one-line reason why none)."""
        host = engine_host(ctx.env) if self.engine in ("auto", "buildkit") else None
        if host is not None and buildkit_cli(ctx.env) is not None:
            return "buildkit"
        if self.engine != "buildkit" and shutil.which("buildah", path=ctx.env.get("PATH")):
            return "buildah"
        raise UsageError(
            "the dockerfile builder needs a Docker engine with BuildKit (DOCKER_HOST, and a docker CLI before 23.0 "
            "or with buildx: apt-get install docker.io) or buildah (apt-get install buildah) and found neither"
        )

    def build(self, ctx: PlatformContext, request: SourceBuild, reporter: Reporter) -> BuiltImage:
        tool = self.tool(ctx)
        epoch = ctx.env.get("SOURCE_DATE_EPOCH")
        name = common.scratch_name(request.name)
        args = tool_args(request.options, request.source, buildah=tool == "buildah", epoch=epoch)
        action = f"build {request.name} from {request.source} with {tool}"
        if tool == "buildkit":
            env = {**ctx.env, "DOCKER_BUILDKIT": "1", "DOCKER_HOST": engine_host(ctx.env) or ""}
            docker = buildkit_cli(ctx.env) or "docker"
            command = [docker, "build", *args, "-t", f"{name}:latest", str(request.source)]
            _run(command, env, request.source, reporter, action)
            return BuiltImage(f"docker-daemon:{name}:latest", "")
        env = buildah_env(ctx)
        layout = ctx.home / "tmp" / "buildah-out" / name.replace("/", "-")
        shutil.rmtree(layout, ignore_errors=True)
        layout.parent.mkdir(parents=True, exist_ok=True)
        local = f"localhost/{name}:latest"
        _run(
            ["buildah", "bud", "--layers", *args, "-t", local, str(request.source)],
            env,
            request.source,
            reporter,
            action,
        )
        _run(["buildah", "push", "--format", "oci", local, f"oci:{layout}:latest"], env, request.source, reporter,
             f"{action}: export")  # fmt: skip
        subprocess.run(["buildah", "rmi", local], env=env, capture_output=True, check=False, timeout=120)
        return BuiltImage(f"oci:{layout}:latest", "")

    def push(self, ctx: PlatformContext, image: BuiltImage, destination: str, tags: tuple[str, ...] = ()) -> Pushed:
        return common.push(ctx, image, destination, tags)

    def pull_credential(self, ctx: PlatformContext, registry: str) -> Credential | None:
        return common.pull_credential(ctx, registry)
