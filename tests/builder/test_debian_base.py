"""Debian base images with mmdebstrap (docs/design.md §3 decision 8; docs/spec-notes.md §1.1).

Unit tests need nothing but Python. The integration tests use the session images of
:mod:`tests.support.bookworm` (built from the Debian mirror once per machine), skopeo, umoci and ``cnb run``.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from cnbplatform.builder.base import BaseRecipe, DebianRecipe
from cnbplatform.builder.debian import (
    add_cnb_user,
    installed_packages,
    mmdebstrap_command,
    normalise_rootfs,
    os_release,
    owned_entries,
)
from cnbplatform.errors import CnbError
from cnbplatform.files.common import SpecFileError
from cnbplatform.oci.layers.spec import LayerSpec, TreeSource
from cnbplatform.oci.layers.tarlayer import write_tar
from tests.conftest import REPO, Cnb
from tests.support.bookworm import (  # noqa: F401 - session fixtures
    EXTRA_PACKAGE,
    STATUS,
    BookwormImages,
    bookworm,
    bookworm_patched,
    layer_member,
)
from tests.support.tools import skopeo_inspect, umoci_unpack

RECIPE = REPO / "builders" / "bookworm" / "base.toml"
STATUS_TEXT = """\
Package: python3
Status: install ok installed
Architecture: amd64
Version: 3.11.2-1+b1
Description: interactive high-level object-oriented language
 (the default python3 version)

Package: gone
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
"""


# -- recipe and command line (unit) ----------------------------------------------------------------------


def test_bookworm_recipe_loads() -> None:
    recipe = BaseRecipe.load(RECIPE)
    assert recipe.kind == "debian" and recipe.debian is not None
    debian = recipe.debian
    assert debian.suite == "bookworm"
    assert {"python3", "nodejs", "ca-certificates"} <= set(debian.run_include)
    assert {"python3", "python3-venv", "nodejs", "npm"} <= set(debian.build_include)
    assert "npm" not in debian.run_include
    patched = recipe.with_overrides(extra_run_packages=["netbase", "zlib1g"])
    assert patched.debian is not None
    assert {"netbase", "zlib1g"} <= set(patched.debian.run_include)
    assert patched.debian.build_include == debian.build_include  # extra packages are for the run image only
    assert recipe.debian.extra_run_packages == ()


@pytest.mark.parametrize(
    ("debian", "key"),
    [
        ('run-packages = ["python3,evil"]', "package name"),
        ('run-packages = ["--root=/"]', "package name"),
        ('mirror = "ftp://example.org/debian"', "mirror"),
        ('suite = "Bookworm Main"', "suite"),
        ('variant = "buildd"', "variant"),
        ("shiny = true", "shiny"),
    ],
)
def test_bad_debian_recipes_are_refused(tmp_path: Path, debian: str, key: str) -> None:
    recipe = tmp_path / "base.toml"
    recipe.write_text(f'[base]\nid = "x"\nkind = "debian"\n[debian]\n{debian}\n')
    with pytest.raises(SpecFileError) as raised:
        BaseRecipe.load(recipe)
    assert str(recipe) in str(raised.value) and key in str(raised.value)


def test_debian_recipe_needs_its_table_and_a_non_root_user(tmp_path: Path) -> None:
    recipe = tmp_path / "base.toml"
    recipe.write_text('[base]\nid = "x"\nkind = "debian"\n')
    with pytest.raises(SpecFileError, match="debian"):
        BaseRecipe.load(recipe)
    recipe.write_text('[base]\nid = "x"\nkind = "debian"\nuser-id = 0\n[debian]\n')
    with pytest.raises(SpecFileError, match="user-id"):
        BaseRecipe.load(recipe)
    busybox = BaseRecipe.load(REPO / "builders" / "tiny" / "base.toml")
    with pytest.raises(CnbError, match="debian recipe"):
        busybox.with_overrides(extra_run_packages=["netbase"])


def test_mmdebstrap_command_line(tmp_path: Path) -> None:
    debian = DebianRecipe(
        mirror="http://mirror.example/debian",
        security_mirror="http://security.example/debian-security",
        updates=True,
        run_packages=("python3",),
    )
    command = mmdebstrap_command(debian, ("ca-certificates", "python3"), tmp_path)
    assert command[:4] == ["mmdebstrap", "--mode=root", "--variant=minbase", "--format=directory"]
    assert "--include=ca-certificates,python3" in command
    assert "--dpkgopt=path-exclude=/usr/share/doc/*" in command
    assert "--dpkgopt=path-include=/usr/share/doc/*/copyright" in command  # licences stay for the SBOM
    assert command[-5:] == [
        "bookworm",
        str(tmp_path),
        "deb http://mirror.example/debian bookworm main",
        "deb http://mirror.example/debian bookworm-updates main",
        "deb http://security.example/debian-security bookworm-security main",
    ]


def test_installed_packages_reads_the_dpkg_status() -> None:
    packages = installed_packages(STATUS_TEXT)
    assert [(p.name, p.version, p.architecture) for p in packages] == [
        ("base-files", "12.4+deb12u5", "amd64"),
        ("python3", "3.11.2-1+b1", "amd64"),
    ]


# -- the root filesystem steps (unit, on a fake root) ----------------------------------------------------


def _fake_root(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "bin").mkdir()
    (root / "usr" / "bin" / "bash").write_bytes(b"")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n_apt:x:42:65534::/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nshadow:x:42:\n")
    (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\n")
    (root / "etc" / "gshadow").write_text("root:*::\n")
    (root / "usr" / "lib" / "os-release").write_text(
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
    )
    (root / "etc" / "os-release").symlink_to("../usr/lib/os-release")
    return root


def test_cnb_user_is_appended(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "root")
    recipe = BaseRecipe(id="x", kind="debian", uid=1234, gid=2345, user="cnb")
    add_cnb_user(root, recipe, days=3652)
    assert (root / "etc" / "passwd").read_text().splitlines()[-1] == "cnb:x:1234:2345::/home/cnb:/bin/bash"
    assert (root / "etc" / "group").read_text().splitlines()[-1] == "cnb:x:2345:"
    assert (root / "etc" / "shadow").read_text().splitlines()[-1] == "cnb:!:3652:0:99999:7:::"
    assert (root / "etc" / "gshadow").read_text().splitlines()[-1] == "cnb:!::"
    home = (root / "home" / "cnb").stat()
    assert (home.st_uid, home.st_gid) == (1234, 2345)
    with pytest.raises(CnbError, match="already"):
        add_cnb_user(root, BaseRecipe(id="x", kind="debian", uid=42, gid=3000, user="other"), days=0)
    with pytest.raises(CnbError, match="already"):
        add_cnb_user(root, BaseRecipe(id="x", kind="debian", uid=3000, gid=42, user="other"), days=0)


def test_os_release_is_read_inside_the_root(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "root")
    assert os_release(root)["ID"] == "debian" and os_release(root)["VERSION_ID"] == "12"
    (root / "usr" / "lib" / "os-release").unlink()
    (root / "usr" / "lib" / "os-release").symlink_to("/etc/os-release")  # never followed out of the root
    with pytest.raises(CnbError, match="os-release"):
        os_release(root)


def test_normalise_drops_what_depends_on_the_machine(tmp_path: Path) -> None:
    root = _fake_root(tmp_path / "root")
    for rel in ("etc/resolv.conf", "etc/hostname", "var/lib/dpkg/status-old", "var/lib/dpkg/status", "dev/null"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    (root / "etc" / "machine-id").write_text("0123456789abcdef\n")
    partial = root / "var" / "lib" / "apt" / "lists" / "partial"
    partial.mkdir(parents=True)
    normalise_rootfs(root)
    assert not (root / "etc" / "resolv.conf").exists() and not (root / "etc" / "hostname").exists()
    assert not (root / "var" / "lib" / "dpkg" / "status-old").exists()
    assert (root / "var" / "lib" / "dpkg" / "status").read_text() == "x"  # the OS package list stays
    assert (root / "dev").is_dir() and not any((root / "dev").iterdir())
    assert (root / "etc" / "machine-id").read_bytes() == b""
    assert (partial.stat().st_uid, partial.stat().st_mode & 0o7777) == (42, 0o700)


def test_layer_keeps_the_real_owners(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "var" / "mail").mkdir(parents=True)
    (root / "usr" / "bin" / "chage").write_bytes(b"binary")
    (root / "usr" / "bin" / "plain").write_bytes(b"plain")
    (root / "usr" / "bin" / "link").symlink_to("plain")
    os.chown(root / "usr" / "bin" / "chage", 0, 42)
    os.chmod(root / "usr" / "bin" / "chage", 0o2755)
    os.chown(root / "var" / "mail", 0, 8)
    os.chmod(root / "var" / "mail", 0o2775)
    os.lchown(root / "usr" / "bin" / "link", 7, 7)
    spec = LayerSpec(trees=(TreeSource(root),), entries=tuple(owned_entries(root)))
    out = io.BytesIO()
    write_tar(spec, out)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("usr/bin/chage").read() == b"binary"  # type: ignore[union-attr]
    owners = {name: (m.uid, m.gid, m.mode) for name, m in members.items()}
    assert owners["usr/bin/chage"] == (0, 42, 0o2755)
    assert owners["var/mail"] == (0, 8, 0o2775)
    assert owners["usr/bin/plain"][:2] == (0, 0)
    assert owners["usr/bin/link"][:2] == (7, 7) and members["usr/bin/link"].linkname == "plain"
    assert len(members) == len(set(members))


# -- real mmdebstrap (integration) -----------------------------------------------------------------------


@pytest.mark.integration
def test_unreachable_mirror_fails_with_the_reason(tmp_path: Path, cnb: Cnb) -> None:
    recipe = tmp_path / "base.toml"
    recipe.write_text('[base]\nid = "x"\nkind = "debian"\n[debian]\nrun-packages = ["python3"]\n')
    done = cnb(
        "base", "create", "--config", str(recipe), "--build-image", "b", "--run-image", "r",
        "--mirror", "http://127.0.0.1:9/debian",
        check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "mmdebstrap failed" in done.stderr and "http://127.0.0.1:9/debian" in done.stderr
    assert "Traceback" not in done.stderr
    assert not any((cnb.home / "tmp").iterdir())  # the half-made root filesystem is gone


@pytest.mark.integration
def test_bookworm_images_are_valid_and_labelled(tmp_path: Path, bookworm: BookwormImages) -> None:  # noqa: F811
    build = skopeo_inspect(bookworm.build, "--config")
    run = skopeo_inspect(bookworm.run, "--config")
    for config in (build, run):
        env = dict(item.split("=", 1) for item in config["config"]["Env"])
        assert env["CNB_USER_ID"] == "1000" and env["CNB_GROUP_ID"] == "1000" and "/usr/bin" in env["PATH"]
        assert config["config"]["User"] == "1000:1000"
        labels = config["config"]["Labels"]
        assert labels["io.buildpacks.base.distro.name"] == "debian"
        assert labels["io.buildpacks.base.distro.version"] == "12"
        assert labels["io.buildpacks.base.id"] == "io.cnb.test.bookworm"
        assert config["os"] == "linux" and config["architecture"] == "amd64"
    assert run["config"]["Labels"]["io.buildpacks.rebasable"] == "true"
    assert run["rootfs"]["diff_ids"] == build["rootfs"]["diff_ids"]  # one package list here: one shared layer
    assert "io.buildpacks.rebasable" not in build["config"]["Labels"]

    rootfs = umoci_unpack(bookworm.layout, "run", tmp_path / "bundle")
    assert "cnb:x:1000:1000::/home/cnb:/bin/bash" in (rootfs / "etc" / "passwd").read_text().splitlines()
    assert "cnb:x:1000:" in (rootfs / "etc" / "group").read_text().splitlines()
    home = (rootfs / "home" / "cnb").stat()
    assert (home.st_uid, home.st_gid) == (1000, 1000)
    shadow = (rootfs / "etc" / "shadow").stat()  # real owners survive: root:shadow 0640
    assert (shadow.st_uid, shadow.st_gid, shadow.st_mode & 0o777) == (0, 42, 0o640)
    assert not (rootfs / "etc" / "resolv.conf").exists() and not (rootfs / "etc" / "hostname").exists()
    assert not list((rootfs / "usr" / "share" / "man").glob("man1/*"))
    packages = {p.name: p for p in installed_packages((rootfs / "var" / "lib" / "dpkg" / "status").read_text())}
    assert {"python3", "base-files", "dpkg"} <= set(packages)
    assert packages["python3"].version.startswith("3.11")


@pytest.mark.integration
def test_run_image_runs_python_as_the_cnb_user(cnb: Cnb, bookworm: BookwormImages) -> None:  # noqa: F811
    code = "import os, sys; print(os.getuid(), os.getgid(), sys.version_info[0]); print(1)"
    done = cnb("run", bookworm.run, "--", "python3", "-c", code)
    assert done.stdout.split() == ["1000", "1000", "3", "1"]


@pytest.mark.integration
def test_rebuilding_gives_the_same_digests(
    tmp_path: Path,
    cnb: Cnb,
    bookworm: BookwormImages,  # noqa: F811
    bookworm_patched: BookwormImages,  # noqa: F811
) -> None:
    """Same recipe and mirror content => same digests: the build image of the patched recipe comes from a
    second, independent mmdebstrap run (another CNB_HOME, another temporary root) with the same packages."""
    built = {bookworm.build_status_sha256: bookworm.build_digest}
    status, digest = bookworm_patched.build_status_sha256, bookworm_patched.build_digest
    if status not in built:  # the mirror moved on between the two cached builds: build once more now
        built[status] = digest
        out = tmp_path / "again"
        cnb("base", "create", "--config", str(bookworm.recipe), "--build-image", f"oci:{out}:build",
            "--run-image", f"oci:{out}:run")  # fmt: skip
        fresh = skopeo_inspect(f"oci:{out}:build")
        digest = fresh["Digest"]
        status = hashlib.sha256(layer_member(out, "build", STATUS)).hexdigest()
        assert skopeo_inspect(f"oci:{out}:run")["Layers"] == fresh["Layers"]  # equal package lists: one rootfs
    assert status in built, "the Debian mirror changed during the test"
    assert digest == built[status]
    assert skopeo_inspect(bookworm.build)["Digest"] == bookworm.build_digest  # what the layout really holds


@pytest.mark.integration
def test_extra_run_package_gives_a_new_run_image(
    tmp_path: Path,
    bookworm: BookwormImages,  # noqa: F811
    bookworm_patched: BookwormImages,  # noqa: F811
) -> None:
    assert bookworm_patched.run_digest != bookworm.run_digest
    base = {p.name for p in installed_packages(layer_member(bookworm.layout, "run", STATUS).decode())}
    run = layer_member(bookworm_patched.layout, "run", STATUS).decode()
    build = layer_member(bookworm_patched.layout, "build", STATUS).decode()
    assert EXTRA_PACKAGE not in base
    assert EXTRA_PACKAGE in {p.name for p in installed_packages(run)}
    assert base <= {p.name for p in installed_packages(run)}
    assert EXTRA_PACKAGE not in {p.name for p in installed_packages(build)}  # the build image does not get it
    old = skopeo_inspect(bookworm.run, "--config")["config"]
    new = skopeo_inspect(bookworm_patched.run, "--config")["config"]
    assert (new["User"], new["Env"], new["Labels"]) == (old["User"], old["Env"], old["Labels"])
