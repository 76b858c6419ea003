"""Threat: a buildpack (or a caller) makes cnb store an image that no reader accepts (issue 9 item 5).

Readers refuse a manifest or config over ``MAX_DOCUMENT`` (8 MiB), so a buildpack that writes a 20 MB label or
20 MB of layer metadata must fail the build, named, before anything is written, and the image that had the name
before must still be there and readable. A digest is never a destination: a name is given by a tag.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from cnbplatform.oci.image import MAX_DOCUMENT, as_image
from cnbplatform.oci.model import InvalidDocumentError
from cnbplatform.oci.mutate import with_config
from cnbplatform.oci.store.local import LocalStore
from tests.security.helpers import cnb, copy_of_home
from tests.support.builders import BUILDER, REPO

pytestmark = pytest.mark.integration
BIG = 20 * 1024 * 1024

#: bin/build lines that write BIG bytes of 'a' into a TOML string value, with busybox's head and tr
BIG_LABEL = f"""{{ printf '[[labels]]\\nkey = "big"\\nvalue = "'; head -c {BIG} /dev/zero | tr '\\0' a; printf '"\\n'; }} \\
  > "$CNB_LAYERS_DIR/launch.toml"
"""
BIG_METADATA = f"""{{ printf '[types]\\nlaunch = true\\n[metadata]\\nbig = "'; head -c {BIG} /dev/zero | tr '\\0' a; printf '"\\n'; }} \\
  > "$CNB_LAYERS_DIR/huge.toml"
mkdir -p "$CNB_LAYERS_DIR/huge"
"""


@pytest.fixture(scope="module")
def home(tiny_builder_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's CNB_HOME with the tiny builder, for this module's builds."""
    return copy_of_home(tiny_builder_home, tmp_path_factory, "size-home")


def app_dir(root: Path) -> Path:
    app = root / "app"
    app.mkdir()
    (app / "Procfile").write_text("web: echo hello\n")
    return app


def big_buildpack(root: Path, body: str) -> Path:
    bp = root / "big-bp"
    (bp / "bin").mkdir(parents=True)
    (bp / "buildpack.toml").write_text('api = "0.10"\n[buildpack]\nid = "test/too-big"\nversion = "1.0.0"\n')
    for name, script in (("detect", "#!/bin/sh\nexit 0\n"), ("build", f"#!/bin/sh\nset -e\n{body}")):
        (bp / "bin" / name).write_text(script)
        (bp / "bin" / name).chmod(0o755)
    return bp


def digest_of(home: Path, name: str) -> str:
    done = cnb(home, "image", "inspect", "--json", name)
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["digest"])


@pytest.mark.parametrize("body", [BIG_LABEL, BIG_METADATA], ids=["20 MB label", "20 MB layer metadata"])
def test_a_buildpack_whose_outputs_would_not_fit_fails_naming_it(home: Path, tmp_path: Path, body: str) -> None:
    name = f"sized-{tmp_path.name.lower()}"
    app = app_dir(tmp_path)
    first = cnb(home, "build", name, "--builder", BUILDER, "--path", str(app))
    assert first.returncode == 0, first.stderr
    before = digest_of(home, name)

    done = cnb(
        home, "build", name, "--builder", BUILDER, "--path", str(app), "--buildpack", str(big_buildpack(tmp_path, body))
    )
    assert done.returncode != 0 and "Traceback" not in done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: build: ") and "test/too-big@1.0.0" in last and "image config" in last, last
    assert digest_of(home, name) == before
    assert cnb(home, "run", name).stdout.strip() == "hello"  # still there and readable, layers and all


def test_a_store_refuses_a_config_that_readers_would_refuse(home: Path, tmp_path: Path) -> None:
    """The last check, below every command: the store's write refuses before any blob is staged."""
    name = f"sized-{tmp_path.name.lower()}"
    assert cnb(home, "build", name, "--builder", BUILDER, "--path", str(app_dir(tmp_path))).returncode == 0
    store = LocalStore(home)
    image = as_image(store.read(name))
    container = image.config.config
    big = with_config(image, replace(container, labels={**container.labels, "big": "a" * (MAX_DOCUMENT + 1)}))
    blobs_before = sorted(p.name for p in (home / "images" / "blobs" / "sha256").iterdir())
    with pytest.raises(InvalidDocumentError, match=r"config would be \d+ bytes, more than the 8388608 bytes"):
        store.write(big, name)
    assert as_image(store.read(name)).descriptor == image.descriptor
    assert sorted(p.name for p in (home / "images" / "blobs" / "sha256").iterdir()) == blobs_before


@pytest.mark.parametrize(
    "args",
    [
        ("build", "dest@sha256:" + "a" * 64, "--builder", BUILDER, "--path", str(REPO / "examples" / "shell")),
        ("build", "dest", "--tag", "other@sha256:" + "a" * 64, "--builder", BUILDER, "--path", "."),
        ("image", "copy", BUILDER, "dest@sha256:" + "a" * 64),
        ("image", "copy", BUILDER, "local:dest@sha256:" + "a" * 64),
        ("rebase", "dest@sha256:" + "a" * 64),
    ],
    ids=["build", "build --tag", "image copy", "image copy local:", "rebase"],
)
def test_a_digest_is_not_a_destination(home: Path, args: tuple[str, ...]) -> None:
    listed = cnb(home, "image", "ls").stdout
    done = cnb(home, *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "an image is written under a tag, not a digest" in done.stderr
    assert cnb(home, "image", "ls").stdout == listed
