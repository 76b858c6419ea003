"""Base (build and run) images from a recipe (docs/design.md §3 decision 8; docs/spec-notes.md §1.1).

A recipe is a small TOML file (``builders/<name>/base.toml``)::

    [base]
    id = "io.cnb.tiny"            # io.buildpacks.base.id
    kind = "busybox"              # busybox (no network needed) | debian (mmdebstrap, see below)
    user-id = 1000
    group-id = 1000
    user-name = "cnb"
    maintainer = "cnb"
    homepage = "https://…"        # optional
    description = "…"

    [debian]                      # required for kind = "debian" (cnbplatform.builder.debian)
    suite = "bookworm"
    mirror = "http://deb.debian.org/debian"
    security-mirror = "http://deb.debian.org/debian-security"   # optional: adds <suite>-security
    updates = true                # optional: adds <suite>-updates
    components = ["main"]
    variant = "minbase"           # minbase | apt
    run-packages = ["python3", "ca-certificates"]
    build-packages = ["python3-venv"]   # on top of the run packages, build image only
    extra-run-packages = []       # run image only (``cnb base create --extra-run-package``)
    source-date-epoch = 315532801 # SOURCE_DATE_EPOCH for mmdebstrap and the image dates

Both images get the CNB user and group, ``CNB_USER_ID``/``CNB_GROUP_ID``/``PATH`` in their env, a non-root
``User``, the ``io.buildpacks.base.*`` labels (distro from ``/etc/os-release``) and
``io.buildpacks.rebasable=true`` on the run image. Layers are deterministic, so the same recipe (and, for
Debian, the same mirror content) gives the same digests on any machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from cnbplatform.errors import CnbError, UsageError
from cnbplatform.files.builder_labels import RUN_IMAGE_SHELL_LABEL
from cnbplatform.files.common import SpecFileError, Table, read_toml
from cnbplatform.oci.digest import hash_file
from cnbplatform.oci.image import FileLayer
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import Entry, LayerBlob, LayerSpec
from cnbplatform.oci.layers.tarformat import EPOCH
from cnbplatform.oci.model import NORMALIZED_CREATED as CREATED
from cnbplatform.oci.model import ContainerConfig, Descriptor, History, ImageConfig
from cnbplatform.oci.mutate import BuiltImage

BUSYBOX = Path("/bin/busybox")
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APPLETS = (  # noqa: SIM905 - a readable list of busybox applets
    "sh ash cat chmod chown cp date dirname basename echo env false find grep head id ln ls mkdir mktemp mv "
    "printf pwd readlink rm rmdir sed sleep sort tail tar tee test touch tr true uname wc wget which xargs "
    "[ [[ awk cut expr gzip gunzip od seq stat sha256sum nc httpd"
).split()
DEBIAN_MIRROR = "http://deb.debian.org/debian"
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?([=/][A-Za-z0-9.+~:_-]+)?")
_SUITE = re.compile(r"[a-z][a-z0-9.-]*")
_URL = re.compile(r"(https?|file)://[^\s,]+")


@dataclass(frozen=True)
class DebianRecipe:
    """The ``[debian]`` table: what mmdebstrap installs (see the module docstring)."""

    suite: str = "bookworm"
    mirror: str = DEBIAN_MIRROR
    security_mirror: str = ""
    updates: bool = False
    components: tuple[str, ...] = ("main",)
    variant: str = "minbase"
    run_packages: tuple[str, ...] = ()
    build_packages: tuple[str, ...] = ()
    extra_run_packages: tuple[str, ...] = ()
    source_date_epoch: int = EPOCH
    static_run_image: bool = False
    """Also a static run image: the run image's CA bundle, time zones, account files and os-release, no shell."""

    @classmethod
    def from_table(cls, table: Table) -> DebianRecipe:
        table.only(
            "suite", "mirror", "security-mirror", "updates", "components", "variant", "run-packages",
            "build-packages", "extra-run-packages", "source-date-epoch", "static-run-image",
        )  # fmt: skip
        recipe = cls(
            suite=table.get_str("suite", "bookworm"),
            mirror=table.get_str("mirror", DEBIAN_MIRROR),
            security_mirror=table.get_str("security-mirror"),
            updates=table.get_bool("updates"),
            components=tuple(table.str_list("components")) or ("main",),
            variant=table.get_str("variant", "minbase"),
            run_packages=tuple(table.str_list("run-packages")),
            build_packages=tuple(table.str_list("build-packages")),
            extra_run_packages=tuple(table.str_list("extra-run-packages")),
            source_date_epoch=table.get_int("source-date-epoch", EPOCH),
            static_run_image=table.get_bool("static-run-image"),
        )
        try:
            recipe.check()
        except UsageError as exc:
            raise SpecFileError(table.path, f"[debian]: {exc}") from exc
        return recipe

    def check(self) -> None:
        """Refuse values that would not make a valid mmdebstrap command line."""
        if not _SUITE.fullmatch(self.suite):
            raise UsageError(f"invalid Debian suite {self.suite!r}")
        for url in (self.mirror, self.security_mirror):
            if url and not _URL.fullmatch(url):
                raise UsageError(f"invalid Debian mirror {url!r}: expected an http://, https:// or file:// URL")
        if self.variant not in ("minbase", "apt"):
            raise UsageError(f"invalid mmdebstrap variant {self.variant!r}: expected minbase or apt")
        for component in self.components:
            if not _SUITE.fullmatch(component):
                raise UsageError(f"invalid Debian component {component!r}")
        for name in (*self.run_packages, *self.build_packages, *self.extra_run_packages):
            if not _PACKAGE.fullmatch(name):
                raise UsageError(f"invalid Debian package name {name!r}")
        if self.source_date_epoch < 0:
            raise UsageError(f"invalid source-date-epoch {self.source_date_epoch}: must not be negative")

    @property
    def run_include(self) -> tuple[str, ...]:
        """What the run image installs besides the variant's packages (sorted, no duplicates)."""
        return tuple(sorted({*self.run_packages, *self.extra_run_packages}))

    @property
    def build_include(self) -> tuple[str, ...]:
        """What the build image installs: the run packages (not the extra ones) and the build packages."""
        return tuple(sorted({*self.run_packages, *self.build_packages}))


@dataclass(frozen=True)
class BaseRecipe:
    id: str
    kind: str
    uid: int = 1000
    gid: int = 1000
    user: str = "cnb"
    maintainer: str = ""
    description: str = ""
    homepage: str = ""
    path: Path | None = None
    debian: DebianRecipe | None = field(default=None)

    @classmethod
    def load(cls, path: Path) -> BaseRecipe:
        root = read_toml(path)
        table = root.table("base", required=True)
        kind = table.get_str("kind", required=True)
        if kind not in ("busybox", "debian"):
            raise table.error("kind", f"expected busybox or debian, got {kind!r}")
        uid, gid = table.get_int("user-id", 1000), table.get_int("group-id", 1000)
        for key, value in (("user-id", uid), ("group-id", gid)):
            if value <= 0:
                raise table.error(key, f"expected a positive id (the CNB user is not root), got {value}")
        user = table.get_str("user-name", "cnb")
        if not re.fullmatch(r"[a-z_][a-z0-9_-]{0,31}", user):
            raise table.error("user-name", f"expected a POSIX user name, got {user!r}")
        debian = DebianRecipe.from_table(root.table("debian", required=True)) if kind == "debian" else None
        return cls(
            id=table.get_str("id", required=True),
            kind=kind,
            uid=uid,
            gid=gid,
            user=user,
            maintainer=table.get_str("maintainer"),
            description=table.get_str("description"),
            homepage=table.get_str("homepage"),
            path=path,
            debian=debian,
        )

    def with_overrides(self, *, extra_run_packages: Iterable[str] = (), mirror: str | None = None) -> BaseRecipe:
        """This recipe with more run-image packages and/or another Debian mirror (command-line flags)."""
        extra = tuple(extra_run_packages)
        if not extra and mirror is None:
            return self
        if self.debian is None:
            raise UsageError(f"--extra-run-package and --mirror need a debian recipe, not kind {self.kind!r}")
        debian = replace(
            self.debian,
            extra_run_packages=(*self.debian.extra_run_packages, *extra),
            mirror=self.debian.mirror if mirror is None else mirror,
        )
        debian.check()
        return replace(self, debian=debian)


@dataclass(frozen=True)
class BaseImages:
    build: BuiltImage
    run: BuiltImage
    static: BuiltImage | None = None
    """The static run image of a recipe with ``static-run-image = true``."""


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def busybox_version() -> str:
    done = subprocess.run([str(BUSYBOX)], capture_output=True, text=True, timeout=30)
    match = re.search(r"BusyBox v([0-9][0-9.]*)", done.stdout + done.stderr)
    return match.group(1) if match else "unknown"


def _busybox_entries(recipe: BaseRecipe, version: str) -> list[Entry]:
    passwd = f"root:x:0:0:root:/root:/bin/sh\n{recipe.user}:x:{recipe.uid}:{recipe.gid}::/home/{recipe.user}:/bin/sh\n"
    group = f"root:x:0:\n{recipe.user}:x:{recipe.gid}:\n"
    os_release = f'ID=busybox\nNAME="BusyBox"\nVERSION_ID={version}\nPRETTY_NAME="BusyBox {version}"\n'
    entries = [
        Entry.directory("bin"),
        Entry.directory("etc"),
        Entry.directory("root", mode=0o700),
        Entry.directory("tmp", mode=0o1777),
        Entry.directory("home"),
        Entry.directory(f"home/{recipe.user}", uid=recipe.uid, gid=recipe.gid),
        Entry.directory("usr"),
        Entry.directory("usr/bin"),
        Entry.directory("var"),
        Entry.directory("var/tmp", mode=0o1777),
        Entry.host_file("bin/busybox", BUSYBOX, mode=0o755),
        Entry.file("etc/passwd", passwd.encode()),
        Entry.file("etc/group", group.encode()),
        Entry.file("etc/os-release", os_release.encode()),
        Entry.symlink("usr/bin/env", "/bin/busybox"),
    ]
    entries += [Entry.symlink(f"bin/{name}", "busybox") for name in APPLETS]
    return entries


def _labels(recipe: BaseRecipe, distro: str, version: str, released: str, *, run: bool) -> dict[str, str]:
    labels = {
        "io.buildpacks.base.id": recipe.id,
        "io.buildpacks.base.distro.name": distro,
        "io.buildpacks.base.distro.version": version,
        "io.buildpacks.base.maintainer": recipe.maintainer,
        "io.buildpacks.base.homepage": recipe.homepage,
        "io.buildpacks.base.description": recipe.description,
        "io.buildpacks.base.released": released,
        "io.buildpacks.stack.id": recipe.id,
    }
    if run:
        labels["io.buildpacks.rebasable"] = "true"
    return {k: v for k, v in labels.items() if v}


def base_image(
    recipe: BaseRecipe,
    layers: Sequence[FileLayer],
    distro: str,
    version: str,
    *,
    run: bool,
    created: str = CREATED,
    created_by: str = "",
    shell: bool = True,
) -> BuiltImage:
    """A build (``run=False``) or run image of *layers* with the CNB env, user and labels (docs/spec-notes.md §1.1)."""
    env = (f"PATH={PATH_ENV}", f"CNB_USER_ID={recipe.uid}", f"CNB_GROUP_ID={recipe.gid}")
    config = ImageConfig(
        architecture="amd64",
        os="linux",
        diff_ids=(),
        created=created,
        config=ContainerConfig(
            user=f"{recipe.uid}:{recipe.gid}",
            env=env,
            cmd=("/bin/sh",) if shell else None,
            working_dir="/",
            labels=_labels(recipe, distro, version, created, run=run)
            | ({} if shell else {RUN_IMAGE_SHELL_LABEL: "false"}),
        ),
        history=tuple(
            History(created=created, created_by=created_by or f"cnb base create ({recipe.kind})") for _ in layers
        ),
    )
    return BuiltImage(config, layers)


def file_layer(blob: LayerBlob) -> FileLayer:
    """*blob* as an image layer, after checking the file still has the recorded digest and size."""
    digest, size = hash_file(blob.path)
    if digest != blob.digest or size != blob.size:
        raise CnbError(f"layer blob {blob.path} does not match its recorded digest")
    return FileLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, blob.path)


def create_busybox_base(recipe: BaseRecipe, layer_cache: LayerCache, blobs_dir: Path) -> BaseImages:
    """Build and run images from the host's static busybox (package busybox-static); no network needed."""
    if not BUSYBOX.is_file() or shutil.which(str(BUSYBOX)) is None:
        raise CnbError("the busybox base needs /bin/busybox (apt-get install busybox-static)")
    version = busybox_version()
    spec = LayerSpec(entries=tuple(_busybox_entries(recipe, version)))
    layer = file_layer(layer_cache.create(spec, blobs_dir).blob)
    return BaseImages(
        build=base_image(recipe, [layer], "busybox", version, run=False),
        run=base_image(recipe, [layer], "busybox", version, run=True),
    )


def create_base(
    recipe: BaseRecipe,
    layer_cache: LayerCache,
    blobs_dir: Path,
    *,
    work_dir: Path | None = None,
    tool_env: Mapping[str, str] | None = None,
) -> BaseImages:
    """The build and run images of *recipe*; layer blobs land in *blobs_dir*.

    For Debian recipes, *work_dir* holds the temporary root filesystems (default: the system temp dir) and
    *tool_env* is added to mmdebstrap's environment (proxy settings, ``TMPDIR``).
    """
    if recipe.kind == "busybox":
        return create_busybox_base(recipe, layer_cache, blobs_dir)
    if recipe.kind == "debian":
        from cnbplatform.builder.debian import create_debian_base

        return create_debian_base(recipe, layer_cache, blobs_dir, work_dir=work_dir, tool_env=tool_env)
    raise CnbError(f"base kind {recipe.kind!r} is not supported (expected busybox or debian)")
