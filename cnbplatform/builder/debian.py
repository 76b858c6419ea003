"""Debian build and run images made with ``mmdebstrap`` (docs/design.md §3 decision 8; docs/spec-notes.md §1.1).

For a ``kind = "debian"`` recipe (:class:`cnbplatform.builder.base.DebianRecipe`):

1. ``mmdebstrap --mode=root --variant=minbase --include=…`` installs the run packages (plus the extra run
   packages) into one root filesystem and the run + build packages into another (both at once; when the two
   lists are equal, one root filesystem serves both images). ``SOURCE_DATE_EPOCH`` is set, so the same
   mirror content gives the same files. Recommends, man pages, locales and docs (but not the copyright
   files) are left out; the dpkg and apt options stay in the image, so later installs stay small too.
2. What depends on the machine or the moment is removed (:data:`DROP`): the host's ``resolv.conf`` and
   ``hostname``, dpkg/debconf ``*-old`` backups, the ldconfig aux cache, apt lists and caches, device nodes.
   The dpkg database (``/var/lib/dpkg/status``) stays: it is the OS package list the SBOM reads.
3. The CNB user and group are appended to ``/etc/passwd``, ``/etc/group``, ``/etc/shadow`` and
   ``/etc/gshadow`` (no tool runs inside the root filesystem), with a home directory they own.
4. The tree becomes ONE deterministic layer (:mod:`cnbplatform.oci.layers.cache`). Files keep their real
   owners: the layer writer gives a tree one owner (root), so every entry not owned by ``0:0`` (setgid
   ``shadow`` binaries, ``/var/mail``, the CNB home…) is added as an explicit entry with its uid and gid.
   (A hard-linked file not owned by root is stored once per path rather than as a hard link.)
5. With ``static-run-image = true``, a third image is made from the run image's root filesystem (no more
   mmdebstrap): only :data:`STATIC_KEEP` (the CA bundle, time zones, name-service files, os-release), account
   files with root, nobody and the CNB user only, ``/tmp`` and the CNB home: no shell, no package manager, no
   libc. It is the run image for static binaries (``cnb/go`` with ``CGO_ENABLED=0``); the launcher there is
   the process's own command (docs/design.md decision 3).
6. Labels come from ``/etc/os-release`` (``ID``, ``VERSION_ID``) through :func:`base_image`.

mmdebstrap needs root here (``--mode=root``): in its ``unshare`` mode the files on disk would belong to
sub-uids and their real owners would be lost.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.builder.base import BaseImages, BaseRecipe, DebianRecipe, base_image, file_layer, rfc3339
from cnbplatform.errors import CnbError, UsageError
from cnbplatform.oci.image import FileLayer
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import Entry, LayerSpec, TreeSource

MMDEBSTRAP = "mmdebstrap"
TIMEOUT = 3600.0
TOOL_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DPKG_OPTIONS = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/lintian/*",
)
APT_OPTIONS = ('APT::Install-Recommends "false"', 'APT::Install-Suggests "false"')
#: Files (globs, relative to the root) that depend on the build machine or moment, removed before layering.
DROP = (
    "etc/resolv.conf",
    "etc/hostname",
    "var/lib/dpkg/*-old",
    "var/cache/debconf/*-old",
    "var/cache/ldconfig/aux-cache",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/lib/apt/lists/*_*",
    "var/log/apt/*",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "dev/*",
)

#: What the static run image keeps of the run image's root filesystem (files, directories or symlinks).
STATIC_KEEP = (
    "etc/ssl/certs/ca-certificates.crt",
    "usr/share/zoneinfo",
    "etc/nsswitch.conf",
    "etc/services",
    "etc/protocols",
    "usr/lib/os-release",
    "etc/os-release",
)


@dataclass(frozen=True, order=True)
class DebPackage:
    """One installed package from the dpkg database."""

    name: str
    version: str
    architecture: str


def installed_packages(status: str) -> list[DebPackage]:
    """The installed packages listed in a dpkg ``status`` file's text, sorted by name."""
    found: list[DebPackage] = []
    for stanza in status.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields.get("Package") and fields.get("Status", "").endswith(" installed"):
            found.append(DebPackage(fields["Package"], fields.get("Version", ""), fields.get("Architecture", "")))
    return sorted(found)


def sources(debian: DebianRecipe) -> list[str]:
    """The one-line apt sources mmdebstrap uses (and writes to the image's ``/etc/apt/sources.list``)."""
    components = " ".join(debian.components)
    lines = [f"deb {debian.mirror} {debian.suite} {components}"]
    if debian.updates:
        lines.append(f"deb {debian.mirror} {debian.suite}-updates {components}")
    if debian.security_mirror:
        lines.append(f"deb {debian.security_mirror} {debian.suite}-security {components}")
    return lines


def mmdebstrap_command(debian: DebianRecipe, include: Sequence[str], target: Path) -> list[str]:
    command = [MMDEBSTRAP, "--mode=root", f"--variant={debian.variant}", "--format=directory"]
    if include:
        command.append("--include=" + ",".join(include))
    command += [f"--aptopt={option}" for option in APT_OPTIONS]
    command += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    return [*command, debian.suite, str(target), *sources(debian)]


_WRAPPERS = ("E: setup failed", "E: mmdebstrap failed", "E: apt-get update --error-on=any")


def _failure(output: str, debian: DebianRecipe) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("E:") and not line.startswith(_WRAPPERS)]
    summary = " | ".join(line[:200] for line in (errors or lines)[-4:]) or "no output"
    if any(word in output for word in ("Failed to fetch", "Could not resolve", "Could not connect")):
        summary += f" (is the Debian mirror {debian.mirror} reachable?)"
    return summary


def run_mmdebstrap(
    debian: DebianRecipe, include: Sequence[str], target: Path, *, what: str, tool_env: Mapping[str, str]
) -> None:
    """Install *include* into the empty directory *target*; raise CnbError with mmdebstrap's errors."""
    env = {"PATH": TOOL_PATH, "LC_ALL": "C.UTF-8", **tool_env, "SOURCE_DATE_EPOCH": str(debian.source_date_epoch)}
    command = mmdebstrap_command(debian, include, target)
    try:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    except OSError as exc:
        raise CnbError(f"cannot run mmdebstrap for the {what}: {exc.strerror}") from exc
    try:
        output, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        proc.terminate()  # mmdebstrap unmounts what it mounted on SIGTERM, not on SIGKILL
        proc.communicate(timeout=120)
        raise CnbError(f"mmdebstrap for the {what} took longer than {TIMEOUT:.0f} s") from exc
    if proc.returncode != 0:
        raise CnbError(f"mmdebstrap failed for the {what} (exit {proc.returncode}): {_failure(output, debian)}")


def normalise_rootfs(root: Path) -> None:
    """Remove what depends on the machine or the moment of the build (:data:`DROP`)."""
    for pattern in DROP:
        for path in sorted(root.glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    # apt makes these _apt's when it can sandbox its downloads, which depends on the build directory's
    # parents being reachable by the host's _apt user: give them apt's own owner and mode either way.
    apt_uid = _ids(root / "etc" / "passwd", 2).get("_apt", "")
    for partial in ("var/cache/apt/archives/partial", "var/lib/apt/lists/partial"):
        path = root / partial
        if apt_uid.isdigit() and path.is_dir() and not path.is_symlink():
            os.chown(path, int(apt_uid), 0)
            path.chmod(0o700)
    machine_id = root / "etc" / "machine-id"
    if machine_id.is_file() and not machine_id.is_symlink():
        machine_id.write_bytes(b"")  # systemd's "not set yet": every container gets its own


def _ids(path: Path, index: int) -> dict[str, str]:
    """name -> field *index* of a colon-separated account file (``/etc/passwd``: 2 is the uid)."""
    rows = [line.split(":") for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return {row[0]: row[index] for row in rows if len(row) > index}


def add_cnb_user(root: Path, recipe: BaseRecipe, *, days: int) -> None:
    """Append the CNB user and group to the account files and make its home (owned by the user)."""
    etc = root / "etc"
    users, groups = _ids(etc / "passwd", 2), _ids(etc / "group", 2)
    if recipe.user in users or str(recipe.uid) in users.values():
        raise UsageError(f"the recipe's user {recipe.user!r} (uid {recipe.uid}) is already in the image's /etc/passwd")
    if recipe.user in groups or str(recipe.gid) in groups.values():
        raise UsageError(f"the recipe's group {recipe.user!r} (gid {recipe.gid}) is already in the image's /etc/group")
    shell = "/bin/bash" if (root / "usr" / "bin" / "bash").exists() else "/bin/sh"
    home = f"/home/{recipe.user}"
    lines = {
        "passwd": f"{recipe.user}:x:{recipe.uid}:{recipe.gid}::{home}:{shell}\n",
        "group": f"{recipe.user}:x:{recipe.gid}:\n",
        "shadow": f"{recipe.user}:!:{days}:0:99999:7:::\n",
        "gshadow": f"{recipe.user}:!::\n",
    }
    for name, line in lines.items():
        path = etc / name
        if path.is_file():
            with path.open("a") as f:
                f.write(line)
    home_dir = root / home.lstrip("/")
    home_dir.mkdir(parents=True, exist_ok=True)
    os.chown(home_dir, recipe.uid, recipe.gid)
    home_dir.chmod(0o755)


def static_rootfs(root: Path, target: Path, recipe: BaseRecipe) -> None:
    """Fill *target* with the static run image's tree made from the run root filesystem *root* (step 5)."""
    for rel in STATIC_KEEP:
        source, dest = root / rel, target / rel
        if not source.is_symlink() and not source.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            os.symlink(os.readlink(source), dest)
        elif source.is_dir():
            shutil.copytree(source, dest, symlinks=True)
        else:
            shutil.copy2(source, dest)
    keep = {"root", "nobody", "nogroup", recipe.user}
    for name in ("passwd", "group"):
        lines = (root / "etc" / name).read_text().splitlines(keepends=True)
        kept = [line for line in lines if line.split(":", 1)[0] in keep]
        if name == "passwd":  # no shell in the image: no login shell either
            kept = [":".join([*line.rstrip("\n").split(":")[:6], "/sbin/nologin"]) + "\n" for line in kept]
        (target / "etc").mkdir(parents=True, exist_ok=True)
        (target / "etc" / name).write_text("".join(kept))
    (target / "tmp").mkdir(exist_ok=True)
    (target / "tmp").chmod(0o1777)
    home = target / "home" / recipe.user
    home.mkdir(parents=True, exist_ok=True)
    os.chown(home, recipe.uid, recipe.gid)
    home.chmod(0o755)
    target.chmod(0o755)


def os_release(root: Path) -> dict[str, str]:
    """The root filesystem's ``os-release`` fields (``/etc/os-release``, else ``/usr/lib/os-release``)."""
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        path = root / candidate
        if path.is_symlink() or not path.is_file():
            continue  # /etc/os-release is a link to ../usr/lib/os-release: read the file, never follow out
        fields: dict[str, str] = {}
        for line in path.read_text(errors="replace").splitlines():
            key, sep, value = line.partition("=")
            if sep and key.strip() and not key.startswith("#"):
                fields[key.strip()] = value.strip().strip("\"'")
        return fields
    raise CnbError(f"the Debian root filesystem {root} has no os-release file")


def owned_entries(root: Path) -> list[Entry]:
    """Explicit layer entries for everything under *root* not owned by ``0:0``, with its real owner."""
    entries: list[Entry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames) + sorted(filenames):
            path = Path(dirpath, name)
            st = path.lstat()
            if st.st_uid == 0 and st.st_gid == 0:
                continue
            rel, mode, uid, gid = str(path.relative_to(root)), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
            if stat.S_ISDIR(st.st_mode):
                entries.append(Entry.directory(rel, mode=mode, uid=uid, gid=gid))
            elif stat.S_ISREG(st.st_mode):
                entries.append(Entry.host_file(rel, path, mode=mode, uid=uid, gid=gid))
            elif stat.S_ISLNK(st.st_mode):
                entries.append(Entry.symlink(rel, os.readlink(path), uid=uid, gid=gid))
    return entries


def _mounts_under(root: Path) -> list[str]:
    prefix = os.path.realpath(root)
    with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
        points = [line.split()[4].replace("\\040", " ") for line in f if len(line.split()) > 4]
    return [point for point in points if point == prefix or point.startswith(prefix + "/")]


def _remove(root: Path) -> None:
    mounted = _mounts_under(root)
    if mounted:
        raise CnbError(f"cannot remove the temporary root filesystem {root}: {mounted[0]} is still mounted")
    shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class _Rootfs:
    layer: FileLayer
    distro: str
    version: str
    static: FileLayer | None = None


def _rootfs_layer(
    recipe: BaseRecipe,
    include: Sequence[str],
    cache: LayerCache,
    blobs_dir: Path,
    *,
    what: str,
    work_dir: Path | None,
    tool_env: Mapping[str, str],
    static: bool = False,
) -> _Rootfs:
    debian = recipe.debian
    assert debian is not None
    try:
        if work_dir is not None:
            work_dir.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="cnb-rootfs-", dir=work_dir))
        root.chmod(0o755)  # the image's root directory, and apt's _apt user must reach into it
    except OSError as exc:
        raise CnbError(f"cannot make a temporary directory for the {what}: {exc.strerror}") from exc
    ok = False
    try:
        run_mmdebstrap(debian, include, root, what=what, tool_env=tool_env)
        if _mounts_under(root):
            raise CnbError(f"mmdebstrap left file systems mounted under {root} ({what})")
        normalise_rootfs(root)
        add_cnb_user(root, recipe, days=debian.source_date_epoch // 86400)
        release = os_release(root)
        spec = LayerSpec(trees=(TreeSource(root),), entries=tuple(owned_entries(root)))
        layer = file_layer(cache.create(spec, blobs_dir).blob)
        static_layer = None
        if static:
            static_root = Path(tempfile.mkdtemp(prefix="cnb-static-", dir=work_dir))
            try:
                static_rootfs(root, static_root, recipe)
                spec = LayerSpec(trees=(TreeSource(static_root),), entries=tuple(owned_entries(static_root)))
                static_layer = file_layer(cache.create(spec, blobs_dir).blob)
            finally:
                shutil.rmtree(static_root, ignore_errors=True)
        ok = True
    except OSError as exc:
        raise CnbError(f"cannot prepare the {what} root filesystem {root}: {exc}") from exc
    finally:
        if ok:
            _remove(root)
        elif not _mounts_under(root):
            shutil.rmtree(root, ignore_errors=True)  # else leave it: removing would reach into the mounts
    distro = release.get("ID", "debian")
    version = release.get("VERSION_ID") or release.get("VERSION_CODENAME") or debian.suite
    return _Rootfs(layer, distro, version, static_layer)


def check_host() -> None:
    if shutil.which(MMDEBSTRAP) is None:
        raise CnbError("Debian base images need mmdebstrap (apt-get install mmdebstrap)")
    if os.geteuid() != 0:
        raise CnbError("Debian base images need root: mmdebstrap --mode=root keeps the files' real owners")


def create_debian_base(
    recipe: BaseRecipe,
    layer_cache: LayerCache,
    blobs_dir: Path,
    *,
    work_dir: Path | None = None,
    tool_env: Mapping[str, str] | None = None,
) -> BaseImages:
    """Build and run images for a Debian recipe (see the module docstring); needs root and mmdebstrap."""
    debian = recipe.debian
    if debian is None:
        raise UsageError(f"the recipe {recipe.path} has kind debian but no [debian] table")
    check_host()
    includes = {"run image": debian.run_include, "build image": debian.build_include}
    jobs = dict.fromkeys(set(includes.values()))
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {
            include: pool.submit(
                _rootfs_layer,
                recipe,
                include,
                layer_cache,
                blobs_dir,
                what=" and ".join(name for name, value in includes.items() if value == include),
                work_dir=work_dir,
                tool_env=dict(tool_env or {}),
                static=debian.static_run_image and include == debian.run_include,
            )
            for include in jobs
        }
        run, build = futures[debian.run_include].result(), futures[debian.build_include].result()
    if (run.distro, run.version) != (build.distro, build.version):
        raise CnbError(
            f"the build image is {build.distro} {build.version} but the run image is {run.distro} {run.version}"
        )
    created = rfc3339(debian.source_date_epoch)

    def history(include: Sequence[str]) -> str:
        return f"cnb base create (debian {debian.suite}, mmdebstrap --variant={debian.variant}: {' '.join(include)})"

    return BaseImages(
        build=base_image(
            recipe,
            [build.layer],
            build.distro,
            build.version,
            run=False,
            created=created,
            created_by=history(debian.build_include),
        ),
        run=base_image(
            recipe,
            [run.layer],
            run.distro,
            run.version,
            run=True,
            created=created,
            created_by=history(debian.run_include),
        ),
        static=None
        if run.static is None
        else base_image(
            recipe,
            [run.static],
            run.distro,
            run.version,
            run=True,
            created=created,
            created_by=f"cnb base create (debian {debian.suite}: the static run image, from the run image's files)",
            shell=False,
        ),
    )
