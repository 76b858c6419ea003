"""typer views of the option table (:mod:`cnbplatform.cli.options`).

The table's commands become typer commands whose parameters are generated from it (:func:`add_table_commands`);
the other commands are declared with typer and take the table's options through :func:`typer_option`. Help follows
click's conventions throughout (:func:`conventional_help`): a flag shows no value, a value shows its name
(``NAME``, not ``<str>``), arguments read ``IMAGE``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer
import typer.core

from cnbplatform.cli import options
from cnbplatform.cli.options import Argument, Command, Option

_ANNOTATIONS: dict[str, Any] = {
    "flag": bool,
    "count": int,
    "str": str,
    "int": int,
    "float": float,
    "path": Path,
    "list": list[str],
    "paths": list[Path],
}


def _annotation(option: Option) -> Any:
    annotation = _ANNOTATIONS[option.kind]
    return annotation | None if option.default is None and option.kind not in ("list", "paths") else annotation


def _argument(argument: Argument) -> inspect.Parameter:
    info = typer.Argument(None if not argument.required else ..., metavar=argument.metavar, help=argument.help)
    annotation = list[str] if argument.many else str
    return inspect.Parameter(argument.dest, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _option(option: Option, command: str) -> inspect.Parameter:
    info = typer_option(command, option.dest)
    return inspect.Parameter(option.dest, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=_annotation(option))


def typer_command(command: Command) -> Callable[..., None]:
    """A typer command with the table's parameters of *command*; it calls the same body as the fast path."""
    arguments = options.arguments_of(command.name)

    def run(**values: Any) -> None:
        from cnbplatform.cli import commands

        kwargs = {key: list(value) if isinstance(value, tuple) else value for key, value in values.items()}
        for argument in arguments:
            if argument.many and not kwargs[argument.dest]:
                kwargs[argument.dest] = None
        code = getattr(commands, command.body)(**dict(command.fixed), **kwargs)
        raise typer.Exit(code or 0)

    parameters = [_argument(a) for a in arguments]
    parameters += [_option(o, command.name) for o in options.options_of(command.name)]
    run.__signature__ = inspect.Signature(parameters, return_annotation=None)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    run.__doc__ = command.help
    run.__name__ = command.name.split()[-1]
    return run


def add_table_commands(apps: dict[str, typer.Typer]) -> None:
    """Register the table's commands in the typer apps (*apps*: ``""`` the root, ``"image"`` its sub-app …)."""
    for command in options.COMMANDS:
        *parents, name = command.name.split()
        apps[" ".join(parents)].command(name, help=command.help)(typer_command(command))


def typer_option(command: str, dest: str, help: str | None = None, **extra: Any) -> Any:
    """A typer option for a command declared with typer, from the table (its default, names and help)."""
    option = options.option(command, dest)
    default: Any = ... if option.required else option.default
    if option.kind in ("list", "paths"):
        default = []
    if option.kind == "path" and isinstance(default, str):
        default = Path(default)
    names = [f"{option.name}/{option.off}" if option.off else option.name, *option.aliases]
    return typer.Option(
        default,
        *names,
        help=help or _help(option, command),
        count=option.kind == "count",
        metavar=option.metavar,
        show_default=option.show_default,
        **extra,
    )


def _help(option: Option, command: str) -> str:
    """The help text; a lifecycle phase's option names its variable and the lifecycle's default."""
    if not command.startswith("lifecycle ") or not (option.env or option.env_default):
        return option.help
    shown = [*([option.env] if option.env else []), *([f"default: {option.env_default}"] if option.env_default else [])]
    return f"{option.help}  [{'; '.join(shown)}]"


_CLICK_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH"}


def conventional_help(group: Any) -> None:
    """click's conventions in every command's help: arguments read ``IMAGE`` (typer shows ``{image}``), a value
    shows ``TEXT``/``INTEGER``/``PATH`` (typer shows ``<str>``), a flag nothing. *group* is typer's click group."""
    for command in group.commands.values():
        if hasattr(command, "commands"):
            conventional_help(command)
        for param in command.params:
            if param.metavar is not None and not isinstance(param, typer.core.TyperArgument):
                continue
            if isinstance(param, typer.core.TyperArgument):
                _conventional_argument(param)
            elif isinstance(param, typer.core.TyperOption) and not param.is_flag and not param.count:
                kind = param.bare_type().removeprefix("list[").removesuffix("]")
                param.metavar = _CLICK_NAMES.get(kind, kind.upper())


def _conventional_argument(param: typer.core.TyperArgument) -> None:
    """``IMAGE`` in usage (``[IMAGE]...`` when optional and repeatable) and in help, without typer's braces and
    types (``{image}``, ``<str>``)."""
    name = param.metavar or (param.name or "").upper()
    usage = name if param.required else f"[{name}]"
    usage += "..." if param.nargs != 1 else ""
    text = param.help or ""
    setattr(param, "get_usage_pieces", lambda ctx: [usage])  # noqa: B010 (this parameter only)
    setattr(param, "get_help_record", lambda ctx: (name, text))  # noqa: B010
