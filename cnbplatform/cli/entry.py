"""The ``cnb`` entry point: a fast argv path for the hot commands, click (through typer) for everything else.

Importing typer and click, building the command tree and parsing through it costs about 0.2 s, as much as a
whole no-op rebuild. The commands people run in loops (``build``, ``rebase``, ``run``, ``image copy``,
``resolve``, ``lifecycle <phase>``) are parsed here from the option table (:mod:`cnbplatform.cli.options`), the
same table their click commands are generated from, and call the same bodies (:mod:`cnbplatform.cli.commands`).
Anything this parser is not sure about (``--help``, an unknown or malformed option, a missing argument, a value
that does not convert) goes to click, which gives the usual help and usage errors: the fast path never rejects
a command line itself.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cnbplatform.cli.options import Option, arguments_of, command_named, option, options_of
from cnbplatform.errors import CnbError


class Fallback(Exception):
    """The fast parser is not sure: let click parse this command line."""


def parse(argv: Sequence[str], command: str) -> dict[str, Any]:
    """The keyword arguments of *command* for *argv* (the words after the command's name), as its click command
    passes them; raises Fallback for anything but a plain, valid command line."""
    by_name: dict[str, tuple[Option, bool]] = {}
    values: dict[str, Any] = {}
    for opt in options_of(command):
        for name in (opt.name, *opt.aliases):
            by_name[name] = (opt, True)
        if opt.off:
            by_name[opt.off] = (opt, False)
        if opt.kind in ("list", "paths"):
            values[opt.dest] = []
        elif opt.required:
            values[opt.dest] = None
        else:  # a path default is text in the table, as help shows it; the command gets a Path
            values[opt.dest] = _convert(opt.kind, opt.default) if opt.kind == "path" else opt.default
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
        opt, enabled = by_name[name]
        if opt.kind in ("flag", "count"):
            if eq or opt.kind == "count":
                raise Fallback(word)
            values[opt.dest] = enabled
            continue
        if eq:
            text = inline
        elif rest:
            text = rest.pop(0)
        else:
            raise Fallback(word)
        value = _convert(opt.kind, text)
        if opt.kind in ("list", "paths"):
            values[opt.dest].append(value)
        else:
            values[opt.dest] = value
    for argument in arguments_of(command):
        if argument.many:
            values[argument.dest] = words or None
            words = []
        elif words:
            values[argument.dest] = words.pop(0)
        elif argument.required:
            raise Fallback(argument.dest)
        else:
            values[argument.dest] = None
    if words or any(opt.required and values[opt.dest] is None for option in options_of(command)):
        raise Fallback(command)
    return values


def _convert(kind: str, text: object) -> Any:
    if not isinstance(text, str):
        return text
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise Fallback(text) from None
    return Path(text) if kind in ("path", "paths") else text


def _root_options(argv: list[str]) -> tuple[int, bool, list[str]]:
    """Strip the root options the click group takes (-v, -q) from the front of *argv*."""
    verbose, quiet = option("cnb", "verbose"), option("cnb", "quiet")
    count, silent = 0, False
    while argv:
        word = argv[0]
        if word in (quiet.name, *quiet.aliases):
            silent = True
        elif word == verbose.name:
            count += 1
        elif len(word) > 1 and word[0] == "-" and set(word[1:]) == {"v"}:
            count += len(word) - 1
        else:
            break
        argv = argv[1:]
    return count, silent, argv


def fast_command(argv: Sequence[str]) -> Callable[[], int] | None:
    """The hot command *argv* asks for, ready to run, or None when click should handle it."""
    verbose, quiet, words = _root_options(list(argv))
    head = words[: words.index("--")] if "--" in words else words
    if not words or "--help" in head:
        return None
    if words[:1] == ["lifecycle"] and len(words) > 1 and _go_spelled(words[1], words[2:]):
        return _go_phase(verbose, quiet, words[1], words[2:])
    command = command_named(tuple(words[:1])) or command_named(tuple(words[:2]))
    if command is None:
        return None
    try:
        kwargs = parse(words[len(command.name.split()) :], command.name)
    except Fallback:
        return None

    def run() -> int:
        from cnbplatform.cli import commands
        from cnbplatform.cli.output import OPTIONS, setup_logging

        OPTIONS.quiet = quiet
        setup_logging(verbose)
        _import_quietly(command.preload, "cnbplatform.platform.context")
        code: int | None = getattr(commands, command.body)(**dict(command.fixed), **kwargs)
        return code or 0

    return run


def _go_spelled(name: str, words: list[str]) -> bool:
    """``cnb lifecycle creator …`` (a Go executable's name) or ``cnb lifecycle create -app=/workspace …``.
    Decided without the Go flag tables (:mod:`cnbplatform.cli.goflags`): only a Go spelling needs them."""
    from cnbplatform.cli.options import GO_EXECUTABLES, PHASES

    if name in GO_EXECUTABLES:
        return True
    if name not in PHASES or name == "launch":  # launch's words are the command to run
        return False
    return go_style(words)


def go_style(words: Sequence[str]) -> bool:
    """Whether a ``cnb lifecycle <phase>`` command line is spelled the Go way (``-app=/workspace``,
    ``-skip-restore=false``): a long name after a single dash, or a boolean with ``=``."""
    for word in words:
        if word == "--" or not word.startswith("-"):
            continue
        if not word.startswith("--") and len(word.partition("=")[0]) > 2:
            return True
    return False


def _go_phase(verbose: int, quiet: bool, name: str, words: list[str]) -> Callable[[], int]:
    """A phase spelled the Go lifecycle's way, parsed with Go's flag syntax (errors: exit 3, as the Go lifecycle)."""

    def run() -> int:
        from cnbplatform.cli.golifecycle import executable_for, run_executable
        from cnbplatform.cli.output import OPTIONS, setup_logging

        OPTIONS.quiet = quiet
        setup_logging(verbose)
        _import_quietly("cnbplatform.platform.lifecycle_run", "cnbplatform.platform.context")
        return run_executable(executable_for(name), words, every_option=True)

    return run


def _import_quietly(*modules: str) -> None:
    """Import the command's modules while the cyclic garbage collector is still paused (``main`` pauses it:
    imports make thousands of objects and no garbage, so collections during them are wasted time), then let the
    collector run."""
    import importlib

    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        gc.enable()


def main(argv: Sequence[str] | None = None) -> None:
    """``cnb``: the fast path when it applies, else the click command; CnbError becomes one line and its exit code,
    and any other exception one ``internal error`` line and exit 1 (``-v`` adds the traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    gc.disable()  # until the command's modules are imported
    command = None
    try:
        command = fast_command(args)
        if command is None:
            gc.enable()
            from cnbplatform.cli.main import command as click_command

            click_command().main(args=args, prog_name="cnb")
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
    sys.exit(code)


if __name__ == "__main__":
    main()
