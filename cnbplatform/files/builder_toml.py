"""``builder.toml`` in pack's schema, read unchanged (docs/spec-notes.md §10.3, docs/design.md §1).

```toml
description = "…"
[[buildpacks]]                       # id/version optional when uri/image is given
  id = "example/node" ; version = "1.2.3" ; uri = "./node" | "file://…" | "x.cnb" | "x.tgz" | "docker://…"
  image = "registry/bp:tag"          # instead of uri
[[extensions]]                       # same shape
[[order]]
  [[order.group]] id = "example/node" ; version = "1.2.3" ; optional = false   # version may be left out
[[order-extensions]]  [[order-extensions.group]] id/version
[build]
  image = "registry/build:jammy"
  [[build.env]] name = "X" ; value = "1" ; suffix = "default|override|append|prepend" ; delim = ":"
[run]
  [[run.images]] image = "registry/run:jammy" ; mirrors = ["…"]
[stack]     id, build-image, run-image, run-image-mirrors      # deprecated
[lifecycle] uri | version                                     # accepted and ignored: our lifecycle runs on the host
[[targets]] os, arch, variant, [[targets.distros]] name/version
[system]    [[system.pre.buildpacks]] / [[system.post.buildpacks]] id/version/optional
```

Validation (pack's ``ValidateConfig``): unknown keys anywhere are an error; ``build.image`` (or legacy
``stack.build-image``) is required and the two must agree; ``run.images`` (or ``stack.run-image`` with
``stack.id``) is required, each with an ``image``; ``stack.run-image`` must be the first run image. ``[[build.env]]``
needs a ``name``, a known ``suffix``, and a ``delim`` for ``append``/``prepend``; it becomes the files
``/cnb/build-config/env/<NAME>[.<suffix>]`` and ``<NAME>.delim``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cnbplatform.files.buildpack_toml import Target
from cnbplatform.files.common import SpecFileError, Table, parse_toml, read_toml
from cnbplatform.files.order import GroupEntry, OrderGroup
from cnbplatform.files.run_toml import RunImage
from cnbplatform.files.system import SystemConfig

MODULE_INFO_KEYS = ("id", "name", "version", "description", "homepage", "keywords", "exec-env", "licenses", "clear-env")
ENV_SUFFIXES = ("", "default", "override", "append", "prepend")


@dataclass(frozen=True)
class ModuleConfig:
    """One ``[[buildpacks]]`` (or ``[[extensions]]``) entry: where the module comes from, and optionally which
    ``id``/``version`` it must be."""

    id: str = ""
    version: str = ""
    uri: str = ""
    image: str = ""
    where: str = ""  # the entry's key path, e.g. "buildpacks[2]", for messages

    @property
    def locator(self) -> str:
        return self.uri or self.image

    def __str__(self) -> str:
        if self.id:
            return f"{self.id}@{self.version}" if self.version else self.id
        return self.locator

    @classmethod
    def from_table(cls, table: Table) -> ModuleConfig:
        table.only(*MODULE_INFO_KEYS, "uri", "image")
        for lic in table.tables("licenses"):
            lic.only("type", "uri")
        uri, image = table.get_str("uri"), table.get_str("image")
        if uri and image:
            raise table.error("image", "give either 'uri' or 'image', not both")
        module_id = table.get_str("id")
        if not uri and not image:
            raise table.error("uri", f"required: where to find {module_id or 'the module'} ('uri' or 'image')")
        return cls(module_id, table.get_str("version"), uri, image, table.prefix)


@dataclass(frozen=True)
class BuildEnv:
    """One ``[[build.env]]`` entry: an operator env file in ``/cnb/build-config/env`` (docs/spec-notes.md §3.9)."""

    name: str
    value: str = ""
    suffix: str = ""
    delim: str = ""

    @property
    def file_name(self) -> str:
        return f"{self.name}.{self.suffix}" if self.suffix else self.name

    @classmethod
    def from_table(cls, table: Table) -> BuildEnv:
        table.only("name", "value", "suffix", "delim", "exec-env")
        name = table.get_str("name", required=True)
        if not name or "/" in name or "=" in name or "." in name:
            raise table.error("name", f"{name!r} is not an environment variable name")
        suffix = table.get_str("suffix")
        if suffix not in ENV_SUFFIXES:
            raise table.error("suffix", f"unknown suffix {suffix!r} (expected default, override, append or prepend)")
        delim = table.get_str("delim")
        if suffix in ("append", "prepend") and not delim:
            raise table.error("delim", f"required for {name} with suffix {suffix!r}")
        table.str_list("exec-env")  # accepted (pack reads it too) and not used for build-config files
        return cls(name, table.get_str("value"), suffix, delim)


def env_files(envs: tuple[BuildEnv, ...]) -> dict[str, bytes]:
    """The ``/cnb/build-config/env`` files ``[[build.env]]`` gives (a later entry for the same file wins)."""
    files: dict[str, bytes] = {}
    for env in envs:
        files[env.file_name] = env.value.encode()
        if env.delim:
            files[f"{env.name}.delim"] = env.delim.encode()
    return files


def _group_entry(table: Table) -> GroupEntry:
    table.only(*MODULE_INFO_KEYS, "optional")
    for lic in table.tables("licenses"):
        lic.only("type", "uri")
    entry_id = table.get_str("id", required=True)
    if not entry_id:
        raise table.error("id", "must not be empty")
    return GroupEntry(entry_id, table.get_str("version"), table.get_bool("optional"))


def _order(table: Table, key: str) -> tuple[OrderGroup, ...]:
    groups = []
    for group in table.tables(key):
        group.only("group")
        groups.append(OrderGroup(tuple(_group_entry(t) for t in group.tables("group"))))
    return tuple(groups)


def _target(table: Table) -> Target:
    table.only("os", "arch", "variant", "arch-variant", "distros")
    for distro in table.tables("distros"):
        distro.only("name", "version")
    return Target.from_table(table)


def _system(table: Table) -> SystemConfig:
    system = table.table("system")
    system.only("pre", "post")
    parts: list[tuple[GroupEntry, ...]] = []
    for key in ("pre", "post"):
        part = system.table(key)
        part.only("buildpacks")
        parts.append(tuple(_group_entry(t) for t in part.tables("buildpacks")))
    return SystemConfig(pre=parts[0], post=parts[1])


@dataclass(frozen=True)
class BuilderConfig:
    """A validated builder.toml; ``run_images`` and ``build_image`` already merge the legacy ``[stack]`` keys."""

    build_image: str
    run_images: tuple[RunImage, ...]
    description: str = ""
    buildpacks: tuple[ModuleConfig, ...] = ()
    extensions: tuple[ModuleConfig, ...] = ()
    order: tuple[OrderGroup, ...] = ()
    order_extensions: tuple[OrderGroup, ...] = ()
    build_env: tuple[BuildEnv, ...] = ()
    stack_id: str = ""
    targets: tuple[Target, ...] = ()
    system: SystemConfig = field(default_factory=SystemConfig)
    lifecycle: str = ""  # what [lifecycle] asked for (ignored: cnb's lifecycle runs on the host)
    path: Path | None = None
    warnings: tuple[str, ...] = ()

    @property
    def base_dir(self) -> Path:
        """Where relative buildpack uris are resolved: the directory of builder.toml (pack's rule)."""
        return self.path.parent if self.path is not None else Path.cwd()

    @property
    def env_files(self) -> dict[str, bytes]:
        return env_files(self.build_env)

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> BuilderConfig:
        return cls.from_table(parse_toml(text, path), Path(path).absolute() if str(path) else None)

    @classmethod
    def load(cls, path: Path) -> BuilderConfig:
        return cls.from_table(read_toml(path), Path(path).absolute())

    @classmethod
    def from_table(cls, table: Table, path: Path | None = None) -> BuilderConfig:
        table.only(
            "description", "buildpacks", "extensions", "order", "order-extensions",
            "build", "run", "stack", "lifecycle", "targets", "system",
        )  # fmt: skip
        build, run, stack, lifecycle = (
            table.table("build"),
            table.table("run"),
            table.table("stack"),
            table.table("lifecycle"),
        )
        build.only("image", "env")
        run.only("images")
        stack.only("id", "build-image", "run-image", "run-image-mirrors")
        lifecycle.only("uri", "version")
        warnings: list[str] = []
        if lifecycle.get_str("uri") and lifecycle.get_str("version"):
            raise lifecycle.error("uri", "[lifecycle] can only declare 'version' or 'uri', not both")
        asked = lifecycle.get_str("uri") or lifecycle.get_str("version")
        if asked:
            warnings.append(f"[lifecycle] {asked} is ignored: cnb's own lifecycle runs the phases")
        # every key is checked (unknown keys first) before what is required
        buildpacks = tuple(ModuleConfig.from_table(t) for t in table.tables("buildpacks"))
        extensions = tuple(ModuleConfig.from_table(t) for t in table.tables("extensions"))
        order, order_extensions = _order(table, "order"), _order(table, "order-extensions")
        build_env = tuple(BuildEnv.from_table(t) for t in build.tables("env"))
        targets = tuple(_target(t) for t in table.tables("targets"))
        system = _system(table)
        for entry in run.tables("images"):
            entry.only("image", "mirrors")
        if not order:
            warnings.append("empty 'order' definition")
        return cls(
            build_image=_build_image(build, stack, path),
            run_images=_run_images(run, stack, path),
            description=table.get_str("description"),
            buildpacks=buildpacks,
            extensions=extensions,
            order=order,
            order_extensions=order_extensions,
            build_env=build_env,
            stack_id=stack.get_str("id"),
            targets=targets,
            system=system,
            lifecycle=asked,
            path=path,
            warnings=tuple(warnings),
        )


def _build_image(build: Table, stack: Table, path: Path | None) -> str:
    image, legacy = build.get_str("image"), stack.get_str("build-image")
    if not image and not legacy:
        raise SpecFileError(path or "", "build.image is required (or the legacy stack.build-image)", key="build.image")
    if image and legacy and image != legacy:
        raise SpecFileError(path or "", f"build.image {image!r} and stack.build-image {legacy!r} do not match")
    return image or legacy


def _run_images(run: Table, stack: Table, path: Path | None) -> tuple[RunImage, ...]:
    images = []
    for entry in run.tables("images"):
        entry.only("image", "mirrors")
        image = entry.get_str("image", required=True)
        if not image:
            raise entry.error("image", "must not be empty")
        images.append(RunImage(image, tuple(entry.str_list("mirrors"))))
    legacy = stack.get_str("run-image")
    if not images:
        if not legacy or not stack.get_str("id"):
            raise SpecFileError(
                path or "", "run.images is required (or the legacy stack.run-image with stack.id)", key="run.images"
            )
        images.append(RunImage(legacy, tuple(stack.str_list("run-image-mirrors"))))
    elif legacy and legacy != images[0].image:
        raise SpecFileError(path or "", f"run.images {images[0].image!r} and stack.run-image {legacy!r} do not match")
    return tuple(images)
