"""``project.toml``, the project descriptor (docs/spec-notes.md §11: schema 0.2, and pack's legacy schema 0.1).

What the platform uses: ``[io.buildpacks] include`` / ``exclude`` (gitignore patterns, mutually exclusive),
``builder``, ``[[io.buildpacks.group]]`` (replaces the builder's order with one group), ``pre.group`` /
``post.group`` (inserted at the start / end of every group), inline ``script`` buildpacks, and
``[[io.buildpacks.build.env]]`` (also the legacy ``[[io.buildpacks.env.build]]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnbplatform.files.common import SpecFileError, Table, read_toml
from cnbplatform.files.untrusted import UntrustedValueError, check_module_id, check_relative, check_version

#: uris that do not name a file of the app; every other uri is a path inside the project dir (it is the app's
#: text, so an absolute path or a ``..`` that would reach the host's files is refused).
REMOTE_URI_PREFIXES = ("docker://", "urn:", "http://", "https://")


@dataclass(frozen=True)
class InlineScript:
    api: str
    inline: str
    shell: str = "/bin/sh"


@dataclass(frozen=True)
class GroupRef:
    """One buildpack of a project group: by id (and version), uri, or an inline script."""

    id: str = ""
    version: str = ""
    uri: str = ""
    script: InlineScript | None = None


@dataclass(frozen=True)
class BuildEnv:
    name: str
    value: str


@dataclass(frozen=True)
class ProjectDescriptor:
    schema_version: str = "0.2"
    id: str = ""
    name: str = ""
    version: str = ""
    builder: str = ""
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    group: tuple[GroupRef, ...] = ()
    pre: tuple[GroupRef, ...] = ()
    post: tuple[GroupRef, ...] = ()
    env: tuple[BuildEnv, ...] = ()
    source_url: str = ""
    metadata: dict[str, object] = field(default_factory=dict, compare=False)
    path: Path | None = None

    @classmethod
    def load(cls, path: Path) -> ProjectDescriptor:
        table = read_toml(path)
        if table.has("_"):
            return cls._v02(table, path)
        if table.has("project") or table.has("build"):
            return cls._v01(table, path)
        return cls._v02(table, path)

    @classmethod
    def _v02(cls, table: Table, path: Path) -> ProjectDescriptor:
        meta = table.table("_")
        if table.has("_"):
            schema = meta.get_str("schema-version", required=True)
            if schema != "0.2":
                raise meta.error("schema-version", f"unsupported project.toml schema {schema!r} (expected 0.2)")
        io = table.table("io").table("buildpacks")
        build = io.table("build")
        env = [_env(t) for t in build.tables("env")]
        env += [_env(t) for t in io.table("env").tables("build")]  # legacy key still read by pack
        return cls(
            schema_version="0.2",
            id=meta.get_str("id"),
            name=meta.get_str("name"),
            version=meta.get_str("version"),
            builder=_builder(io),
            include=tuple(_patterns(io, "include")),
            exclude=tuple(_patterns(io, "exclude")),
            group=tuple(_group(t) for t in io.tables("group")),
            pre=tuple(_group(t) for t in io.table("pre").tables("group")),
            post=tuple(_group(t) for t in io.table("post").tables("group")),
            env=tuple(env),
            source_url=meta.get_str("source-url"),
            metadata=meta.raw_table("metadata"),
            path=path,
        )

    @classmethod
    def _v01(cls, table: Table, path: Path) -> ProjectDescriptor:
        project = table.table("project")
        build = table.table("build")
        return cls(
            schema_version="0.1",
            id=project.get_str("id"),
            name=project.get_str("name"),
            version=project.get_str("version"),
            builder=_builder(build),
            include=tuple(_patterns(build, "include")),
            exclude=tuple(_patterns(build, "exclude")),
            group=tuple(_group(t) for t in build.tables("buildpacks")),
            env=tuple(_env(t) for t in build.tables("env")),
            source_url=project.get_str("source-url"),
            path=path,
        )


def _builder(table: Table) -> str:
    """The builder an app asks for: an image name. A directory (``/…``, ``./…``, ``~…``) would be a builder.toml
    of this machine's, chosen by the app's author; only ``--builder`` may name one."""
    name = table.get_str("builder")
    if name.startswith(("/", ".", "~")) or "\0" in name:
        raise UntrustedValueError(
            table.path,
            f"{name!r} is not an image name (a builder directory is given with --builder)",
            key=table._key("builder"),
        )
    return name


def _patterns(table: Table, key: str) -> list[str]:
    patterns = table.str_list(key)
    if patterns and table.has("include" if key == "exclude" else "exclude"):
        raise table.error(key, "include and exclude are mutually exclusive")
    return patterns


def _env(table: Table) -> BuildEnv:
    name = table.get_str("name", required=True)
    if not name or "=" in name:
        raise table.error("name", "expected an environment variable name")
    return BuildEnv(name, table.get_str("value"))


def _group(table: Table) -> GroupRef:
    given = [key for key in ("version", "uri", "script") if table.has(key)]
    if len(given) > 1:
        raise table.error(given[1], f"give only one of version, uri or script (got {', '.join(given)})")
    script = None
    if table.has("script"):
        s = table.table("script")
        script = InlineScript(
            api=s.get_str("api", required=True),
            inline=s.get_str("inline", required=True),
            shell=s.get_str("shell", "/bin/sh"),
        )
    ref = GroupRef(id=table.get_str("id"), version=table.get_str("version"), uri=table.get_str("uri"), script=script)
    if not ref.id and not ref.uri:
        raise SpecFileError(table.path, "a group entry needs an id or a uri", key=table.prefix)
    if script is not None and not ref.id:
        raise table.error("id", "an inline buildpack needs an id")
    if ref.id:
        check_module_id(ref.id, file=table.path, key=table._key("id"))
    if ref.version:
        check_version(ref.version, file=table.path, key=table._key("version"))
    if ref.uri and not ref.uri.startswith(REMOTE_URI_PREFIXES):
        check_relative(ref.uri.removeprefix("file://"), file=table.path, key=table._key("uri"), what="a local uri")
    return ref
