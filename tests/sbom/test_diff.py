"""``cnb sbom diff``: components added, removed and changed between two inventories."""

from __future__ import annotations

from dataclasses import replace

from cnbplatform.sbom.diff import diff_inventories, diff_json, diff_lines, identity
from cnbplatform.sbom.inventory import assemble
from cnbplatform.sbom.model import BuildpackInfo, Inventory
from tests.sbom.fixtures import GOLDEN, SUBJECT, golden_inventory, os_inventory, sbom_files

NEW_RUN = "sha256:" + "99" * 32


def after_rebase_and_upgrade() -> Inventory:
    status = (GOLDEN / "os" / "dpkg-status").read_text()
    status = status.replace("Version: 2.36-9+deb12u4", "Version: 2.36-9+deb12u7")  # libc6 security update
    status = status.replace("Package: tzdata\n", "Package: tzdata-legacy\n")  # tzdata gone, tzdata-legacy new
    assert SUBJECT.run_image is not None
    run = replace(SUBJECT.run_image, digest=NEW_RUN, reference=f"127.0.0.1:5000/demo/run@{NEW_RUN}")
    buildpacks = (*SUBJECT.buildpacks[:2], BuildpackInfo("test/empty", "0.2.0"))
    subject = replace(SUBJECT, digest="sha256:" + "77" * 32, run_image=run, buildpacks=buildpacks)
    return assemble(subject, sbom_files(), os_inventory(status))


def test_identity_drops_the_version_only() -> None:
    libc = next(c for c in golden_inventory().components if c.name == "libc6")
    assert identity(libc) == "pkg:deb/debian/libc6?arch=amd64&distro=debian-12"


def test_diff_finds_added_removed_and_changed() -> None:
    result = diff_inventories(golden_inventory(), after_rebase_and_upgrade())
    assert [c.name for c in result.added] == ["tzdata-legacy"]
    assert [c.name for c in result.removed] == ["tzdata"]
    changed = {c.after.name: (c.before.version, c.after.version) for c in result.changed}
    assert changed == {
        "libc6": ("2.36-9+deb12u4", "2.36-9+deb12u7"),
        "127.0.0.1:5000/demo/run:bookworm": (SUBJECT.run_image.digest if SUBJECT.run_image else "", NEW_RUN),
        "test/empty": ("0.1.0", "0.2.0"),
    }
    data = diff_json(result)
    assert data["added"][0]["purl"].startswith("pkg:deb/debian/tzdata-legacy@")
    assert {c["name"] for c in data["changed"]} == set(changed)
    lines = diff_lines(result)
    assert "~ libc6 2.36-9+deb12u4 -> 2.36-9+deb12u7" in lines
    assert lines[-1] == "1 added, 1 removed, 3 changed"


def test_same_inventory_has_no_differences() -> None:
    result = diff_inventories(golden_inventory(), golden_inventory())
    assert result.empty
    assert diff_lines(result)[-1] == "no differences"
