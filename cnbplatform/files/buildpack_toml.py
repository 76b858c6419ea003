"""``buildpack.toml`` and ``extension.toml`` descriptors (docs/spec-notes.md §3.1, §12), target matching (§3.1, §4.3)
and lookup of a module by id and version under ``<dir>/<escaped id>/<version>/`` (§1.1).

Accepted spellings where the spec and the Go lifecycle differ (§3.1 ⚠): ``exec-env`` as the spec's
``[[buildpack.exec-env]] name = …`` tables or LC's ``exec-env = [...]`` strings; a target's ``variant`` (spec, pack)
or ``arch-variant`` (LC). Versions are kept as written (LC's own fixtures use ``v1``); an empty one, or one that is
not a single path segment (it names a directory, :mod:`cnbplatform.files.untrusted`), is refused, and
:attr:`Descriptor.is_semver` says whether it has the spec's ``X.Y.Z`` form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from cnbplatform.files.apis import ApiVersion, ApiVersionError
from cnbplatform.files.common import SpecFileError, Table, parse_toml, read_toml, write_toml
from cnbplatform.files.order import OrderGroup, exec_env_list, parse_groups
from cnbplatform.files.untrusted import check_module_id, check_version

RESERVED_IDS = frozenset({"app", "config", "generated", "sbom"})
_SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


def escape_id(module_id: str) -> str:
    """The directory name of a buildpack id: every ``/`` replaced by ``_`` (§0)."""
    return module_id.replace("/", "_")


# --- targets (§3.1) -------------------------------------------------------------------------------------------


def _same(a: str, b: str) -> bool:
    """Target field comparison: empty on either side matches anything."""
    return not a or not b or a == b


@dataclass(frozen=True)
class Distro:
    name: str = ""
    version: str = ""


@dataclass(frozen=True)
class BaseTarget:
    """What a base (run or build) image offers, as analyzed.toml's ``[run-image.target]`` records it: ``os``,
    ``arch``, ``variant`` (LC key ``arch-variant``) and at most one ``distro``."""

    os: str = ""
    arch: str = ""
    variant: str = ""
    distro: Distro | None = None

    @classmethod
    def from_fields(
        cls, os: str = "", arch: str = "", variant: str = "", distro_name: str = "", distro_version: str = ""
    ) -> BaseTarget:
        """Build from flat fields (analyzed.toml's ``TargetInfo``); no distro when both distro fields are empty."""
        distro = Distro(distro_name, distro_version) if distro_name or distro_version else None
        return cls(os, arch, variant, distro)


@dataclass(frozen=True)
class Target:
    """A ``[[targets]]`` entry of a descriptor; every empty field is a wildcard."""

    os: str = ""
    arch: str = ""
    variant: str = ""
    distros: tuple[Distro, ...] = ()

    def matches(self, base: BaseTarget) -> bool:
        """os, arch and variant match (empty on either side matches) and, when distros are listed, one of them
        matches the base image's distro (a base without distro data then does not match)."""
        if not (_same(base.os, self.os) and _same(base.arch, self.arch) and _same(base.variant, self.variant)):
            return False
        if not self.distros:
            return True
        d = base.distro
        return d is not None and any(_same(d.name, x.name) and _same(d.version, x.version) for x in self.distros)

    @classmethod
    def from_table(cls, table: Table) -> Target:
        variant, arch_variant = table.opt_str("variant"), table.opt_str("arch-variant")
        if variant is not None and arch_variant is not None and variant != arch_variant:
            raise table.error("arch-variant", f"{arch_variant!r} disagrees with 'variant' = {variant!r}")
        distros = tuple(Distro(d.get_str("name"), d.get_str("version")) for d in table.tables("distros"))
        return cls(table.get_str("os"), table.get_str("arch"), variant or arch_variant or "", distros)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in (("os", self.os), ("arch", self.arch), ("variant", self.variant)) if v}
        if self.distros:
            out["distros"] = [{k: v for k, v in (("name", d.name), ("version", d.version)) if v} for d in self.distros]
        return out


def target_for_stack(stack_id: str) -> Target | None:
    """The target a legacy stack id stands for (§3.1): bionic is linux/amd64 ubuntu 18.04, ``*`` is any."""
    if stack_id == "io.buildpacks.stacks.bionic":
        return Target("linux", "amd64", "", (Distro("ubuntu", "18.04"),))
    if stack_id == "*":
        return Target()
    return None


def _infer_targets(directory: Path | None, linux: tuple[str, ...], windows: tuple[str, ...]) -> tuple[Target, ...]:
    if directory is None:
        return ()
    bin_dir = Path(directory) / "bin"
    out = []
    if any((bin_dir / name).exists() for name in linux):
        out.append(Target(os="linux"))
    if any((bin_dir / name).exists() for name in windows):
        out.append(Target(os="windows"))
    return tuple(out)


# --- descriptors ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class License:
    type: str = ""
    uri: str = ""


@dataclass(frozen=True)
class Stack:
    """A deprecated ``[[stacks]]`` entry (Buildpack API < 0.10)."""

    id: str
    mixins: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModuleInfo:
    """``[buildpack]`` (or ``[extension]``): who the module is."""

    id: str
    version: str
    name: str = ""
    homepage: str = ""
    description: str = ""
    keywords: tuple[str, ...] = ()
    licenses: tuple[License, ...] = ()
    clear_env: bool = False
    sbom_formats: tuple[str, ...] = ()
    exec_env: tuple[str, ...] = ()

    @classmethod
    def from_table(cls, table: Table) -> ModuleInfo:
        module_id = check_module_id(table.get_str("id", required=True), file=table.path, key=table._key("id"))
        if module_id in RESERVED_IDS:
            raise table.error("id", f"{module_id!r} is reserved ({', '.join(sorted(RESERVED_IDS))} are not allowed)")
        version = table.get_str("version", required=True)
        if not version.strip():
            raise table.error("version", "must not be empty (expected X.Y.Z)")
        check_version(version, file=table.path, key=table._key("version"))
        licenses = []
        for lic in table.tables("licenses"):
            if not lic.get_str("type") and not lic.get_str("uri"):
                raise SpecFileError(lic.path, "a license needs 'type' or 'uri' (or both)", key=lic.prefix)
            licenses.append(License(lic.get_str("type"), lic.get_str("uri")))
        return cls(
            id=module_id,
            version=version,
            name=table.get_str("name"),
            homepage=table.get_str("homepage"),
            description=table.get_str("description"),
            keywords=tuple(table.str_list("keywords")),
            licenses=tuple(licenses),
            clear_env=table.get_bool("clear-env"),
            sbom_formats=tuple(table.str_list("sbom-formats")),
            exec_env=exec_env_list(table),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "version": self.version}
        for key, value in (("name", self.name), ("homepage", self.homepage), ("description", self.description)):
            if value:
                out[key] = value
        if self.clear_env:
            out["clear-env"] = True
        if self.keywords:
            out["keywords"] = list(self.keywords)
        if self.sbom_formats:
            out["sbom-formats"] = list(self.sbom_formats)
        if self.licenses:
            out["licenses"] = [{k: v for k, v in (("type", x.type), ("uri", x.uri)) if v} for x in self.licenses]
        if self.exec_env:  # written in the spec's form
            out["exec-env"] = [{"name": name} for name in self.exec_env]
        return out


def _api(table: Table) -> str:
    """The top-level ``api``: required and a version; a problem exits 12 like an unsupported API (§1.3)."""
    if not table.has("api"):
        raise SpecFileError(table.path, "required, expected the Buildpack API version", key="api", exit_code=12)
    api = table.get_str("api")
    try:
        ApiVersion.parse(api)
    except ApiVersionError as exc:
        raise SpecFileError(table.path, f"{api!r} is not an API version", key="api", exit_code=12) from exc
    return api


@dataclass(frozen=True)
class Descriptor:
    """What buildpack.toml and extension.toml share; ``path`` is the module's directory (``CNB_BUILDPACK_DIR``)."""

    api: str
    info: ModuleInfo
    targets: tuple[Target, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict, hash=False)
    path: Path | None = None

    FILE_NAME: ClassVar[str] = "buildpack.toml"
    KIND: ClassVar[str] = "buildpack"

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def version(self) -> str:
        return self.info.version

    @property
    def api_version(self) -> ApiVersion:
        return ApiVersion.parse(self.api)

    @property
    def escaped_id(self) -> str:
        return escape_id(self.info.id)

    @property
    def is_semver(self) -> bool:
        """True when ``version`` has the spec's form ``X.Y.Z`` (no leading zeros)."""
        return bool(_SEMVER_RE.match(self.info.version))

    def __str__(self) -> str:
        return f"{self.info.id}@{self.info.version}"

    @classmethod
    def from_table(cls, table: Table, directory: Path | None = None) -> Any:
        raise NotImplementedError

    @classmethod
    def parse(cls: type[_D], text: str, path: str | Path = "") -> _D:
        """Parse descriptor text; *path* (the file) is used in errors and gives ``path`` (its directory)."""
        directory = Path(path).parent if str(path) else None
        result: _D = cls.from_table(parse_toml(text, path), directory)
        return result

    @classmethod
    def load(cls: type[_D], path: Path) -> _D:
        """Read the descriptor; *path* may be the file or the module's directory."""
        file = Path(path)
        if file.is_dir():
            file = file / cls.FILE_NAME
        result: _D = cls.from_table(read_toml(file), file.parent.absolute())
        return result

    def dump(self, path: Path) -> None:
        write_toml(path, self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"api": self.api, self.KIND: self.info.to_dict()}
        if self.targets:
            out["targets"] = [t.to_dict() for t in self.targets]
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out

    def inferred_targets(self, directory: Path | None = None) -> tuple[Target, ...]:
        raise NotImplementedError

    def supports_target(self, base: BaseTarget, directory: Path | None = None) -> bool:
        """True when some target of this module satisfies the base image's target (§3.1). *directory* overrides
        ``path`` for inferring targets from ``bin/``. No targets at all means any target."""
        targets = self.inferred_targets(directory)
        return not targets or any(t.matches(base) for t in targets)


_D = TypeVar("_D", bound=Descriptor)


@dataclass(frozen=True)
class BuildpackDescriptor(Descriptor):
    """A parsed ``buildpack.toml``: a component buildpack (``bin/detect``, ``bin/build``) or a composite one
    (``[[order]]``, which may not be combined with ``targets`` or ``stacks``)."""

    stacks: tuple[Stack, ...] = ()
    order: tuple[OrderGroup, ...] = ()

    @property
    def is_composite(self) -> bool:
        return bool(self.order)

    @classmethod
    def from_table(cls, table: Table, directory: Path | None = None) -> BuildpackDescriptor:
        api = _api(table)
        info = ModuleInfo.from_table(table.table("buildpack", required=True))
        order = parse_groups(table, "order", with_exec_env=True)
        if order:
            table.reject("stacks", "targets", reason="not allowed in a composite buildpack (one with [[order]])")
        stacks = []
        for st in table.tables("stacks"):
            stack_id = st.get_str("id", required=True)
            if not stack_id:
                raise st.error("id", "must not be empty")
            stacks.append(Stack(stack_id, tuple(st.str_list("mixins"))))
        targets = tuple(Target.from_table(t) for t in table.tables("targets"))
        return cls(api, info, targets, table.raw_table("metadata"), directory, tuple(stacks), order)

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.order:
            out["order"] = [g.to_dict() for g in self.order]
        if self.stacks:
            out["stacks"] = [{"id": s.id, "mixins": list(s.mixins)} if s.mixins else {"id": s.id} for s in self.stacks]
        return out

    def inferred_targets(self, directory: Path | None = None) -> tuple[Target, ...]:
        """The targets used for matching (§3.1): declared ``targets``; else translated ``stacks``; else from
        ``bin/``: ``linux`` for ``bin/build``, ``windows`` for ``bin/build.bat|.exe``. Empty means any."""
        if self.targets:
            return self.targets
        translated = []
        for stack in self.stacks:
            # LC: bionic counts only for API >= 0.10 or when it is the only stack listed
            if stack.id == "*" or len(self.stacks) == 1 or self.api_version.at_least("0.10"):
                target = target_for_stack(stack.id)
                if target is not None:
                    translated.append(target)
        if translated:
            return tuple(translated)
        return _infer_targets(directory or self.path, ("build",), ("build.bat", "build.exe"))

    def supports_exec_env(self, exec_env: str) -> bool:
        """False when this buildpack (API >= 0.12) lists exec-envs with neither ``*`` nor *exec_env* (§4.3)."""
        if not self.info.exec_env or self.api_version.less_than("0.12"):
            return True
        return "*" in self.info.exec_env or exec_env in self.info.exec_env


@dataclass(frozen=True)
class ExtensionDescriptor(Descriptor):
    """A parsed ``extension.toml`` (§12): ``[extension]`` info, optional ``targets``, no order and no stacks."""

    FILE_NAME: ClassVar[str] = "extension.toml"
    KIND: ClassVar[str] = "extension"

    @classmethod
    def from_table(cls, table: Table, directory: Path | None = None) -> ExtensionDescriptor:
        api = _api(table)
        info = ModuleInfo.from_table(table.table("extension", required=True))
        table.reject("order", reason="not allowed in an image extension")
        targets = tuple(Target.from_table(t) for t in table.tables("targets"))
        return cls(api, info, targets, table.raw_table("metadata"), directory)

    def inferred_targets(self, directory: Path | None = None) -> tuple[Target, ...]:
        """Declared targets; else ``linux`` when ``bin/detect`` or ``bin/generate`` exists; else any (LC)."""
        if self.targets:
            return self.targets
        return _infer_targets(directory or self.path, ("detect", "generate"), ())
