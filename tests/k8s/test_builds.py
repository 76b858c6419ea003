"""``cnb k8s job|tekton|kpack``: what a cluster applies to build an app with a builder image's lifecycle. Every
document validates against the published schema of its kind (Kubernetes 1.34, Tekton's CRDs, kpack's OpenAPI
document and admission webhook), and dropping a required field from a rendered document fails validation."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cnb
from tests.k8s.schema import errors

TEMPLATES = Path(__file__).resolve().parents[2] / "cnbplatform" / "k8s" / "templates"
APP = "registry.example.com/team/hello:1"
BUILDER = "registry.example.com/cnb/builder:tiny"
SECURITY = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "privileged": False,
    "seccompProfile": {"type": "RuntimeDefault"},
    "capabilities": {"drop": ["ALL"]},
}


def documents(cnb: Cnb, *args: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(cnb("k8s", *args).stdout) if d]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


def mounts_of(container: dict[str, Any]) -> dict[str, str]:
    return {m["mountPath"]: m["name"] for m in container["volumeMounts"]}


def test_job_runs_the_phases_as_kpack_does(cnb: Cnb) -> None:
    (job,) = documents(cnb, "job", APP, "-B", BUILDER, "--git", "https://github.com/buildpacks/samples",
                       "--revision", "main", "--subpath", "apps/bash-script", "--registry-secret", "regcred",
                       "--cache-image", "registry.example.com/team/hello-cache", "-t", "registry.example.com/team/hello:latest",
                       "-e", "BP_LOG_LEVEL=debug x", "--name", "hello-build", "-n", "apps")  # fmt: skip
    assert errors(job) == []
    assert job["metadata"]["name"] == "hello-build" and job["metadata"]["namespace"] == "apps"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000,
                                      "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
    init = {c["name"]: c for c in pod["initContainers"]}
    assert list(init) == ["source", "platform-env", "analyze", "detect", "restore", "build", "export"]
    assert init["source"]["args"] == ["-url=https://github.com/buildpacks/samples", "-revision=main",
                                      "-path=/workspace", "-depth=1"]  # fmt: skip
    assert init["platform-env"]["args"] == ["BP_LOG_LEVEL=debug x"]
    app = "/workspace/apps/bash-script"
    cache = "-cache-image=registry.example.com/team/hello-cache"
    expected = {
        "analyze": ["-layers=/layers", "-analyzed=/layers/analyzed.toml", cache,
                    "-tag=registry.example.com/team/hello:latest", APP],
        "detect": [f"-app={app}", "-group=/layers/group.toml", "-plan=/layers/plan.toml"],
        "restore": ["-group=/layers/group.toml", "-layers=/layers", cache, "-analyzed=/layers/analyzed.toml"],
        "build": ["-layers=/layers", f"-app={app}", "-group=/layers/group.toml", "-plan=/layers/plan.toml"],
        "export": ["-layers=/layers", f"-app={app}", "-group=/layers/group.toml", "-analyzed=/layers/analyzed.toml",
                   "-project-metadata=/layers/project-metadata.toml", cache, "-report=/var/report/report.toml", APP,
                   "registry.example.com/team/hello:latest"],
    }  # fmt: skip
    executables = {"analyze": "analyzer", "detect": "detector", "restore": "restorer", "build": "builder",
                   "export": "exporter"}  # fmt: skip
    for phase, args in expected.items():
        container = init[phase]
        assert container["image"] == BUILDER and container["command"] == [f"/cnb/lifecycle/{executables[phase]}"]
        assert container["args"] == args, phase
        assert env_of(container)["CNB_PLATFORM_API"] == "0.9"
        assert container["securityContext"] == SECURITY
    for phase in ("analyze", "restore", "export"):  # the phases that reach the registry read HOME's docker config
        assert env_of(init[phase])["HOME"] == "/builder/home"
        assert mounts_of(init[phase])["/builder/home/.docker"] == "registry-secret"
    assert mounts_of(init["export"])["/var/report"] == "report"
    assert all(mounts_of(init[p])["/layers"] == "layers" for p in expected)
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["registry-secret"]["secret"] == {
        "secretName": "regcred", "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}  # fmt: skip
    assert all(volumes[n] == {"name": n, "emptyDir": {}} for n in ("layers", "home", "platform", "workspace"))
    (report,) = pod["containers"]
    assert report["command"][-1] == "cat /var/report/report.toml" and report["securityContext"] == SECURITY


def test_job_from_a_volume_with_a_volume_cache(cnb: Cnb) -> None:
    (job,) = documents(cnb, "job", APP, "-B", BUILDER, "--source-pvc", "hello-src", "--cache-pvc", "hello-cache",
                       "--uid", "1001", "--gid", "1002", "--platform-api", "0.7", "--process-type", "web")  # fmt: skip
    assert errors(job) == []
    pod = job["spec"]["template"]["spec"]
    init = {c["name"]: c for c in pod["initContainers"]}
    assert list(init) == ["analyze", "detect", "restore", "build", "export"]  # no clone, no env
    assert pod["securityContext"]["runAsUser"] == 1001 and pod["securityContext"]["fsGroup"] == 1002
    assert "-cache-dir=/cache" not in init["analyze"]["args"]  # kpack: a volume cache is restore's and export's
    assert "-cache-dir=/cache" in init["restore"]["args"] and "-process-type=web" in init["export"]["args"]
    assert mounts_of(init["restore"])["/cache"] == "cache" and env_of(init["build"])["CNB_PLATFORM_API"] == "0.7"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["workspace"]["persistentVolumeClaim"] == {"claimName": "hello-src"}
    assert volumes["cache"]["persistentVolumeClaim"] == {"claimName": "hello-cache"}
    assert "registry-secret" not in volumes and "imagePullSecrets" not in pod


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "no source"),
        (("--git", "https://x/y", "--source-pvc", "src"), "give one source"),
        (("--git", "https://x/y", "--cache-pvc", "c", "--cache-image", "registry.example.com/c"), "give one cache"),
        (("--git", "https://x/y", "--name", "Not_A_Name"), "RFC 1123"),
        (("--git", "https://x/y", "-e", "NOEQUALS"), "KEY=VALUE"),
        (("--git", "https://x/y", "--subpath", "../up"), "relative path"),
        (("--git", "https://x/y", "--uid", "0"), "non-root"),
    ],
)
def test_job_refuses_what_a_cluster_cannot_run(cnb: Cnb, args: tuple[str, ...], message: str) -> None:
    done = cnb("k8s", "job", APP, "-B", BUILDER, *args, check=False)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""


def test_a_local_image_is_refused(cnb: Cnb) -> None:
    done = cnb("k8s", "job", APP, "-B", "oci:/tmp/layout:tiny", "--git", "https://x/y", check=False)
    assert done.returncode == 2 and "registry reference" in done.stderr


def drop(doc: dict[str, Any], path: tuple[str | int, ...]) -> dict[str, Any]:
    broken = copy.deepcopy(doc)
    parent: Any = broken
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    return broken


JOB_REQUIRED = [
    ("job.yaml.j2", ("spec", "template", "spec", "initContainers", 0, "name"), "name: analyze"),
    ("job.yaml.j2", ("spec", "template", "spec", "containers", 0, "name"), "name: report"),
    ("job.yaml.j2", ("spec", "template", "spec", "volumes", 0, "name"), "{name: layers, emptyDir: {}}"),
    ("job.yaml.j2", ("spec", "template", "spec", "initContainers", 0, "volumeMounts", 0, "mountPath"),
     "mountPath: /layers"),
    ("job.yaml.j2", ("spec", "template"), "  template:"),
]  # fmt: skip


@pytest.mark.parametrize(("template", "path", "text"), JOB_REQUIRED)
def test_dropping_a_required_field_of_the_job_fails(template: str, path: tuple[Any, ...], text: str) -> None:
    from cnbplatform.k8s.builds import BuildRequest, job_documents

    assert text in (TEMPLATES / template).read_text()  # the template writes the field …
    (job,) = job_documents(BuildRequest(APP, BUILDER, source_pvc="src"))
    assert errors(job) == []
    assert any("is a required property" in e for e in errors(drop(job, path))), path  # … and the schema needs it
