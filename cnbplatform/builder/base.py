"""Base (build and run) images from a recipe (DESIGN.md §3 decision 8; CNB-SPEC §1.1).

A recipe is a small TOML file (``builders/<name>/base.toml``)::

    [base]
    id = "io.cnb.tiny"            # io.buildpacks.base.id
    kind = "busybox"              # busybox (no network needed) | debian (mmdebstrap; see the platform issue)
    user-id = 1000
    group-id = 1000
    user-name = "cnb"
    maintainer = "cnb"
    description = "…"

Both images get the CNB user and group, ``CNB_USER_ID``/``CNB_GROUP_ID``/``PATH`` in their env, a non-root
``User`` for the build image, the ``io.buildpacks.base.*`` labels (distro from ``/etc/os-release``) and
``io.buildpacks.rebasable=true`` on the run image. Layers are deterministic, so the same recipe gives the same
digests on any machine.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.errors import CnbError
from cnbplatform.files.common import read_toml
from cnbplatform.oci.digest import hash_file
from cnbplatform.oci.image import FileLayer
from cnbplatform.oci.layercache import LayerCache
from cnbplatform.oci.layerspec import Entry, LayerSpec
from cnbplatform.oci.model import ContainerConfig, Descriptor, History, ImageConfig
from cnbplatform.oci.mutate import BuiltImage

BUSYBOX = Path("/bin/busybox")
CREATED = "1980-01-01T00:00:01Z"
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APPLETS = (  # noqa: SIM905 - a readable list of busybox applets
    "sh ash cat chmod chown cp date dirname basename echo env false find grep head id ln ls mkdir mktemp mv "
    "printf pwd readlink rm rmdir sed sleep sort tail tar tee test touch tr true uname wc wget which xargs "
    "[ [[ awk cut expr gzip gunzip od seq stat sha256sum nc httpd"
).split()


@dataclass(frozen=True)
class BaseRecipe:
    id: str
    kind: str
    uid: int = 1000
    gid: int = 1000
    user: str = "cnb"
    maintainer: str = ""
    description: str = ""
    path: Path | None = None

    @classmethod
    def load(cls, path: Path) -> BaseRecipe:
        table = read_toml(path).table("base", required=True)
        kind = table.get_str("kind", required=True)
        if kind not in ("busybox", "debian"):
            raise table.error("kind", f"expected busybox or debian, got {kind!r}")
        return cls(
            id=table.get_str("id", required=True),
            kind=kind,
            uid=table.get_int("user-id", 1000),
            gid=table.get_int("group-id", 1000),
            user=table.get_str("user-name", "cnb"),
            maintainer=table.get_str("maintainer"),
            description=table.get_str("description"),
            path=path,
        )


@dataclass(frozen=True)
class BaseImages:
    build: BuiltImage
    run: BuiltImage


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


def _labels(recipe: BaseRecipe, distro: str, version: str, *, run: bool) -> dict[str, str]:
    labels = {
        "io.buildpacks.base.id": recipe.id,
        "io.buildpacks.base.distro.name": distro,
        "io.buildpacks.base.distro.version": version,
        "io.buildpacks.base.maintainer": recipe.maintainer,
        "io.buildpacks.base.description": recipe.description,
        "io.buildpacks.base.released": CREATED,
        "io.buildpacks.stack.id": recipe.id,
    }
    if run:
        labels["io.buildpacks.rebasable"] = "true"
    return {k: v for k, v in labels.items() if v}


def _image(recipe: BaseRecipe, layer: FileLayer, distro: str, version: str, *, run: bool) -> BuiltImage:
    env = (f"PATH={PATH_ENV}", f"CNB_USER_ID={recipe.uid}", f"CNB_GROUP_ID={recipe.gid}")
    config = ImageConfig(
        architecture="amd64",
        os="linux",
        diff_ids=(),
        created=CREATED,
        config=ContainerConfig(
            user=f"{recipe.uid}:{recipe.gid}",
            env=env,
            cmd=("/bin/sh",),
            working_dir="/",
            labels=_labels(recipe, distro, version, run=run),
        ),
        history=(History(created=CREATED, created_by=f"cnb base create ({recipe.kind})"),),
    )
    return BuiltImage(config, [layer])


def create_busybox_base(recipe: BaseRecipe, layer_cache: LayerCache, blobs_dir: Path) -> BaseImages:
    """Build and run images from the host's static busybox (package busybox-static); no network needed."""
    if not BUSYBOX.is_file() or shutil.which(str(BUSYBOX)) is None:
        raise CnbError("the busybox base needs /bin/busybox (apt-get install busybox-static)")
    version = busybox_version()
    spec = LayerSpec(entries=tuple(_busybox_entries(recipe, version)))
    blob = layer_cache.create(spec, blobs_dir).blob
    digest, size = hash_file(blob.path)
    if digest != blob.digest or size != blob.size:
        raise CnbError(f"layer blob {blob.path} does not match its recorded digest")
    layer = FileLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, blob.path)
    return BaseImages(
        build=_image(recipe, layer, "busybox", version, run=False),
        run=_image(recipe, layer, "busybox", version, run=True),
    )


def create_base(recipe: BaseRecipe, layer_cache: LayerCache, blobs_dir: Path) -> BaseImages:
    if recipe.kind == "busybox":
        return create_busybox_base(recipe, layer_cache, blobs_dir)
    raise CnbError(f"base kind {recipe.kind!r} is not supported yet (only busybox)")
