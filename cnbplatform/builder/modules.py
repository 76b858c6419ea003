"""Where a buildpack comes from: the locators of builder.toml and package.toml resolved to directories on disk
(docs/spec-notes.md §10.1, §10.3; pack's locator rules).

| locator | what it is |
| --- | --- |
| ``./dir``, ``/abs/dir``, ``file:///abs/dir`` | a buildpack directory (``buildpack.toml`` at its root) |
| ``x.tgz`` / ``x.tar.gz`` / ``x.tar`` | a buildpack archive (``buildpack.toml`` at its root) |
| ``x.cnb`` | a buildpackage file (an OCI layout tar), with every buildpack in it |
| ``docker://REF``, ``image = "REF"`` | a buildpackage image in any store (``REF`` as ``cnb image`` reads it) |
| ``http(s)://…`` | an archive or ``.cnb`` downloaded first |

Relative paths are resolved against the directory of the TOML file that names them. A file is told apart by its
content (an OCI layout inside, or a ``buildpack.toml``), not by its name. ``urn:cnb:registry:`` and
``urn:cnb:builder:`` locators are refused: there is no buildpack registry here.

A resolver also records what it read (:class:`ReadInputs`): the stat fingerprint of each module directory, taken
before any of its files is read, and the digest of each image it read. ``cnb build --builder DIR`` keeps that record
to tell, without assembling the builder again, that the same inputs would give the same builder.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlparse

from cnbplatform.builder.buildpackage import Module, load_module
from cnbplatform.builder.package_read import extract_tar, read_package_file, read_package_image
from cnbplatform.errors import CnbError, NotFoundError, UsageError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.address import parse_address
from cnbplatform.oci.image import Image, as_image, resolve_platform
from cnbplatform.oci.layers.fingerprint import fingerprint_tree
from cnbplatform.oci.model import Index, Platform
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.oci.store.pull import fetch
from cnbplatform.oci.store.stores import Stores

#: (url, destination file) -> None; injected so the builder never opens a network connection itself.
Downloader = Callable[[str, Path], None]


class Reporter(Protocol):
    """What builder creation has to say (the lifecycle's Reporter and the CLI's console both fit)."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def debug(self, message: str) -> None: ...


@dataclass(frozen=True)
class Resolved:
    """The module a locator names, and the others that came with it (the rest of a buildpackage)."""

    main: Module
    dependencies: tuple[Module, ...] = ()

    @property
    def all(self) -> tuple[Module, ...]:
        return (self.main, *self.dependencies)


@dataclass
class ReadInputs:
    """What a resolver read: module directories (host path -> stat fingerprint) and images (where -> digest of the
    manifest or index read). ``complete`` is false once anything else was used (an archive, a download, a package
    image) or a directory's fingerprint could not be trusted (a file changed within the racy margin)."""

    directories: dict[str, str] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)
    complete: bool = True


class ModuleResolver:
    """Resolves locators into unpacked modules under *work_dir*; reads images through *stores*."""

    def __init__(
        self,
        stores: Stores,
        work_dir: Path,
        *,
        platform: Platform | None = None,
        downloader: Downloader | None = None,
        pull_policy: str = "if-not-present",
    ) -> None:
        self.stores = stores
        self.pull_policy = pull_policy
        self.work_dir = work_dir
        self.platform = platform or Platform("linux", "amd64")
        self.downloader = downloader
        self.read_inputs = ReadInputs()
        self._count = 0

    def _scratch(self, name: str) -> Path:
        self._count += 1
        path = self.work_dir / f"{self._count}-{name}"
        path.mkdir(parents=True)
        path.chmod(0o755)
        return path

    def read_image(self, where: str, *, what: str = "image") -> Image:
        """The image *where* names, from where the name says (:mod:`cnbplatform.oci.store.pull`: a registry's image is
        pulled into the local store under :attr:`pull_policy`); an index is narrowed to :attr:`platform`."""
        try:
            fetched = fetch(self.stores, where, pull_policy=self.pull_policy, platform=self.platform)
            self.read_inputs.images[where] = fetched.image.descriptor.digest
            return fetched.image
        except NotFoundError as exc:
            raise NotFoundError(f"reading {what} {where}: {exc}") from exc
        except CnbError as exc:
            raise CnbError(f"reading {what} {where}: {exc}", exit_code=exc.exit_code) from exc

    def resolve(self, locator: str, base_dir: Path, *, kind: str = "buildpack", image: bool = False) -> Resolved:
        """The module(s) *locator* names; *image* says it came from an ``image =`` key."""
        if not locator:
            raise UsageError(f"an empty {kind} locator")
        if image or locator.startswith("docker:/"):
            return self._from_image(locator.removeprefix("docker://").removeprefix("docker:/"), kind)
        if locator.startswith("urn:cnb:"):
            raise UsageError(f"{kind} {locator}: buildpack registries and urn:cnb: locators are not supported")
        scheme = urlparse(locator).scheme
        if scheme in ("http", "https"):
            return self._from_url(locator, kind)
        if scheme == "file":
            path = Path(unquote(locator[len("file://") :]))
        elif "://" in locator:
            raise UsageError(f"{kind} {locator}: unsupported locator scheme {scheme!r}")
        else:
            path = Path(locator)
        path = path if path.is_absolute() else base_dir / path
        if path.exists():
            return self._from_path(path, locator, kind)
        try:
            parse_address(locator)
        except CnbError:
            raise NotFoundError(f"{kind} {locator}: no such file or directory {path}") from None
        try:
            return self._from_image(locator, kind)
        except CnbError as exc:
            raise NotFoundError(
                f"{kind} {locator}: no such file or directory {path}, and no such image ({exc})"
            ) from exc

    def _from_path(self, path: Path, locator: str, kind: str) -> Resolved:
        if path.is_dir():
            descriptor = path / f"{kind}.toml"
            if not descriptor.is_file():
                raise NotFoundError(f"{kind} {locator}: {path} has no {kind}.toml")
            self._record_directory(path)
            return Resolved(load_module(path, kind, locator))
        self.read_inputs.complete = False
        names = _archive_names(path, locator)
        if "index.json" in names or "oci-layout" in names:
            layout = read_package_file(path, self._scratch("layout"))
            image = self._layout_image(LayoutStore(layout, create=False))
            return _resolved(read_package_image(image, self._scratch("package"), kind=kind, what=locator), kind)
        if f"{kind}.toml" in names:
            root = self._scratch("archive")
            with open(path, "rb") as stream:
                extract_tar(stream, root, what=f"{kind} archive {path}")
            return Resolved(load_module(root, kind, locator))
        raise CnbError(f"{kind} {locator}: {path} is neither a {kind} archive nor a buildpackage")

    def _layout_image(self, store: LayoutStore) -> Image:
        """The buildpackage of a ``.cnb`` layout: its one image, or of several (one per target, each with its
        platform in index.json) the one for :attr:`platform`; an index inside is narrowed the same way."""
        entries = store.list()
        if len(entries) > 1:
            chosen = Index(mt.OCI_INDEX, tuple(entry.descriptor for entry in entries)).select(self.platform)
            return as_image(resolve_platform(store.read(chosen.digest), self.platform))
        return as_image(resolve_platform(store.read(None), self.platform))

    def _record_directory(self, path: Path) -> None:
        fingerprint = fingerprint_tree(path)
        if fingerprint.stable:
            self.read_inputs.directories[str(path.absolute())] = fingerprint.digest
        else:
            self.read_inputs.complete = False

    def _from_image(self, ref: str, kind: str) -> Resolved:
        self.read_inputs.complete = False
        image = self.read_image(ref, what=f"{kind} package")
        return _resolved(read_package_image(image, self._scratch("package"), kind=kind, what=ref), kind)

    def _from_url(self, url: str, kind: str) -> Resolved:
        self.read_inputs.complete = False
        if self.downloader is None:
            raise UsageError(f"{kind} {url}: downloads are not available here")
        target = self._scratch("download") / (Path(urlparse(url).path).name or "download")
        self.downloader(url, target)
        return self._from_path(target, url, kind)


def _resolved(modules: list[Module], kind: str) -> Resolved:
    if kind == "extension" and len(modules) > 1:
        raise CnbError(f"an extension package holds one extension, this one {len(modules)}")
    return Resolved(modules[0], tuple(modules[1:]))


def _archive_names(path: Path, locator: str) -> set[str]:
    """The top-level names in the tar (any compression) at *path*: enough to tell a layout from a buildpack."""
    names: set[str] = set()
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                archive.members = []  # type: ignore[attr-defined]
                parts = [p for p in member.name.split("/") if p not in ("", ".")]
                if len(parts) == 1:
                    names.add(parts[0])
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise CnbError(f"{locator}: {path} is not a directory, a tar archive or a .cnb file ({exc})") from exc
    return names
