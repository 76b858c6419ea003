"""``cnb deploy``: build (tiny builder) -> push -> manifests -> resolve, valid against the Kubernetes schema, the
image pinned to the pushed digest and annotated with its source; ``--apply`` pipes the same text to kubectl.

No cluster can run here, so ``--apply`` is checked with a ``kubectl`` stand-in on PATH that records what it was
given (the real kubectl would need an API server to apply anything)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO
from tests.k8s.schema import errors
from tests.support.builders import BUILDER
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect


def deploy(
    home: Path, *args: str, path: str | None = None, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {"CNB_HOME": str(home), "PATH": path or "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO)}
    env.update(extra or {})
    return subprocess.run([sys.executable, "-m", "cnbplatform", "deploy", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


def test_deploy_outputs_pinned_valid_manifests(tiny_home: Path, registry: RunningRegistry, tmp_path: Path) -> None:
    image = f"{registry.host}/k8s/deployed:1"
    app = REPO / "examples" / "shell"
    done = deploy(tiny_home, image, "--builder", BUILDER, "--path", str(app), "--pull-secret", "regcred",
                  "--replicas", "3", "-o", str(tmp_path / "app.yml"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    deployment, service = yaml.safe_load_all((tmp_path / "app.yml").read_text())
    assert errors(deployment) == [] and errors(service) == []
    digest = skopeo_inspect(f"docker://{image}")["Digest"]
    pinned = f"{registry.host}/k8s/deployed@{digest}"
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == pinned
    assert deployment["spec"]["replicas"] == 3 and deployment["metadata"]["name"] == "deployed"
    (entry,) = yaml.safe_load(deployment["metadata"]["annotations"]["kbld.k14s.io/images"])
    assert entry["url"] == pinned and entry["origins"][0] == {"local": {"path": str(app)}}
    assert any("git" in origin for origin in entry["origins"])  # examples/shell is in this repository's work tree

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "kubectl-got.yml"
    (bin_dir / "kubectl").write_text(f'#!/bin/sh\necho "$@" > {record}.args\ncat > {record}\n')
    (bin_dir / "kubectl").chmod(0o755)
    applied = deploy(tiny_home, image, "--builder", BUILDER, "--path", str(app), "--apply",
                     path=f"{bin_dir}{os.pathsep}/usr/sbin:/usr/bin:/sbin:/bin")  # fmt: skip
    assert applied.returncode == 0, applied.stderr
    assert Path(f"{record}.args").read_text().split() == ["apply", "-f", "-"]
    sent = list(yaml.safe_load_all(record.read_text()))
    assert [d["kind"] for d in sent] == ["Deployment", "Service"]
    assert sent[0]["spec"]["template"]["spec"]["containers"][0]["image"] == pinned  # same source, same digest
    missing = deploy(tiny_home, image, "--builder", BUILDER, "--path", str(app), "--apply", path=str(tmp_path / "none"))
    assert missing.returncode == 2 and "kubectl" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1


def test_deploy_can_output_the_pull_secret_from_the_builders_credentials(
    tiny_home: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    image = f"{registry.host}/k8s/with-secret:1"
    auth = json.dumps({registry.host: "Basic " + base64.b64encode(b"robot:pull-only").decode()})
    out = tmp_path / "all.yml"
    done = deploy(tiny_home, image, "--builder", BUILDER, "--path", str(REPO / "examples" / "shell"),
                  "--pull-secret", "regcred", "--create-pull-secret", "-o", str(out),
                  extra={"CNB_REGISTRY_AUTH": auth})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "pull-only" not in done.stderr and stat.S_IMODE(out.stat().st_mode) == 0o600
    secret, deployment, service = yaml.safe_load_all(out.read_text())
    assert all(errors(d) == [] for d in (secret, deployment, service))
    config = json.loads(base64.b64decode(secret["data"][".dockerconfigjson"]))
    assert config["auths"][registry.host]["password"] == "pull-only"
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": secret["metadata"]["name"]}]


def test_deploy_refuses_a_bad_destination_before_building(tiny_home: Path, tmp_path: Path) -> None:
    """A digest, a malformed name or a non-registry store is refused with one line, and no scratch image of a build
    is left in the local store (the build never starts)."""
    store = tiny_home / "images" / "index.json"
    before = store.read_text()
    app = str(REPO / "examples" / "shell")
    for image in ("127.0.0.1:5000/x@sha256:" + "0" * 64, "Foo//bar:", "oci:" + str(tmp_path / "layout")):
        done = deploy(tiny_home, image, "--builder", BUILDER, "--path", app, "-o", str(tmp_path / "out.yml"))
        assert done.returncode == 2, (image, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert store.read_text() == before
    assert not (tmp_path / "out.yml").exists() and not (tmp_path / "layout").exists()
