"""``cnb base create`` with the busybox recipe: valid, reproducible, runnable, labelled per docs/spec-notes.md §1.1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO, Cnb
from tests.support.tools import skopeo_inspect, umoci_unpack

pytestmark = pytest.mark.integration
RECIPE = REPO / "builders" / "tiny" / "base.toml"


def test_busybox_base_images(tmp_path: Path, cnb: Cnb) -> None:
    out = tmp_path / "layout"
    cnb("base", "create", "--config", str(RECIPE), "--build-image", f"oci:{out}:build", "--run-image", f"oci:{out}:run")
    build = skopeo_inspect(f"oci:{out}:build", "--config")
    run = skopeo_inspect(f"oci:{out}:run", "--config")
    env = dict(item.split("=", 1) for item in build["config"]["Env"])
    assert env["CNB_USER_ID"] == "1000" and env["CNB_GROUP_ID"] == "1000" and "PATH" in env
    assert build["config"]["User"] == "1000:1000"
    labels = run["config"]["Labels"]
    assert labels["io.buildpacks.rebasable"] == "true"
    assert labels["io.buildpacks.base.distro.name"] == "busybox"
    assert labels["io.buildpacks.base.id"] == "io.cnb.tiny"
    assert "io.buildpacks.rebasable" not in build["config"]["Labels"]
    rootfs = umoci_unpack(out, "run", tmp_path / "bundle")
    assert "cnb:x:1000:1000:" in (rootfs / "etc" / "passwd").read_text()
    assert (rootfs / "tmp").stat().st_mode & 0o1777 == 0o1777

    # reproducible: a second machine (empty CNB_HOME) makes the same digests
    again = tmp_path / "again"
    other = Cnb(tmp_path / "other-home", {**cnb.env, "CNB_HOME": str(tmp_path / "other-home")})
    other("base", "create", "--config", str(RECIPE), "--build-image", f"oci:{again}:b", "--run-image", f"oci:{again}:r")
    assert skopeo_inspect(f"oci:{again}:r")["Digest"] == skopeo_inspect(f"oci:{out}:run")["Digest"]
    assert skopeo_inspect(f"oci:{again}:b")["Digest"] == skopeo_inspect(f"oci:{out}:build")["Digest"]


def test_run_the_base_image(tmp_path: Path, cnb: Cnb) -> None:
    cnb("base", "create", "--config", str(RECIPE), "--build-image", "tiny-build", "--run-image", "tiny-run")
    done = cnb("run", "tiny-run", "--", "sh", "-c", "id -u; echo $CNB_USER_ID; exit 5", check=False)
    assert done.returncode == 5
    assert done.stdout.split() == ["1000", "1000"]
    listing = {row["name"] for row in json.loads(cnb("image", "ls", "--json").stdout)}
    assert {"tiny-build:latest", "tiny-run:latest"} <= listing


def test_bad_recipe_is_refused(tmp_path: Path, cnb: Cnb) -> None:
    recipe = tmp_path / "base.toml"
    recipe.write_text('[base]\nid = "x"\nkind = "alpine"\n')
    done = cnb("base", "create", "--config", str(recipe), "--build-image", "b", "--run-image", "r", check=False)
    assert done.returncode != 0
    assert str(recipe) in done.stderr and "kind" in done.stderr
    recipe.write_text("[base\n")
    done = cnb("base", "create", "--config", str(recipe), "--build-image", "b", "--run-image", "r", check=False)
    assert done.returncode != 0 and "not valid TOML" in done.stderr


def test_run_sets_home_from_the_image_user(tmp_path: Path, cnb: Cnb) -> None:
    cnb("base", "create", "--config", str(RECIPE), "--build-image", "tiny-build", "--run-image", "tiny-run")
    assert cnb("run", "tiny-run", "--", "sh", "-c", "echo $HOME").stdout.strip() == "/home/cnb"
