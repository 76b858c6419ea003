"""The Go lifecycle's command line: ``/cnb/lifecycle/<phase> -name=value … IMAGE``.

Tekton's buildpacks tasks, kpack's build pod and pack call the lifecycle's phase executables (``analyzer``,
``detector``, …) with Go ``flag`` syntax: one or two dashes, ``-name=value`` or ``-name value``, booleans as
``-flag`` or ``-flag=true|false``, repeatable flags (``-tag``) accumulating, and positional arguments after the
first word that is not a flag. An empty value means "not given" (Tekton passes ``-cache-image=`` and ``-run-image=``
for unset parameters), so the ``CNB_*`` variable and then the default apply, as with the Go lifecycle.

The parser here is generic (it takes flag specs); :func:`phase_specs` makes the specs of a phase from cnb's own
option table (the same options as its double-dash command line), plus the few flags the Go lifecycle has and cnb
accepts without using. The phases and their flags: https://github.com/buildpacks/spec/blob/main/platform.md
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from cnbplatform.errors import CnbError

GoKind = Literal["bool", "string", "int", "float", "list"]

EXIT_INVALID_ARGS = 3
"""The Go lifecycle's exit code for a command line it cannot parse (``CodeForInvalidArgs``)."""


class GoFlagError(CnbError):
    """A command line the Go ``flag`` package would reject."""

    exit_code = EXIT_INVALID_ARGS


@dataclass(frozen=True)
class GoFlag:
    name: str
    """Spelled without dashes: ``cache-image``."""
    kind: GoKind
    dest: str | None
    """The keyword of cnb's phase it sets; None: accepted for compatibility and not used."""


@dataclass
class GoCommandLine:
    values: dict[str, object] = field(default_factory=dict)
    """dest -> value for every flag given with a non-empty value (lists: every non-empty value, in order)."""
    positionals: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    """Flags given that cnb accepts and does not use (``-no-color``, ``-launch-cache``…)."""
    help: bool = False
    version: bool = False


_TRUE = ("1", "t", "T", "true", "TRUE", "True")
_FALSE = ("0", "f", "F", "false", "FALSE", "False")


def _bool(name: str, text: str) -> bool:
    """strconv.ParseBool, as Go's flag package uses it."""
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise GoFlagError(f'invalid boolean value "{text}" for -{name}: parse error')


def parse_go_flags(argv: Sequence[str], flags: Iterable[GoFlag]) -> GoCommandLine:
    """*argv* (the words after the program name) as Go's ``flag.Parse`` reads it with *flags* defined."""
    by_name = {flag.name: flag for flag in flags}
    line = GoCommandLine()
    rest = list(argv)
    while rest:
        word = rest[0]
        if len(word) < 2 or word[0] != "-":
            break
        rest.pop(0)
        if word == "--":
            break
        name = word[2:] if word.startswith("--") else word[1:]
        if not name or name[0] in "-=":
            raise GoFlagError(f"bad flag syntax: {word}")
        name, has_value, text = name.partition("=")
        if name in ("h", "help") and name not in by_name:
            line.help = True
            continue
        if name == "version" and name not in by_name:
            line.version = True
            continue
        flag = by_name.get(name)
        if flag is None:
            raise GoFlagError(f"flag provided but not defined: -{name}")
        if flag.kind == "bool":
            value: object = _bool(name, text) if has_value else True
        else:
            if not has_value:
                if not rest:
                    raise GoFlagError(f"flag needs an argument: -{name}")
                text = rest.pop(0)
            if text == "":
                continue  # empty means unset: the variable, then the default, apply
            value = _convert(flag, text)
        if flag.dest is None:
            line.ignored.append(name)
        elif flag.kind == "list":
            existing = line.values.setdefault(flag.dest, [])
            assert isinstance(existing, list)
            existing.append(value)
        else:
            line.values[flag.dest] = value
    line.positionals = rest
    return line


def _convert(flag: GoFlag, text: str) -> object:
    try:
        if flag.kind == "int":
            return int(text, 0)
        if flag.kind == "float":
            return float(text)
    except ValueError:
        raise GoFlagError(f'invalid value "{text}" for flag -{flag.name}: parse error') from None
    return text


# The Go lifecycle's phase executables: name -> (cnb's phase, the flags the Go lifecycle defines for it at
# Platform API 0.7-0.15; https://github.com/buildpacks/lifecycle cmd/lifecycle). ``version`` and ``log-level``
# and ``no-color`` are defined for every phase.
_COMMON = ("log-level", "no-color")
_IMAGES = ("insecure-registry", "layout", "layout-dir", "daemon", "uid", "gid")
EXECUTABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "analyzer": ("analyze", (*_COMMON, *_IMAGES, "analyzed", "cache-image", "launch-cache", "layers",
                             "previous-image", "run", "stack", "run-image", "skip-layers", "tag", "cache-dir",
                             "group")),
    "detector": ("detect", (*_COMMON, "analyzed", "app", "buildpacks", "extensions", "generated", "group", "layers",
                            "order", "plan", "platform", "run", "system", "build-config")),
    "restorer": ("restore", (*_COMMON, *_IMAGES, "analyzed", "build-image", "cache-dir", "cache-image", "group",
                             "layers", "skip-layers", "generated", "platform")),
    "extender": ("extend", (*_COMMON, "analyzed", "app", "buildpacks", "extended", "generated", "gid", "group",
                            "kaniko-cache-ttl", "kind", "layers", "plan", "platform", "uid", "build-config")),
    "builder": ("build", (*_COMMON, "analyzed", "app", "buildpacks", "group", "layers", "plan", "platform",
                          "build-config")),
    "exporter": ("export", (*_COMMON, *_IMAGES, "analyzed", "app", "cache-dir", "cache-image", "extended", "group",
                            "launch-cache", "launcher", "launcher-sbom", "layers", "parallel", "process-type",
                            "project-metadata", "report", "run", "stack", "run-image")),
    "creator": ("create", (*_COMMON, *_IMAGES, "app", "buildpacks", "cache-dir", "cache-image", "launch-cache",
                           "launcher", "layers", "order", "parallel", "platform", "previous-image", "process-type",
                           "project-metadata", "report", "run", "run-image", "skip-restore", "stack", "system",
                           "tag", "build-config")),
    "rebaser": ("rebase", (*_COMMON, *_IMAGES, "force", "image", "previous-image", "report", "run-image", "tag")),
    "launcher": ("launch", ()),
}  # fmt: skip
PHASE_OF = {name: phase for name, (phase, _) in EXECUTABLES.items()}

# Go lifecycle flags cnb accepts without using them (its kind of value in Go's flag package).
_UNUSED: dict[str, GoKind] = {
    "no-color": "bool",
    "launch-cache": "string",
    "layout": "bool",
    "layout-dir": "string",
    "launcher-sbom": "string",
    "extended": "string",
    "extensions": "string",
    "generated": "string",
    "kaniko-cache-ttl": "string",
    "kind": "string",
}
# Go names that are another spelling of one of cnb's options
_RENAMED = {"image": "run-image"}
_KINDS: dict[str, GoKind] = {
    "flag": "bool",
    "str": "string",
    "path": "string",
    "int": "int",
    "float": "float",
    "list": "list",
    "listpath": "list",
    "paths": "list",
}


def phase_specs(executable: str, options: Mapping[str, tuple[str, str]]) -> tuple[str, tuple[GoFlag, ...]]:
    """cnb's phase for the Go executable *executable* and its flags. *options* is cnb's option table for that
    phase: long name -> (dest, kind)."""
    phase, names = EXECUTABLES[executable]
    specs = []
    for name in names:
        own = options.get("--" + _RENAMED.get(name, name))
        if own is not None:
            specs.append(GoFlag(name, _KINDS[own[1]], own[0]))
        elif name in _UNUSED:
            specs.append(GoFlag(name, _UNUSED[name], None))
        else:  # a flag of the Go lifecycle missing from both: the table lost an option
            raise KeyError(f"{executable}: -{name} is neither a cnb option nor a known unused flag")
    return phase, tuple(specs)


def usage(executable: str, flags: Iterable[GoFlag]) -> str:
    """Go ``flag``-style usage text."""
    lines = [f"Usage of {executable}:"]
    for flag in sorted(flags, key=lambda f: f.name):
        value = "" if flag.kind == "bool" else " value"
        note = "" if flag.dest else " (accepted, not used by cnb)"
        lines.append(f"  -{flag.name}{value}{note}")
    return "\n".join(lines) + "\n"
