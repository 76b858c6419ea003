"""Issue 5 item 1 "must show": ``cnb rebase`` end to end (docs/spec-notes.md §8; §16 items 57-60).

An app is built with ``cnb lifecycle create`` on the busybox run image; the "OS update" is the same run image plus
one layer adding ``/etc/os-update``. After ``cnb rebase`` the app's layers keep their digests, the base layers are
the new run image's, the labels name the new run image and ``cnb run`` shows the update. The same happens in a
registry with ``--publish`` without any app layer moving (the registry's access log says so), in an OCI layout,
in a Docker engine, and through ``cnb lifecycle rebase``. The checks refuse with exit 72 and give way to ``--force``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from cnbplatform.files.labels import LIFECYCLE_METADATA_LABEL, LifecycleMetadata
from cnbplatform.files.report import Report
from cnbplatform.oci.image import Image, as_image
from cnbplatform.oci.store.local import LocalStore
from tests.conftest import REPO, Cnb
from tests.support.dockerd import RunningDockerd
from tests.support.rebase import write_changed_image, write_updated_run_image
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect

pytestmark = pytest.mark.integration

PROCFILE = 'web: echo "app says hi"; cat /etc/os-update 2>/dev/null || echo "no os update"\n'
ORDER = '[[order]]\n[[order.group]]\nid = "cnb/procfile"\nversion = "0.1.0"\n'


@dataclass(frozen=True)
class Built:
    home: Path  # tiny-build, tiny-run (old), tiny-run-updated, myapp (built on tiny-run)
    project: Path


def _cnb(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", "-q", *args],
        cwd=REPO, env={"CNB_HOME": str(home), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), **(env or {})},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def build_app(cnb: Cnb, project: Path, output: str, run_toml: str) -> None:
    """``cnb lifecycle create`` of the Procfile app (fresh layers dir) with *run_toml* naming the run image."""
    layers = project / "layers"
    shutil.rmtree(layers, ignore_errors=True)
    layers.mkdir()
    (project / "run.toml").write_text(run_toml)
    cnb(
        "lifecycle", "create", "--app", str(project / "app"), "--layers", str(layers),
        "--platform", str(project / "platform"), "--buildpacks", str(project / "buildpacks"),
        "--order", str(project / "order.toml"), "--run", str(project / "run.toml"),
        "--sandbox", "bwrap", "--build-image", "tiny-build", output,
        extra_env={"CNB_PLATFORM_API": "0.15"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    home = tmp_path_factory.mktemp("rebase-home")
    _cnb(home, "base", "create", "--config", str(REPO / "builders/tiny/base.toml"),
         "--build-image", "tiny-build", "--run-image", "tiny-run")  # fmt: skip
    project = tmp_path_factory.mktemp("rebase-project")
    shutil.copytree(REPO / "buildpacks/procfile", project / "buildpacks/cnb_procfile/0.1.0")
    (project / "app").mkdir()
    (project / "app/Procfile").write_text(PROCFILE)
    (project / "order.toml").write_text(ORDER)
    (project / "platform").mkdir()
    build_app(Cnb(home, {"CNB_HOME": str(home), "PATH": "/usr/bin:/bin"}), project, "myapp", RUN_TOML)
    write_updated_run_image(home, "tiny-run", "tiny-run-updated")
    return Built(home, project)


RUN_TOML = '[[images]]\nimage = "tiny-run"\nmirrors = ["tiny-run-mirror"]\n'


@pytest.fixture
def home(cnb: Cnb, built: Built) -> Path:
    shutil.copytree(built.home, cnb.home, symlinks=True)
    return cnb.home


def local(home: Path, name: str) -> Image:
    return as_image(LocalStore(home).read(name))


def lifecycle_metadata(image: Image) -> LifecycleMetadata:
    return LifecycleMetadata.from_json_strict(image.config.labels[LIFECYCLE_METADATA_LABEL])


def assert_rebased(before: Image, after: Image, new_run: Image) -> None:
    """§16 item 60: app layers unchanged above the new base, metadata and base labels updated."""
    old_count = before.config.diff_ids.index(lifecycle_metadata(before).run_image.top_layer) + 1
    new_count = len(new_run.manifest.layers)
    assert [d.digest for d in after.manifest.layers[new_count:]] == [
        d.digest for d in before.manifest.layers[old_count:]
    ]
    assert [d.digest for d in after.manifest.layers[:new_count]] == [d.digest for d in new_run.manifest.layers]
    assert after.config.diff_ids[:new_count] == new_run.config.diff_ids
    metadata = lifecycle_metadata(after)
    assert metadata.run_image.top_layer == new_run.config.diff_ids[-1]
    assert new_run.descriptor.digest in metadata.run_image.reference
    assert metadata.app == lifecycle_metadata(before).app
    base_labels = {k: v for k, v in new_run.config.labels.items() if k.startswith("io.buildpacks.base.")}
    assert {k: v for k, v in after.config.labels.items() if k.startswith("io.buildpacks.base.")} == base_labels
    assert after.config.config.entrypoint == before.config.config.entrypoint
    assert after.config.config.env == before.config.config.env


def test_local_rebase_onto_the_os_update_runs(cnb: Cnb, home: Path, tmp_path: Path) -> None:
    before = local(home, "myapp")
    assert cnb("run", "myapp").stdout.splitlines() == ["app says hi", "no os update"]
    cnb("image", "tag", "tiny-run-updated", "tiny-run")  # the OS update is published under the same name
    done = cnb("rebase", "myapp", "--tag", "myapp:v2", "--report-output-dir", str(tmp_path / "report"))
    after, new_run = local(home, "myapp"), local(home, "tiny-run")
    assert_rebased(before, after, new_run)
    assert lifecycle_metadata(after).run_image.image == "tiny-run"  # resolved from the label: names unchanged
    assert local(home, "myapp:v2").descriptor == after.descriptor
    assert after.descriptor.digest in done.stdout
    report = Report.load(tmp_path / "report" / "report.toml")
    assert report.tags == ("myapp", "myapp:v2") and report.digest == after.descriptor.digest
    assert cnb("run", "myapp").stdout.splitlines() == ["app says hi", "patched"]
    # the same inputs give the same image (created is normalised)
    cnb("rebase", "myapp", "--previous-image", "myapp", "--run-image", "tiny-run", "--tag", "myapp:v3")
    assert local(home, "myapp:v3").descriptor == after.descriptor


def test_oci_layout_rebase_with_force_records_the_new_name(cnb: Cnb, home: Path, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    cnb("image", "copy", "myapp", f"oci:{layout}:app")
    cnb("image", "copy", "tiny-run-updated", f"oci:{layout}:run")
    before = as_image(LocalStore(home).read("myapp"))
    refused = cnb("rebase", f"oci:{layout}:app", "--run-image", f"oci:{layout}:run", check=False)
    assert refused.returncode == 72 and "is not the run image" in refused.stderr, refused.stderr
    done = cnb("rebase", f"oci:{layout}:app", "--run-image", f"oci:{layout}:run", "--force")
    assert "warning" in done.stderr and "--force" in done.stderr
    config = skopeo_inspect(f"oci:{layout}:app", "--config")
    metadata = json.loads(config["config"]["Labels"][LIFECYCLE_METADATA_LABEL])
    assert metadata["runImage"]["image"] == f"oci:{layout}:run"
    assert metadata["runImage"].get("mirrors", []) == []
    raw = skopeo_inspect(f"oci:{layout}:app", "--raw")
    run_raw = skopeo_inspect(f"oci:{layout}:run", "--raw")
    assert [x["digest"] for x in raw["layers"][:2]] == [x["digest"] for x in run_raw["layers"]]
    assert [x["digest"] for x in raw["layers"][2:]] == [d.digest for d in before.manifest.layers[1:]]


REFUSALS = [
    ("rebasable=false", "io.buildpacks.rebasable=false"),
    ("arm64 run image", "linux/arm64"),
    ("another distro", "alpine"),
    ("run image not recorded", "is not the run image"),
]


@pytest.mark.parametrize(("what", "needle"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_exit_72_and_force_accepts(cnb: Cnb, home: Path, what: str, needle: str) -> None:
    args = ["rebase", "myapp"]
    if what == "rebasable=false":
        write_changed_image(home, "myapp", "myapp", labels={"io.buildpacks.rebasable": "false"})
        cnb("image", "tag", "tiny-run-updated", "tiny-run")
    elif what == "arm64 run image":
        write_changed_image(home, "tiny-run-updated", "tiny-run-mirror", architecture="arm64")
        args += ["--run-image", "tiny-run-mirror"]
    elif what == "another distro":
        write_changed_image(home, "tiny-run-updated", "tiny-run", labels={"io.buildpacks.base.distro.name": "alpine"})
    else:
        args += ["--run-image", "tiny-run-updated"]
    refused = cnb(*args, check=False)
    assert refused.returncode == 72, refused.stderr
    assert needle in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    before = local(home, "myapp").descriptor
    accepted = cnb(*args, "--force")
    assert "warning" in accepted.stderr and needle in accepted.stderr
    assert local(home, "myapp").descriptor != before


def test_an_image_not_built_by_buildpacks_is_refused(cnb: Cnb, home: Path) -> None:
    done = cnb("rebase", "tiny-run-updated", "--run-image", "tiny-run", "--force", check=False)
    assert done.returncode == 72
    assert "not an image built by buildpacks" in done.stderr and "Traceback" not in done.stderr
    missing = cnb("rebase", "no-such-app", check=False)
    assert missing.returncode == 72 and "no-such-app" in missing.stderr


def _requests(log: str) -> list[tuple[str, str]]:
    return re.findall(r'"(GET|HEAD|PUT|PATCH|POST|DELETE) (\S+) HTTP', log)


def test_publish_moves_no_app_layer(cnb: Cnb, home: Path, built: Built, registry: RunningRegistry) -> None:
    repo = f"{registry.host}/rebase-e2e"
    cnb("image", "copy", "tiny-run", f"{repo}/run:latest")
    run_toml = f'[[images]]\nimage = "{repo}/run"\nmirrors = ["{repo}/run-mirror"]\n'
    project = home.parent / "project"
    shutil.copytree(built.project, project, symlinks=True)
    build_app(cnb, project, f"{repo}/app:latest", run_toml)
    cnb("image", "copy", "tiny-run-updated", f"{repo}/run:latest")  # the OS update, published
    before = skopeo_inspect(f"docker://{repo}/app:latest", "--raw")
    app_config = skopeo_inspect(f"docker://{repo}/app:latest", "--config")
    new_run = skopeo_inspect(f"docker://{repo}/run:latest", "--raw")
    mark = len(registry.log_text())
    cnb("rebase", "--publish", f"{repo}/app", "--tag", f"{repo}/app:v2", "--tag", f"{repo}/app-copy:v1")
    requests = _requests(registry.log_text()[mark:])
    assert requests, "the registry logged nothing"
    top = json.loads(app_config["config"]["Labels"][LIFECYCLE_METADATA_LABEL])["runImage"]["topLayer"]
    base_count = app_config["rootfs"]["diff_ids"].index(top) + 1
    app_blobs = {layer["digest"].split(":")[1] for layer in before["layers"][base_count:]}
    moved = [(m, p) for m, p in requests if m in ("GET", "PUT", "PATCH") and any(h in p for h in app_blobs)]
    assert moved == [], moved
    assert not [p for m, p in requests if m == "PATCH"]
    after = skopeo_inspect(f"docker://{repo}/app:latest", "--raw")
    uploaded = {re.sub(r".*digest=sha256(%3A|:)", "", p) for m, p in requests if m == "PUT" and "/blobs/uploads/" in p}
    assert uploaded == {after["config"]["digest"].split(":")[1]}  # only the new config, once per repository
    update_blob = new_run["layers"][-1]["digest"].split(":")[1]
    assert any(m == "POST" and "mount=" in p and update_blob in p for m, p in requests)  # mounted from run
    assert [x["digest"] for x in after["layers"][:2]] == [x["digest"] for x in new_run["layers"]]
    assert [x["digest"] for x in after["layers"][2:]] == [x["digest"] for x in before["layers"][base_count:]]
    assert skopeo_inspect(f"docker://{repo}/app-copy:v1", "--raw") == after
    assert skopeo_inspect(f"docker://{repo}/app:v2", "--raw") == after
    assert cnb("run", f"{repo}/app").stdout.splitlines() == ["app says hi", "patched"]


def test_daemon_rebase(cnb: Cnb, home: Path, dockerd: RunningDockerd) -> None:
    env = {"DOCKER_HOST": dockerd.base_url}
    cnb("image", "copy", "myapp", "docker-daemon:rebase-app:latest", extra_env=env)
    cnb("image", "copy", "tiny-run-updated", "docker-daemon:tiny-run:latest", extra_env=env)
    done = cnb("rebase", "--daemon", "rebase-app", "--run-image", "tiny-run", "--report-output-dir", str(home / "r"), extra_env=env)  # fmt: skip
    assert "rebase-app" in done.stdout
    inspect = json.loads(
        subprocess.run(["docker", "image", "inspect", "rebase-app"], env=dockerd.env, capture_output=True, text=True,
                       check=True).stdout
    )[0]  # fmt: skip
    new_run, before = local(home, "tiny-run-updated"), local(home, "myapp")
    assert inspect["RootFS"]["Layers"] == [*new_run.config.diff_ids, *before.config.diff_ids[1:]]
    labels = inspect["Config"]["Labels"]
    assert json.loads(labels[LIFECYCLE_METADATA_LABEL])["runImage"]["topLayer"] == new_run.config.diff_ids[-1]
    report = Report.load(home / "r" / "report.toml")
    assert report.image_id == inspect["Id"]


def test_lifecycle_rebase_with_cnb_variables(cnb: Cnb, home: Path, tmp_path: Path) -> None:
    env = {"CNB_PLATFORM_API": "0.15", "CNB_RUN_IMAGE": "tiny-run-updated", "CNB_REPORT_PATH": str(tmp_path / "r.toml")}
    unset = cnb("lifecycle", "rebase", "myapp", check=False, extra_env={**env, "CNB_PLATFORM_API": ""})
    assert unset.returncode == 11
    refused = cnb("lifecycle", "rebase", "myapp", check=False, extra_env=env)
    assert refused.returncode == 72 and "is not the run image" in refused.stderr
    before = local(home, "myapp")
    cnb("lifecycle", "rebase", "myapp", "myapp:other", extra_env={**env, "CNB_FORCE_REBASE": "true"})
    assert_rebased(before, local(home, "myapp"), local(home, "tiny-run-updated"))
    assert local(home, "myapp:other").descriptor == local(home, "myapp").descriptor
    assert Report.load(tmp_path / "r.toml").tags == ("myapp", "myapp:other")
