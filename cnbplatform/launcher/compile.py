"""Compile each process's launch environment into shell code at export time (docs/design.md §3 decision 3).

The exporter calls :func:`compile_launch_env` and writes what it returns under ``<layers>/config/launch/`` so the
files travel in the config layer; the ``sh`` launcher (:mod:`cnbplatform.launcher.script`) sources them and never
reads TOML or env dirs itself. Per process type ``process/<type>.sh``; ``direct.sh`` serves commands given on the
launcher's command line (no process type).

What each file encodes (docs/spec-notes.md §9.2 step 3, §3.8, §3.11, §3.12):

- the environment: for each buildpack in metadata order, first every layer's ``bin`` → ``PATH`` and ``lib`` →
  ``LD_LIBRARY_PATH`` (prepended with ``:``, only dirs that exist at export time), then for every layer (by name)
  the ops of ``env/``, ``env.launch/`` and ``env.launch/<type>/`` with the suffix rules of §3.8 (no suffix =
  override). Values are exact bytes, single-quoted; a value containing NUL, or a variable name ``sh`` cannot
  export, is skipped with a warning;
- exec.d programs (per buildpack, per layer: ``exec.d/*`` then ``exec.d/<type>/*``, LC's interleaved order of
  §9.2 item 8) and profile.d scripts (same order; sourced only by shell processes);
- for a process type: command, args, direct, working dir (relative = below the app dir), how user args combine
  with the process args (§9.1), and the exec-env filter (Platform 0.15).
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.buildpack.envdir import EnvOp, apply_env_ops, read_env_dir
from cnbplatform.errors import CnbError
from cnbplatform.files.apis import ApiVersion
from cnbplatform.files.metadata import BuildMetadata
from cnbplatform.launcher.script import LIFECYCLE_DIR, PROCESS_DIR, STRIPPED_VARS, sh_quote

#: Where the compiled files live, relative to the layers dir (inside the config layer).
COMPILED_DIR = "config/launch"
#: The compiled file for commands given on the command line (``launcher [--] cmd args``).
DIRECT_FILE = "direct.sh"

_SH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z", re.ASCII)
_PROCESS_TYPE = re.compile(r"[A-Za-z0-9._-]+\Z", re.ASCII)


def _log_warning(message: str) -> None:
    """Where warnings go when the caller gives no *warn*: this module's logger (loaded only then)."""
    import logging

    logging.getLogger(__name__).warning(message)


class LaunchCompileError(CnbError):
    """A process or layer the launcher cannot be compiled for (an export error, docs/spec-notes.md §1.3)."""

    exit_code = 62


@dataclass(frozen=True)
class LaunchLayer:
    """A launch layer: its name and where its directory is on the host at export time."""

    name: str
    host_dir: Path


@dataclass(frozen=True)
class LaunchBuildpack:
    """A buildpack of the build (metadata order) with its launch layers."""

    id: str
    layers: tuple[LaunchLayer, ...] = ()


@dataclass(frozen=True)
class LaunchProcess:
    """A process type as the launcher needs it (metadata.toml ``[[processes]]`` plus its buildpack's API)."""

    type: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    direct: bool = True
    working_dir: str = ""
    buildpack_api: str = "0.12"
    buildpack_id: str = ""
    exec_env: tuple[str, ...] = ()


def process_file(process_type: str) -> str:
    """The compiled file of *process_type*, relative to :data:`COMPILED_DIR`."""
    return f"process/{process_type}.sh"


def escape_id(buildpack_id: str) -> str:
    """A buildpack ID as a directory name: every ``/`` becomes ``_`` (docs/spec-notes.md §0)."""
    return buildpack_id.replace("/", "_")


def launch_processes(metadata: BuildMetadata) -> tuple[LaunchProcess, ...]:
    """The processes of *metadata* (§5.3), each with the API of the buildpack that declared it."""
    apis = {bp.id: bp.api for bp in metadata.buildpacks}
    return tuple(
        LaunchProcess(
            type=p.type,
            command=p.command,
            args=p.args,
            direct=p.direct,
            working_dir=p.working_dir,
            buildpack_api=apis.get(p.buildpack_id) or "0.12",
            buildpack_id=p.buildpack_id,
            exec_env=p.exec_env,
        )
        for p in metadata.processes
    )


Warn = Callable[[str], None]


def _names(directory: Path) -> list[bytes]:
    """Entries of *directory* that are not directories (symlinks count as files, as in LC), sorted by name."""
    try:
        with os.scandir(os.fsencode(directory)) as it:
            return sorted(e.name for e in it if not e.is_dir(follow_symlinks=False))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise LaunchCompileError(f"list {directory} for the launcher: {exc.strerror or exc}") from exc


def _exists_as_dir(path: Path) -> bool:
    return path.is_dir() or path.is_symlink()


def _op_code(op: EnvOp) -> bytes:
    """One env operation (§3.8) as a line of sh; value and delimiter are single-quoted exact bytes."""
    name = op.name.encode()
    value = sh_quote(op.value)
    current = b'"${' + name + b'-}"'
    if op.action == "default":
        return b"\tif [ -z %s ]; then %s=%s; export %s; fi\n" % (current, name, value, name)
    if op.action in ("prepend", "append") and op.delim is not None:
        delim = sh_quote(op.delim)
        joined = value + delim + current if op.action == "prepend" else current + delim + value
        return b"\tif [ -n %s ]; then %s=%s; else %s=%s; fi; export %s\n" % (current, name, joined, name, value, name)
    if op.action == "prepend":
        value += current
    elif op.action == "append":
        value = current + value
    return b"\t%s=%s; export %s\n" % (name, value, name)


def _usable(ops: Iterable[EnvOp], where: Path, warn: Warn) -> list[EnvOp]:
    """The ops the sh launcher can carry out; the others are reported to *warn*."""
    out = []
    for op in ops:
        if not _SH_NAME.match(op.name) or op.name.startswith("_cnb_"):
            warn(f"{where}: variable {op.name!r} cannot be set by the sh launcher; skipped")
        elif b"\0" in op.value or (op.delim is not None and b"\0" in op.delim):
            warn(f"{where}: the value of {op.name} contains a NUL byte, which an environment cannot hold; skipped")
        else:
            out.append(op)
    return out


@dataclass(frozen=True)
class _Layer:
    image_dir: bytes
    host_dir: Path


class _Compiler:
    def __init__(self, buildpacks: Sequence[LaunchBuildpack], layers_dir: str, warn: Warn) -> None:
        self._warn = warn
        self._warned: set[str] = set()
        self.groups: list[list[_Layer]] = []
        for bp in buildpacks:
            base = os.fsencode(layers_dir).rstrip(b"/") + b"/" + os.fsencode(escape_id(bp.id))
            layers = sorted(bp.layers, key=lambda layer: os.fsencode(layer.name))
            self.groups.append([_Layer(base + b"/" + os.fsencode(layer.name), layer.host_dir) for layer in layers])

    def warn(self, message: str) -> None:
        """Report *message* once (generic env dirs are read again for every process type)."""
        if message not in self._warned:
            self._warned.add(message)
            self._warn(message)

    def ops(self, process_type: str) -> list[EnvOp]:
        """Every env operation of §9.2 step 3, in order (what :meth:`env` compiles)."""
        out: list[EnvOp] = []
        for layers in self.groups:
            for layer in layers:
                for sub, name in (("bin", "PATH"), ("lib", "LD_LIBRARY_PATH")):
                    if _exists_as_dir(layer.host_dir / sub):
                        out.append(EnvOp(name, "prepend", layer.image_dir + b"/" + sub.encode(), b":"))
            for layer in layers:
                subs = ["env", "env.launch", *([f"env.launch/{process_type}"] if process_type else [])]
                for sub in subs:
                    out += _usable(read_env_dir(layer.host_dir / sub), layer.host_dir / sub, self.warn)
        return out

    def env(self, process_type: str) -> bytes:
        return b"".join(_op_code(op) for op in self.ops(process_type))

    def scripts(self, kind: str, process_type: str) -> list[bytes]:
        """Image paths of the ``exec.d`` or ``profile.d`` entries, in launch order (§9.2 item 8)."""
        out: list[bytes] = []
        for layers in self.groups:
            for layer in layers:
                out += [layer.image_dir + f"/{kind}/".encode() + n for n in _names(layer.host_dir / kind)]
                if process_type:
                    typed = f"/{kind}/{process_type}/".encode()
                    out += [layer.image_dir + typed + n for n in _names(layer.host_dir / kind / process_type)]
        return out

    def common(self, process_type: str) -> bytes:
        """Shell code shared by both kinds of file: profile scripts, the environment and exec.d."""
        profiles = b"".join(b". " + sh_quote(p) + b"\n" for p in self.scripts("profile.d", process_type))
        execd = b"".join(b"\t_cnb_x " + sh_quote(p) + b"\n" for p in self.scripts("exec.d", process_type))
        return (
            b"_cnb_profiles=" + sh_quote(profiles) + b"\n"
            b"_cnb_env() {\n" + self.env(process_type) + b"\t:\n}\n"
            b"_cnb_execd() {\n" + execd + b"\t:\n}\n"
        )


def _encode(value: str, what: str) -> bytes:
    raw = os.fsencode(value)
    if b"\0" in raw:
        raise LaunchCompileError(f"{what} contains a NUL byte")
    return raw


def _words(values: Iterable[str], what: str) -> bytes:
    """*values* as sh words for ``eval "set -- ..."``."""
    return b" ".join(sh_quote(_encode(v, what)) for v in values)


def _eligible(process: LaunchProcess, platform: ApiVersion) -> bytes:
    if platform.less_than("0.15") or not process.exec_env or "*" in process.exec_env:
        return b"_cnb_eligible() {\n\treturn 0\n}\n"
    cases = b" | ".join(sh_quote(_encode(e, f"process type {process.type!r}: exec-env")) for e in process.exec_env)
    return b"_cnb_eligible() {\n\tcase $1 in\n\t%s) return 0 ;;\n\tesac\n\treturn 1\n}\n" % cases


def _process_file(process: LaunchProcess, compiler: _Compiler, app_dir: str, platform: ApiVersion) -> bytes:
    what = f"process type {process.type!r}"
    if not _PROCESS_TYPE.match(process.type) or process.type in (".", ".."):
        raise LaunchCompileError(f"{what}: a process type may only contain letters, digits, '.', '_' and '-'")
    if not process.command or not process.command[0]:
        raise LaunchCompileError(f"{what}: the command is empty")
    try:
        bp_api = ApiVersion.parse(process.buildpack_api)
    except CnbError as exc:
        raise LaunchCompileError(f"{what}: buildpack {process.buildpack_id!r}: {exc.message}") from exc
    append = platform.less_than("0.10") or (len(process.command) == 1 and bp_api.less_than("0.9"))
    workdir = posixpath.join(app_dir, process.working_dir) if process.working_dir else app_dir
    lines = [
        f"# cnb: launch environment of process type {process.type} (generated at export time)".encode(),
        b"_cnb_direct=" + (b"1" if process.direct else b"0"),
        b"_cnb_workdir=" + sh_quote(_encode(workdir, f"{what}: working dir")),
        b"_cnb_cmd=" + sh_quote(_words(process.command, f"{what}: command")),
        b"_cnb_args=" + sh_quote(_words(process.args, f"{what}: args")),
        b"_cnb_user_args=" + (b"append" if append else b"replace"),
    ]
    return b"\n".join(lines) + b"\n" + _eligible(process, platform) + compiler.common(process.type)


def compile_launch_env(
    buildpacks: Sequence[LaunchBuildpack],
    processes: Sequence[LaunchProcess],
    *,
    app_dir: str = "/workspace",
    layers_dir: str = "/layers",
    platform_api: str = "0.15",
    warn: Warn | None = None,
) -> dict[str, bytes]:
    """The files the sh launcher reads, as ``{path relative to <layers>/config/launch: contents}``.

    *buildpacks* are in metadata order with their launch layers (host dirs, read now); *app_dir* and *layers_dir*
    are the paths inside the image. Implements docs/spec-notes.md §9.1 (arg rules), §9.2 steps 3-8, §3.8, §3.11, §3.12.
    Warnings (skipped variables) go to *warn*, or to this module's logger.
    """
    report: Warn = warn or _log_warning
    platform = ApiVersion.parse(platform_api)
    compiler = _Compiler(buildpacks, layers_dir, report)
    out = {DIRECT_FILE: b"# cnb: launch environment of user-provided commands (generated at export time)\n"}
    out[DIRECT_FILE] += compiler.common("")
    for process in processes:
        out[process_file(process.type)] = _process_file(process, compiler, app_dir, platform)
    return out


def static_launch_env(
    buildpacks: Sequence[LaunchBuildpack],
    process_type: str,
    base_env: Mapping[str, str],
    *,
    layers_dir: str = "/layers",
    warn: Warn | None = None,
) -> dict[str, str]:
    """The environment the launcher builds for *process_type* ("" = a user command) from *base_env*, before exec.d
    (docs/spec-notes.md §9.2 steps 1 and 3), computed here instead of at run time.

    For docs/design.md §3 decision 3: a run image without ``/bin/sh`` whose process needs no exec.d
    (:func:`has_exec_d`) and is direct gets this environment in its image config. Values are str with
    surrogateescape for bytes that are not UTF-8.
    """
    env = {k: v for k, v in base_env.items() if k not in STRIPPED_VARS}
    if "PATH" in env:
        dropped = {PROCESS_DIR, PROCESS_DIR + "/", LIFECYCLE_DIR, LIFECYCLE_DIR + "/"}
        env["PATH"] = ":".join(e for e in env["PATH"].split(":") if e not in dropped)
    apply_env_ops(env, _Compiler(buildpacks, layers_dir, warn or _log_warning).ops(process_type))
    return env


def has_exec_d(buildpacks: Sequence[LaunchBuildpack], process_type: str) -> bool:
    """True if launching *process_type* runs any exec.d program (§9.2 step 4)."""
    return bool(_Compiler(buildpacks, "/layers", _log_warning).scripts("exec.d", process_type))
