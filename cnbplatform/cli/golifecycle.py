"""``/cnb/lifecycle/<phase>``: cnb's lifecycle under the Go lifecycle's executable names and flags.

One program, dispatched on the name it was started as (``analyzer``, ``detector``, ``restorer``, ``builder``,
``exporter``, ``creator``, ``rebaser``, ``launcher``, ``extender``), as the Go lifecycle's multi-call binary is.
The flags are parsed with Go's syntax (:mod:`cnbplatform.cli.goflags`) into the same keywords ``cnb lifecycle
<phase>`` passes, so both run the same phase with the same ``CNB_*`` variables and defaults. Buildpacks run
directly as this process's user (the host sandbox): in a build container the phases run as the CNB user.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cnbplatform.cli.goflags import (
    EXECUTABLES,
    GoCommandLine,
    GoFlag,
    GoFlagError,
    GoKind,
    parse_go_flags,
    phase_specs,
    usage,
)
from cnbplatform.errors import CnbError

EXIT_EXTEND = 1


def lifecycle_options() -> dict[str, tuple[str, str]]:
    """cnb's options of ``lifecycle <phase>`` (:mod:`cnbplatform.cli.options`): long name -> (keyword, kind)."""
    from cnbplatform.cli.options import options_of

    return {option.name: (option.dest, option.kind) for option in options_of("lifecycle create")}


def specs_for(executable: str) -> tuple[str, tuple[GoFlag, ...]]:
    return phase_specs(executable, lifecycle_options())


def executable_for(name: str) -> str:
    """The Go executable for a ``cnb lifecycle`` phase name (``create`` -> ``creator``); Go names stay."""
    for executable, (phase, _flags) in EXECUTABLES.items():
        if name in (phase, executable):
            return executable
    return name


def parse_phase(
    executable: str, words: Sequence[str], *, every_option: bool = False
) -> tuple[str, GoCommandLine, tuple[GoFlag, ...]]:
    """Parse *words* with the Go flags of *executable*; *every_option* (``cnb lifecycle <phase>``) also accepts
    cnb's own phase options (``-sandbox``, ``-network``) in Go syntax."""
    phase, flags = specs_for(executable)
    if every_option:
        known = {flag.name for flag in flags}
        flags += tuple(
            GoFlag(name[2:], _GO_KIND.get(kind, "string"), dest)
            for name, (dest, kind) in lifecycle_options().items()
            if name[2:] not in known
        )
    return phase, parse_go_flags(words, flags), flags


_GO_KIND: dict[str, GoKind] = {"flag": "bool", "int": "int", "float": "float", "list": "list"}


def extend(line: GoCommandLine) -> int:
    """The extender: cnb does not apply image extensions. With no Dockerfiles to apply there is nothing to do;
    asked to apply one, it says so and fails."""
    layers = Path(str(line.values.get("layers") or os.environ.get("CNB_LAYERS_DIR") or "/layers"))
    generated = Path(os.environ.get("CNB_GENERATED_DIR") or layers / "generated")
    dockerfiles = sorted(generated.glob("*/*/Dockerfile")) if generated.is_dir() else []
    if not dockerfiles:
        sys.stderr.write("extender: no Dockerfiles in generated dir; nothing to extend\n")
        return 0
    raise CnbError(
        f"extender: image extensions are not supported by cnb's lifecycle (asked to apply {dockerfiles[0]}); "
        "use a builder without extensions",
        exit_code=EXIT_EXTEND,
    )


def run_executable(executable: str, words: Sequence[str], *, every_option: bool = False) -> int:
    """Run the Go executable *executable* with the command line *words*; returns the exit code."""
    from cnbplatform import __version__
    from cnbplatform.cli.commands import phase_command

    if executable not in EXECUTABLES:
        known = ", ".join(EXECUTABLES)
        raise GoFlagError(f"unknown lifecycle executable {executable!r} (expected one of {known})")
    if executable == "launcher":  # the launcher takes no flags: everything is the command
        return phase_command("launch", {}, tuple(words), (), ())
    phase, line, flags = parse_phase(executable, words, every_option=every_option)
    if line.help:
        sys.stderr.write(usage(executable, flags))
        return 0
    if line.version:
        sys.stdout.write(f"{__version__}\n")
        return 0
    if phase == "extend":
        return extend(line)
    values = dict(line.values)
    tags = values.pop("tag", [])
    insecure = values.pop("insecure_registry", [])
    assert isinstance(tags, list) and isinstance(insecure, list)
    return phase_command(phase, values, tuple(line.positionals), tuple(tags), tuple(insecure))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry of the phase executables: the phase is the base name of argv[0] (or the first argument when
    started as ``lifecycle``)."""
    args = list(sys.argv if argv is None else argv)
    executable = os.path.basename(args[0]) if args else "lifecycle"
    words = args[1:]
    if executable not in EXECUTABLES and words:
        executable, words = os.path.basename(words[0]), words[1:]
    try:
        code = run_executable(executable, words)
    except CnbError as exc:
        from cnbplatform.cli.output import render_error

        render_error(exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        code = 130
    except OSError as exc:
        from cnbplatform.cli.output import render_error

        render_error(exc)
        code = 1
    except Exception as exc:  # a bug in cnb, whatever the input was
        from cnbplatform.cli.output import render_internal_error

        render_internal_error(exc)
        code = 1
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
