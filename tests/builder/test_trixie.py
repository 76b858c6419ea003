"""The trixie builder (issue 11 item 5): its recipe, its builder order, and the static run image's tree."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from cnbplatform.builder.base import BaseRecipe
from cnbplatform.builder.debian import static_rootfs
from tests.conftest import REPO

TRIXIE = REPO / "builders" / "trixie"


def test_trixie_recipe_has_the_runtimes_go_and_a_static_run_image() -> None:
    recipe = BaseRecipe.load(TRIXIE / "base.toml")
    assert recipe.debian is not None
    debian = recipe.debian
    assert debian.suite == "trixie"
    assert debian.static_run_image
    assert {"python3", "nodejs", "ca-certificates", "tzdata"} <= set(debian.run_include)
    assert {"golang-go", "node-corepack", "npm", "python3-venv", "build-essential"} <= set(debian.build_include)
    assert "golang-go" not in debian.run_include
    assert not BaseRecipe.load(REPO / "builders" / "bookworm" / "base.toml").debian.static_run_image  # type: ignore[union-attr]


def test_trixie_builder_orders_go_python_node_procfile() -> None:
    config = tomllib.loads((TRIXIE / "builder.toml").read_text())
    assert [group["group"][0]["id"] for group in config["order"]] == [
        "cnb/go",
        "cnb/python",
        "cnb/node",
        "cnb/procfile",
    ]
    for entry in config["buildpacks"]:
        assert (TRIXIE / entry["uri"] / "buildpack.toml").is_file()


def test_static_tree_keeps_certificates_zones_and_accounts_and_no_shell(tmp_path: Path) -> None:
    root, target = tmp_path / "root", tmp_path / "static"
    files = {
        "etc/ssl/certs/ca-certificates.crt": "CERTS\n",
        "usr/share/zoneinfo/Europe/Paris": "TZif\n",
        "usr/lib/os-release": 'ID=debian\nVERSION_ID="13"\n',
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n"
        "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\ncnb:x:1000:1000::/home/cnb:/bin/bash\n",
        "etc/group": "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\ncnb:x:1000:\n",
        "etc/shadow": "root:*:1::::::\n",
        "bin/sh": "#!shell\n",
        "usr/bin/apt": "apt\n",
        "usr/lib/x86_64-linux-gnu/libc.so.6": "libc\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    os.symlink("Europe/Paris", root / "usr/share/zoneinfo/localtime-link")
    os.symlink("../usr/lib/os-release", root / "etc/os-release")
    target.mkdir()
    static_rootfs(root, target, BaseRecipe(id="t", kind="debian"))

    found = sorted(str(p.relative_to(target)) for p in target.rglob("*") if not p.is_dir() or p.is_symlink())
    assert found == [
        "etc/group", "etc/os-release", "etc/passwd", "etc/ssl/certs/ca-certificates.crt", "usr/lib/os-release",
        "usr/share/zoneinfo/Europe/Paris", "usr/share/zoneinfo/localtime-link",
    ]  # fmt: skip
    assert os.readlink(target / "etc/os-release") == "../usr/lib/os-release"
    assert (target / "etc/passwd").read_text() == (
        "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/sbin/nologin\n"
        "cnb:x:1000:1000::/home/cnb:/sbin/nologin\n"
    )
    assert (target / "etc/group").read_text() == "root:x:0:\nnogroup:x:65534:\ncnb:x:1000:\n"
    home = (target / "home" / "cnb").stat()
    assert (home.st_uid, home.st_gid) == (1000, 1000)
    assert stat.S_IMODE((target / "tmp").stat().st_mode) == 0o1777


def test_a_shell_less_base_image_says_so_and_has_no_shell_command() -> None:
    from cnbplatform.builder.base import base_image
    from cnbplatform.files.builder_labels import RUN_IMAGE_SHELL_LABEL

    recipe = BaseRecipe(id="t", kind="debian")
    static = base_image(recipe, [], "debian", "13", run=True, shell=False).config.config
    assert static.labels[RUN_IMAGE_SHELL_LABEL] == "false" and static.cmd is None
    usual = base_image(recipe, [], "debian", "13", run=True).config.config
    assert RUN_IMAGE_SHELL_LABEL not in usual.labels and usual.cmd == ("/bin/sh",)


def test_the_go_image_builder_builds_with_cnb_go_on_the_trixie_builder_and_static_run_image(tmp_path: Path) -> None:
    from cnbplatform.errors import UsageError
    from cnbplatform.imagebuilders.base import SourceBuild
    from cnbplatform.imagebuilders.go import go_request
    from cnbplatform.platform.context import context_from_env

    app = tmp_path / "app"
    app.mkdir()
    ctx = context_from_env({"CNB_HOME": str(tmp_path / "home")})
    with pytest.raises(UsageError, match=r"has no go\.mod"):
        go_request(ctx, SourceBuild(app, "go-app"), "local:x")
    (app / "go.mod").write_text("module example.com/x\n")
    request = go_request(ctx, SourceBuild(app, "go-app", {"rawOptions": []}), "local:x")
    assert (request.builder, request.run_image, request.path) == ("cnb/trixie-builder", "cnb/trixie-static", app)
    config = tomllib.loads((TRIXIE / "builder.toml").read_text())
    assert request.builder == "cnb/trixie-builder" and config["build"]["image"] == "cnb/trixie-build"
    ctx = context_from_env({"CNB_HOME": str(tmp_path / "home"), "CNB_GO_BUILDER": "b", "CNB_GO_RUN_IMAGE": "r"})
    overridden = go_request(ctx, SourceBuild(app, "go-app"), "local:x")
    assert (overridden.builder, overridden.run_image) == ("b", "r")
    with pytest.raises(UsageError, match="rawOptions have no cnb build equivalent"):
        go_request(ctx, SourceBuild(app, "go-app", {"rawOptions": ["--bare"]}), "local:x")
