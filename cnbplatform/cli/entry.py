"""The ``cnb`` entry point: a fast argv path for the hot commands, typer for everything else.

Importing typer, building its command tree and parsing through it costs about 0.2 s, as much as a whole no-op
rebuild. The commands people run in loops (``build``, ``rebase``, ``run``, ``image copy``, ``lifecycle
<phase>``) are parsed here from a table of their options instead and call the same bodies
(:mod:`cnbplatform.cli.commands`) the typer commands call. The table mirrors the typer signatures exactly
(``tests/cli/test_entry.py`` compares them). Anything this parser is not sure about (``--help``, an unknown or
malformed option, a missing argument, a value that does not convert) goes to typer, which gives the usual help
and usage errors: the fast path never rejects a command line itself.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnbplatform.errors import CnbError

# An option: dest -> (names, kind, default). Kinds: str, path, int, float, flag (True when given; a
# "--x/--no-x" name also sets False), list and listpath (repeatable). A positional: (dest, kind, required); kind
# "list" takes every remaining positional.
Options = dict[str, tuple[tuple[str, ...], str, Any]]
Positionals = tuple[tuple[str, str, bool], ...]

INSECURE: Options = {"insecure_registry": (("--insecure-registry",), "list", [])}

BUILD: tuple[Positionals, Options] = (
    (("image", "str", True),),
    {
        "builder": (("--builder", "-B"), "str", None),
        "path": (("--path", "-p"), "path", "."),
        "publish": (("--publish",), "flag", False),
        "daemon": (("--daemon",), "flag", False),
        "tag": (("--tag", "-t"), "list", []),
        "run_image": (("--run-image",), "str", None),
        "env": (("--env", "-e"), "list", []),
        "env_file": (("--env-file",), "listpath", []),
        "buildpack": (("--buildpack", "-b"), "list", []),
        "descriptor": (("--descriptor", "-d"), "path", None),
        "cache_dir": (("--cache-dir",), "path", None),
        "cache_image": (("--cache-image",), "str", None),
        "clear_cache": (("--clear-cache",), "flag", False),
        "previous_image": (("--previous-image",), "str", None),
        "default_process": (("--default-process",), "str", None),
        "sbom_output_dir": (("--sbom-output-dir",), "path", None),
        "report_output_dir": (("--report-output-dir",), "path", None),
        "creation_time": (("--creation-time",), "str", None),
        "pull_policy": (("--pull-policy",), "str", "if-not-present"),
        "network": (("--network",), "str", "private"),
        "volume": (("--volume",), "list", []),
        **INSECURE,
        "sandbox": (("--sandbox",), "str", "bwrap"),
        "detect_timeout": (("--detect-timeout",), "float", 600.0),
        "host_ca_certs": (("--host-ca-certs",), "path", None),
        "dockerfile": (("--dockerfile",), "path", None),
        "using": (("--using",), "str", None),
        "keep_workspace": (("--keep-workspace",), "flag", False),
    },
)

REBASE: tuple[Positionals, Options] = (
    (("image", "str", True),),
    {
        "run_image": (("--run-image",), "str", None),
        "publish": (("--publish",), "flag", False),
        "daemon": (("--daemon",), "flag", False),
        "force": (("--force",), "flag", False),
        "previous_image": (("--previous-image",), "str", None),
        "tag": (("--tag", "-t"), "list", []),
        "report_output_dir": (("--report-output-dir",), "path", None),
        "creation_time": (("--creation-time",), "str", None),
        **INSECURE,
    },
)

RUN: tuple[Positionals, Options] = (
    (("image", "str", True), ("args", "list", False)),
    {
        "process": (("--process", "-p"), "str", None),
        "env": (("--env", "-e"), "list", []),
        "network": (("--network",), "str", "host"),
        **INSECURE,
    },
)

COPY: tuple[Positionals, Options] = (
    (("source", "str", True), ("destination", "str", True)),
    {"platform": (("--platform",), "str", None), **INSECURE},
)

RESOLVE: tuple[Positionals, Options] = (
    (),
    {
        "file": (("--file", "-f"), "list", []),
        "output": (("--output", "-o"), "path", None),
        "lock_output": (("--lock-output",), "path", None),
        "imgpkg_lock_output": (("--imgpkg-lock-output",), "path", None),
        "parallel": (("--parallel",), "int", 16),
        **INSECURE,
    },
)

_PHASE_PATHS = (
    ("platform_api", "--platform-api"), ("layers", "--layers"), ("app_dir", "--app"), ("platform", "--platform"),
    ("buildpacks", "--buildpacks"), ("build_config", "--build-config"), ("analyzed", "--analyzed"),
    ("group", "--group"), ("plan", "--plan"), ("order", "--order"), ("run", "--run"), ("stack", "--stack"),
    ("system", "--system"),
    ("report", "--report"), ("project_metadata", "--project-metadata"), ("cache_dir", "--cache-dir"),
    ("cache_image", "--cache-image"), ("previous_image", "--previous-image"), ("run_image", "--run-image"),
)  # fmt: skip
PHASE: tuple[Positionals, Options] = (
    (("images", "list", False),),
    {
        **{dest: ((name,), "str", None) for dest, name in _PHASE_PATHS},
        "uid": (("--uid",), "int", None),
        "gid": (("--gid",), "int", None),
        "skip_layers": (("--skip-layers/--no-skip-layers",), "flag", None),
        "skip_restore": (("--skip-restore",), "flag", None),
        "process_type": (("--process-type",), "str", None),
        "launcher": (("--launcher",), "str", None),
        "daemon": (("--daemon",), "flag", None),
        "parallel": (("--parallel",), "flag", None),
        "tag": (("--tag",), "list", []),
        "sandbox": (("--sandbox",), "str", None),
        "build_image": (("--build-image",), "str", None),
        "detect_timeout": (("--detect-timeout",), "float", None),
        "build_timeout": (("--build-timeout",), "float", None),
        "network": (("--network/--no-network",), "flag", None),
        "log_level": (("--log-level",), "str", None),
        "force": (("--force",), "flag", None),
        **INSECURE,
    },
)
PHASES = ("analyze", "detect", "restore", "build", "export", "create", "rebase", "launch")


# command -> (its options, the platform module it runs, its body in cnbplatform.cli.commands)
_COMMANDS: dict[str, tuple[tuple[Positionals, Options], str, str]] = {
    "build": (BUILD, "cnbplatform.platform.build", "build_command"),
    "rebase": (REBASE, "cnbplatform.platform.rebase", "rebase_command"),
    "run": (RUN, "cnbplatform.platform.run", "run_command"),
    "image copy": (COPY, "cnbplatform.platform.images", "copy_command"),
    "resolve": (RESOLVE, "cnbplatform.resolve.run", "resolve_command"),
}


class Fallback(Exception):
    """The fast parser is not sure: let typer parse this command line."""


def parse(argv: Sequence[str], spec: tuple[Positionals, Options]) -> dict[str, Any]:
    """The keyword arguments of the command for *argv* (the words after the command name), as typer would
    pass them; raises Fallback for anything but a plain, valid command line."""
    positionals, options = spec
    by_name: dict[str, tuple[str, str, bool]] = {}
    values: dict[str, Any] = {}
    for dest, (names, kind, default) in options.items():
        for name in names:
            on, _, off = name.partition("/")
            by_name[on] = (dest, kind, True)
            if off:
                by_name[off] = (dest, kind, False)
        if isinstance(default, list):
            values[dest] = list(default)
        else:  # a path default is written as text in the table, as typer shows it; typer passes a Path
            values[dest] = _convert(kind, default) if kind == "path" and isinstance(default, str) else default
    words: list[str] = []
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        if word == "--":
            words += rest
            break
        if not word.startswith("-") or word == "-":
            words.append(word)
            continue
        name, eq, inline = word.partition("=")
        if name not in by_name or (eq and not name.startswith("--")):
            raise Fallback(word)
        dest, kind, enabled = by_name[name]
        if kind == "flag":
            if eq:
                raise Fallback(word)
            values[dest] = enabled
            continue
        if eq:
            text = inline
        elif rest:
            text = rest.pop(0)
        else:
            raise Fallback(word)
        value = _convert(kind, text)
        if kind.startswith("list"):
            values[dest].append(value)
        else:
            values[dest] = value
    for dest, kind, required in positionals:
        if kind == "list":
            values[dest] = words or None
            words = []
        elif words:
            values[dest] = words.pop(0)
        elif required:
            raise Fallback(dest)
        else:
            values[dest] = None
    if words:
        raise Fallback(words[0])
    return values


def _convert(kind: str, text: str) -> Any:
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise Fallback(text) from None
    return Path(text) if kind in ("path", "listpath") else text


def _root_options(argv: list[str]) -> tuple[int, bool, list[str]]:
    """Strip the root options typer's callback takes (-v, -q) from the front of *argv*."""
    verbose, quiet = 0, False
    while argv:
        word = argv[0]
        if word in ("-q", "--quiet"):
            quiet = True
        elif word == "--verbose":
            verbose += 1
        elif len(word) > 1 and word[0] == "-" and set(word[1:]) == {"v"}:
            verbose += len(word) - 1
        else:
            break
        argv = argv[1:]
    return verbose, quiet, argv


def fast_command(argv: Sequence[str]) -> Callable[[], int] | None:
    """The hot command *argv* asks for, ready to run, or None when typer should handle it."""
    verbose, quiet, words = _root_options(list(argv))
    head = words[: words.index("--")] if "--" in words else words
    if not words or "--help" in head:
        return None
    from cnbplatform.cli import commands

    command, args = words[0], words[1:]
    if command == "image" and args[:1] == ["copy"]:
        command, args = "image copy", args[1:]
    try:
        if command in _COMMANDS:
            spec, preload, body = _COMMANDS[command]
            kwargs = parse(args, spec)
            call: Callable[[], int | None] = lambda: getattr(commands, body)(**kwargs)  # noqa: E731
        elif command == "lifecycle" and args[:1] and args[0] in PHASES:
            preload = "cnbplatform.platform.lifecycle_run"
            kwargs = parse(args[1:], PHASE)
            phase = args[0]
            images, tag, insecure = kwargs.pop("images"), kwargs.pop("tag"), kwargs.pop("insecure_registry")
            kwargs["app"] = kwargs.pop("app_dir")
            call = lambda: commands.phase_command(phase, kwargs, images, tag, insecure)  # noqa: E731
        else:
            return None
    except Fallback:
        return None

    def run() -> int:
        from cnbplatform.cli.output import OPTIONS, setup_logging

        OPTIONS.quiet = quiet
        setup_logging(verbose)
        _import_quietly(preload, "cnbplatform.platform.context")
        return call() or 0

    return run


def _import_quietly(*modules: str) -> None:
    """Import the command's modules while the cyclic garbage collector is still paused (``main`` pauses it:
    imports make thousands of objects and no garbage, so collections during them are wasted time), then freeze
    what start-up made, so later collections skip it, and let the collector run."""
    import importlib

    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        gc.freeze()
        gc.enable()


def _exit_now(code: int) -> None:
    """Exit without tearing the interpreter down (about 10 ms for the modules of a build): flush the standard
    streams and run the atexit hooks (temp-dir finalizers) first. With other threads still running, exit normally
    so they are joined as usual."""
    import atexit
    import os
    import threading

    if threading.active_count() > 1:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # stdout closed early (a pipe): as Python's own shutdown would report
    atexit._run_exitfuncs()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """``cnb``: the fast path when it applies, else the typer app; CnbError becomes one line and its exit code, and
    any other exception one ``internal error`` line and exit 1 (``-v`` adds the traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    gc.disable()  # until the command's modules are imported
    command = fast_command(args)
    try:
        if command is None:
            gc.enable()
            from cnbplatform.cli.main import app

            app(args=args, prog_name="cnb")
            return
        code = command()
    except CnbError as exc:
        from cnbplatform.cli.output import render_error

        render_error(exc)
        code = exc.exit_code
        if command is None:
            sys.exit(code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    except BrokenPipeError:  # the reader went away (`cnb … | head`): end quietly, as a SIGPIPE would
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(141)
    except OSError as exc:
        from cnbplatform.cli.output import render_error

        render_error(exc)
        sys.exit(1)
    except Exception as exc:  # the last line of defence: a bug in cnb, whatever the input was
        from cnbplatform.cli.output import render_internal_error

        render_internal_error(exc)
        sys.exit(1)
    if argv is None:  # the real process, not a caller in Python
        _exit_now(code)
    sys.exit(code)


if __name__ == "__main__":
    main()
