"""``cnb build --builder DIR``: the builder assembled from builder.toml is reused while nothing that went into it
changed (builder.toml, the buildpack directories, the build image, cnb), and assembled again when something did."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

import cnbplatform.platform.builder as platform_builder
from cnbplatform.lifecycle.common import NullReporter
from cnbplatform.oci.layers.fingerprint import RACY_MARGIN_NS
from cnbplatform.platform.build_builder import BuilderRef, _base_hint, builder_from_config
from cnbplatform.platform.context import PlatformContext
from tests.support.builders import REPO, make_tiny_bases

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("bases")
    make_tiny_bases(home)
    return home


class Assemblies:
    """Counts the calls of ``create_builder_image`` (the full assembly)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = platform_builder.create_builder_image

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(platform_builder, "create_builder_image", counted)


def settle() -> None:
    """Let fresh files age past the racy margin, so their stat fingerprint can be trusted."""
    time.sleep(RACY_MARGIN_NS / 1e9 + 0.05)


@pytest.fixture
def workspace(tmp_path: Path, bases: Path) -> tuple[PlatformContext, Path, Path]:
    """A home with the tiny bases, a copy of the procfile buildpack and a builder.toml naming it."""
    home = tmp_path / "home"
    shutil.copytree(bases, home, symlinks=True)
    buildpack = tmp_path / "procfile"
    shutil.copytree(REPO / "buildpacks" / "procfile", buildpack, symlinks=True)
    config = tmp_path / "builder" / "builder.toml"
    config.parent.mkdir()
    config.write_text(
        f'[[buildpacks]]\nuri = "{buildpack}"\n[[order]]\n[[order.group]]\nid = "cnb/procfile"\n'
        '[build]\nimage = "cnb/tiny-build"\n[[run.images]]\nimage = "cnb/tiny-run"\n'
    )
    settle()
    return PlatformContext(home=home), config, buildpack


def build(ctx: PlatformContext, config: Path) -> BuilderRef:
    return builder_from_config(ctx, config, NullReporter())


def test_an_unchanged_builder_is_reused_and_any_changed_input_assembles_it_again(
    workspace: tuple[PlatformContext, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, config, buildpack = workspace
    assemblies = Assemblies(monkeypatch)
    first = build(ctx, config)
    (record,) = (ctx.home / "builder-cache").glob("*.json")
    assert str(buildpack) in json.loads(record.read_text())["directories"]
    again = build(ctx, config)
    assert (assemblies.count, again.address, again.image.descriptor) == (1, first.address, first.image.descriptor)

    detect = buildpack / "bin" / "detect"
    detect.write_text(detect.read_text() + "# changed\n")
    settle()
    changed = build(ctx, config)
    assert assemblies.count == 2 and changed.image.descriptor.digest != first.image.descriptor.digest
    assert build(ctx, config).address == changed.address and assemblies.count == 2

    config.write_text('description = "other"\n' + config.read_text())
    assert build(ctx, config).address != changed.address and assemblies.count == 3

    data = json.loads(record.read_text())
    data["images"]["cnb/tiny-build"] = "sha256:" + "0" * 64  # the build image's tag moved
    record.write_text(json.dumps(data))
    build(ctx, config)
    assert assemblies.count == 4
    record.write_text("{torn")
    build(ctx, config)
    assert assemblies.count == 5 and json.loads(record.read_text())["format"] >= 1  # and the record is made again


def test_a_buildpack_that_no_fingerprint_covers_is_not_remembered(
    workspace: tuple[PlatformContext, Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, config, buildpack = workspace
    archive = shutil.make_archive(str(tmp_path / "procfile"), "gztar", buildpack)
    config.write_text(config.read_text().replace(str(buildpack), archive))
    assemblies = Assemblies(monkeypatch)
    build(ctx, config)
    build(ctx, config)
    assert assemblies.count == 2
    assert not list((ctx.home / "builder-cache").glob("*.json"))


def test_the_base_image_hint_is_only_for_the_builders_base_images() -> None:
    config = REPO / "builders" / "tiny" / "builder.toml"
    hint = _base_hint(config, "reading build image cnb/tiny-build: image 'cnb/tiny-build:latest' not found")
    assert "cnb base create --config" in hint and "--build-image cnb/tiny-build --run-image cnb/tiny-run" in hint
    assert _base_hint(config, "reading buildpack /nowhere/bp: no such file or directory") == ""
