"""``package.toml`` in pack's schema: what goes into a buildpackage (docs/spec-notes.md §10.1).

```toml
[buildpack]                 # or [extension]
uri = "."                   # the entry buildpack (a directory, .tgz, .cnb, file://…, docker://…)
[[dependencies]]            # buildpacks a composite entry buildpack refers to
uri = "../node"             # or: image = "registry/node-package:1"
[[targets]]                 # os/arch (and distros) of the package image
os = "linux"
arch = "amd64"
[platform]                  # deprecated: os = "linux" | "windows"
os = "linux"
```

Unknown keys are an error, as in pack. A dependency gives ``uri`` or ``image``, not both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cnbplatform.files.buildpack_toml import Target
from cnbplatform.files.common import SpecFileError, Table, parse_toml, read_toml


@dataclass(frozen=True)
class Dependency:
    uri: str = ""
    image: str = ""

    @property
    def locator(self) -> str:
        return self.uri or self.image


@dataclass(frozen=True)
class PackageConfig:
    """A validated package.toml. ``kind`` is ``buildpack`` or ``extension``; ``uri`` is the entry module."""

    uri: str
    kind: str = "buildpack"
    dependencies: tuple[Dependency, ...] = ()
    targets: tuple[Target, ...] = ()
    os: str = "linux"
    path: Path | None = None

    @property
    def base_dir(self) -> Path:
        """Relative uris are resolved against the directory of package.toml (pack's rule)."""
        return self.path.parent if self.path is not None else Path.cwd()

    @classmethod
    def default(cls, directory: Path) -> PackageConfig:
        """What pack uses without ``--config``: the buildpack in *directory*."""
        return cls(uri=".", path=Path(directory).absolute() / "package.toml")

    @classmethod
    def parse(cls, text: str, path: str | Path = "") -> PackageConfig:
        return cls.from_table(parse_toml(text, path), Path(path).absolute() if str(path) else None)

    @classmethod
    def load(cls, path: Path) -> PackageConfig:
        return cls.from_table(read_toml(path), Path(path).absolute())

    @classmethod
    def from_table(cls, table: Table, path: Path | None = None) -> PackageConfig:
        table.only("buildpack", "extension", "dependencies", "platform", "targets")
        buildpack, extension, platform = table.table("buildpack"), table.table("extension"), table.table("platform")
        buildpack.only("uri")
        extension.only("uri")
        platform.only("os")
        bp_uri, ext_uri = buildpack.get_str("uri"), extension.get_str("uri")
        if not bp_uri and not ext_uri:
            raise SpecFileError(path or "", "missing 'buildpack.uri' configuration", key="buildpack.uri")
        if bp_uri and ext_uri:
            raise SpecFileError(path or "", "give [buildpack] or [extension], not both", key="extension")
        os_name = platform.get_str("os") or "linux"
        if os_name not in ("linux", "windows"):
            raise platform.error("os", f"only linux and windows are permitted, found {os_name!r}")
        dependencies = []
        for dep in table.tables("dependencies"):
            dep.only("uri", "image")
            uri, image = dep.get_str("uri"), dep.get_str("image")
            if uri and image:
                raise dep.error("image", "dependency configured with both 'uri' and 'image'")
            if not uri and not image:
                raise dep.error("uri", "required: 'uri' or 'image'")
            dependencies.append(Dependency(uri, image))
        targets = []
        for target in table.tables("targets"):
            target.only("os", "arch", "variant", "arch-variant", "distros")
            for distro in target.tables("distros"):
                distro.only("name", "version")
            targets.append(Target.from_table(target))
        return cls(
            uri=bp_uri or ext_uri,
            kind="buildpack" if bp_uri else "extension",
            dependencies=tuple(dependencies),
            targets=tuple(targets),
            os=os_name,
            path=path,
        )
