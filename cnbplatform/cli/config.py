"""``cnb config``: default builder, trusted builders, registry mirrors and insecure registries."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer

from cnbplatform.cli.options import spelled
from cnbplatform.cli.output import out_console
from cnbplatform.cli.params import typer_option
from cnbplatform.errors import UsageError
from cnbplatform.platform.config import load_config, save_config
from cnbplatform.platform.context import home_from_env as _home

app = typer.Typer(rich_markup_mode=None, help="Settings kept in $CNB_HOME/config.toml.", no_args_is_help=True)


@app.command("default-builder")
def default_builder(
    name: str | None = typer.Argument(None, help="Builder to use when a build names none."),
) -> None:
    """Show or set the default builder."""
    config = load_config(_home())
    if name is None:
        out_console.print(config.default_builder or "(none)")
        return
    config.default_builder = _checked_builder(name)
    save_config(_home(), config)
    out_console.print(f"default builder: {name}")


@app.command("trusted-builders")
def trusted_builders(
    action: str = typer.Argument("list", help="list, add or remove"), name: str | None = typer.Argument(None)
) -> None:
    """List, add or remove trusted builders."""
    _edit_list("trusted_builders", action, name, _checked_builder)


@app.command("insecure-registries")
def insecure_registries(
    action: str = typer.Argument("list", help="list, add or remove"), name: str | None = typer.Argument(None)
) -> None:
    """Registries reached over plain HTTP (or TLS without verification)."""
    _edit_list("insecure_registries", action, name, _checked_host)


_MIRROR = spelled("config registry-mirrors", "mirror_option")


@app.command("registry-mirrors")
def registry_mirrors(
    action: str = typer.Argument("list", help="list, add or remove"),
    registry: str | None = typer.Argument(None, help="Registry host (e.g. docker.io)."),
    mirror: str | None = typer.Argument(None, help=f"Mirror host[/prefix] (add only; or {_MIRROR})."),
    mirror_option: str | None = typer_option("config registry-mirrors", "mirror_option"),
) -> None:
    """Mirrors to pull a registry's images through (registry host, or '*' for every registry)."""
    if mirror is not None and mirror_option is not None and mirror != mirror_option:
        raise typer.BadParameter(f"give the mirror once (as an argument or with {_MIRROR})")
    mirror = mirror or mirror_option
    config = load_config(_home())
    if action == "list":
        for key, value in sorted(config.registry_mirrors.items()):
            out_console.print(f"{key} -> {value}")
        return
    if registry is None or (action == "add" and mirror is None):
        raise typer.BadParameter("give the registry (and the mirror to add)")
    if action == "add":
        assert mirror is not None
        if registry != "*":
            _checked_host(registry)
        config.registry_mirrors[registry] = _checked_mirror(mirror)
    elif action == "remove":
        config.registry_mirrors.pop(registry, None)
    else:
        raise typer.BadParameter("action must be list, add or remove")
    save_config(_home(), config)


def _checked_builder(name: str) -> str:
    """*name* if it names a builder: a builder directory or builder.toml that exists, or an image address."""
    from cnbplatform.oci.address import parse_address

    if not Path(name).exists():
        parse_address(name)  # a bad name is refused here, not at the next build
    return name


def _checked_host(name: str) -> str:
    from cnbplatform.oci.reference import is_registry_host

    if not is_registry_host(name):
        raise UsageError(f"{name!r} is not a registry host (host or host:port)")
    return name


def _checked_mirror(mirror: str) -> str:
    """*mirror* if it is ``[https://]host[:port][/prefix]``, the form
    :func:`cnbplatform.oci.store.pull.mirror_for` reads."""
    from cnbplatform.oci.reference import parse_reference

    host, _, prefix = mirror.removeprefix("https://").removeprefix("http://").strip("/").partition("/")
    _checked_host(host)
    if prefix:
        try:
            parse_reference(f"{host}/{prefix}/image")
        except UsageError:
            raise UsageError(f"mirror {mirror!r}: {prefix!r} is not a repository prefix") from None
    return mirror


def _edit_list(field: str, action: str, name: str | None, check: Callable[[str], str]) -> None:
    config = load_config(_home())
    values: list[str] = getattr(config, field)
    if action == "list":
        for value in sorted(values):
            out_console.print(value)
        return
    if name is None:
        raise typer.BadParameter("give a name")
    if action == "add":
        values.append(check(name))
    elif action == "remove":
        if name in values:
            values.remove(name)
    else:
        raise typer.BadParameter("action must be list, add or remove")
    save_config(_home(), config)
