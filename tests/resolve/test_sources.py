"""The kbld-shaped fixture (``fixture/``): a Deployment, a Job and a custom resource, and a Config whose
``sources`` build a buildpacks app and a Dockerfile app (buildah, no daemon) and push them to ``destinations`` in
the test registry. Every output reference is a digest skopeo finds there, the annotations name the right
origins (local path and git), and both lock formats fed back in give identical output without building again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO
from tests.resolve.conftest import Pushed
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect

FIXTURE = Path(__file__).resolve().parent / "fixture"
ANNOTATION = "kbld.k14s.io/images"


def git(work: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    return subprocess.run(
        ["git", "-C", str(work), *args], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def resolve(home: Path, work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CNB_", "DOCKER_", "CONTAINERS_"))}
    env.update(CNB_HOME=str(home), PYTHONPATH=str(REPO), DOCKER_CONFIG=str(work.parent / "docker-config"))
    done = subprocess.run([sys.executable, "-m", "cnbplatform", "resolve", *args], cwd=work, env=env,
                          capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def origins_of(doc: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {i["url"]: i["origins"] for i in yaml.safe_load(doc["metadata"]["annotations"][ANNOTATION])}


def test_fixture_builds_pushes_and_pins(
    tiny_builder_home: Path, registry: RunningRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    work = tmp_path / "app"
    shutil.copytree(FIXTURE, work)
    for path in work.glob("*.yml"):
        path.write_text(path.read_text().replace("REGISTRY", registry.host))
    git(work, "init", "-q")
    git(work, "remote", "add", "origin", "https://example.com/team/app.git")
    git(work, "add", ".")
    git(work, "commit", "-qm", "app")
    sha = git(work, "rev-parse", "HEAD")
    first = resolve(tiny_builder_home, work, "-f", ".", "--lock-output", str(tmp_path / "kbld.lock.yml"))
    assert "build web-app" in first.stderr and "build dockerfile-app" in first.stderr
    docs = [d for d in yaml.safe_load_all(first.stdout) if d]
    assert [d["kind"] for d in docs] == ["Pipeline", "Deployment", "Job"]  # files in path order, Config consumed
    pipeline, deployment, job = docs
    host = registry.host
    web, sidecar = (c["image"] for c in deployment["spec"]["template"]["spec"]["containers"])
    built_job = job["spec"]["template"]["spec"]["containers"][0]["image"]
    runner = pipeline["spec"]["steps"][0]["runnerImage"]
    for reference, tagged in (
        (web, f"{host}/fixture/web-app:latest"),
        (web, f"{host}/fixture/web-app:v1"),
        (built_job, f"{host}/fixture/dockerfile-app:latest"),
        (sidecar, f"{host}/rs/sidecar:latest"),
        (runner, f"{host}/rs/worker:2"),
    ):
        assert reference == f"{tagged.rsplit(':', 1)[0]}@{skopeo_inspect(f'docker://{tagged}')['Digest']}"
        assert skopeo_inspect(f"docker://{reference}")["Digest"] == reference.split("@", 1)[1]
    config = skopeo_inspect(f"docker://{web}", "--config")["config"]
    assert "io.buildpacks.build.metadata" in config["Labels"]  # the pack source was built with buildpacks
    files = skopeo_inspect(f"docker://{built_job}")
    assert len(files["Layers"]) == 1  # FROM scratch + one COPY, built by buildah
    by_url = origins_of(deployment)
    git_origin = {"git": {"dirty": False, "remoteURL": "https://example.com/team/app.git", "sha": sha}}
    assert by_url[web] == [{"local": {"path": str(work / "apps" / "web")}}, git_origin]
    assert by_url[sidecar] == [{"resolved": {"tag": "latest", "url": f"{host}/rs/sidecar:latest"}}]
    assert origins_of(job)[built_job] == [{"local": {"path": str(work / "apps" / "dockerfile")}}, git_origin]
    assert origins_of(pipeline)[runner] == [{"resolved": {"tag": "2", "url": f"{host}/rs/worker:2"}}]

    again = resolve(tiny_builder_home, work, "-f", ".", "-f", str(tmp_path / "kbld.lock.yml"),
                    "--lock-output", str(tmp_path / "again.lock.yml"))  # fmt: skip
    assert again.stdout == first.stdout and "build web-app" not in again.stderr
    assert (tmp_path / "again.lock.yml").read_text() == (tmp_path / "kbld.lock.yml").read_text()
    resolve(tiny_builder_home, work, "-f", ".", "-f", str(tmp_path / "kbld.lock.yml"),
            "--imgpkg-lock-output", str(tmp_path / "images.yml"))  # fmt: skip
    from_imgpkg = resolve(tiny_builder_home, work, "-f", ".", "-f", str(tmp_path / "images.yml"),
                          "--imgpkg-lock-output", str(tmp_path / "images-again.yml"))  # fmt: skip
    assert from_imgpkg.stdout == first.stdout and "build " not in from_imgpkg.stderr
    assert (tmp_path / "images-again.yml").read_text() == (tmp_path / "images.yml").read_text()
    assert git(work, "status", "--porcelain") == ""  # nothing was written into the sources
