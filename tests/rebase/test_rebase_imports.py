"""A rebase in the local store loads only what it uses (issue #4: ``cnb rebase`` starts fast).

The rebase runs in a fresh interpreter, which then reports the modules it loaded: nothing of the registry client
(httpx), the Docker engine client (docker-py, requests), layer writing (tar, gzip, isal, thread pools) or TOML.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cnbplatform.files.labels import LIFECYCLE_METADATA_LABEL, LifecycleMetadata
from cnbplatform.oci.image import FileLayer, Image, Layer, as_image
from cnbplatform.oci.layers.cache import LayerCache
from cnbplatform.oci.layers.spec import Entry, LayerSpec
from cnbplatform.oci.model import ContainerConfig, Descriptor, History, ImageConfig
from cnbplatform.oci.mutate import BuiltImage, append_layers, with_config
from cnbplatform.oci.store.local import LocalStore
from tests.support.rebase import lifecycle_label, write_updated_run_image

REPO = Path(__file__).resolve().parents[2]
CREATED = "1980-01-01T00:00:01Z"

#: top-level packages and cnb modules a local rebase must not load
UNWANTED = (
    "httpx",
    "httpcore",
    "docker",
    "requests",
    "urllib3",
    "tarfile",
    "gzip",
    "isal",
    "concurrent",
    "cryptography",
    "tomllib",
    "tomli_w",
    "cnbplatform.oci.registry",
    "cnbplatform.oci.store.remote",
    "cnbplatform.oci.store.daemon",
    "cnbplatform.oci.layers.compress",
    "cnbplatform.oci.layers.cache",
    "cnbplatform.oci.rootfs.unpack",
    "cnbplatform.files.analyzed",
    "cnbplatform.files.labels",
    "cnbplatform.files.metadata",
    "cnbplatform.files.launch",
    "cnbplatform.files.layer_toml",
    "cnbplatform.files.project_metadata",
)

_CHILD = """
import json, sys
from pathlib import Path
from cnbplatform.lifecycle.common import NullReporter
from cnbplatform.platform.context import PlatformContext
from cnbplatform.platform.rebase import RebaseRequest, run_rebase

result = run_rebase(PlatformContext(home=Path(sys.argv[1])), RebaseRequest("app"), NullReporter())
json.dump({"digest": result.descriptor.digest, "modules": sorted(sys.modules)}, sys.stdout)
"""


def _layer(home: Path, name: str) -> Layer:
    spec = LayerSpec(entries=(Entry.directory(name), Entry.file(f"{name}/data", f"{name}\n".encode())))
    blob = LayerCache(home / "layer-cache").create(spec, home / "blobs").blob
    return FileLayer(Descriptor(blob.media_type, blob.digest, blob.size), blob.diff_id, blob.path)


def _store(home: Path) -> tuple[Image, Image]:
    """A run image, its OS update tagged ``run`` in its place, and an app built on the first one."""
    store = LocalStore(home)
    config = ImageConfig(
        architecture="amd64",
        os="linux",
        diff_ids=(),
        created=CREATED,
        config=ContainerConfig(env=("PATH=/bin",)),
        history=(History(created_by="base"),),
    )
    run = BuiltImage(config, [_layer(home, "base")])
    store.write(run, "run")
    app = append_layers(run, [_layer(home, "app")], [History(created_by="app")])
    container = ContainerConfig(
        env=("PATH=/bin", "CNB_PLATFORM_API=0.15"),
        labels={LIFECYCLE_METADATA_LABEL: lifecycle_label(run, image="run")},
    )
    app = with_config(app, container)
    store.write(app, "app")
    updated = write_updated_run_image(home, "run", "run")
    return app, updated


def test_a_local_rebase_loads_no_registry_engine_or_layer_code(tmp_path: Path) -> None:
    home = tmp_path / "home"
    app, updated = _store(home)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CNB_")}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, os.fspath(home)], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    rebased = as_image(LocalStore(home).read("app"))
    assert report["digest"] == rebased.descriptor.digest != app.descriptor.digest
    assert rebased.config.diff_ids[: len(updated.config.diff_ids)] == updated.config.diff_ids
    label = LifecycleMetadata.from_json_strict(rebased.config.labels[LIFECYCLE_METADATA_LABEL])
    assert label.run_image.top_layer == updated.config.diff_ids[-1]
    loaded = set(report["modules"])
    assert "cnbplatform.oci.store.local" in loaded  # the child did go through the local store
    unwanted = sorted(m for m in loaded if any(m == u or m.startswith(f"{u}.") for u in UNWANTED))
    assert unwanted == []
