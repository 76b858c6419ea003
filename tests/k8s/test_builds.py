"""``cnb k8s job|tekton|kpack``: what a cluster applies to build an app with a builder image's lifecycle. Every
document validates against the published schema of its kind (Kubernetes 1.34, Tekton's CRDs, kpack's OpenAPI
document and admission webhook), and dropping a required field from a rendered document fails validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Cnb
from tests.k8s.schema import errors
from tests.support.builders import BUILDER as TINY
from tests.support.builders import run_cnb
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect

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
    assert report["command"][-1] == "cat /var/report/report.toml"
    # Pod Security "restricted": every container non-root, no escalation, no capabilities, RuntimeDefault seccomp
    assert all(c["securityContext"] == SECURITY for c in [*pod["initContainers"], *pod["containers"]])
    assert all(set(v) - {"name"} <= {"emptyDir", "secret", "persistentVolumeClaim"} for v in pod["volumes"])


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
        (("--git", "not a url"), "expected a git URL"),
        (("--git", "https://x/y", "--cache-image", "registry.example.com/c@sha256:" + "0" * 64), "not a digest"),
    ],
)
def test_job_refuses_what_a_cluster_cannot_run(cnb: Cnb, args: tuple[str, ...], message: str) -> None:
    done = cnb("k8s", "job", APP, "-B", BUILDER, *args, check=False)
    assert done.returncode == 2 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and done.stdout == ""


def test_a_digest_as_the_image_to_build_is_refused(cnb: Cnb) -> None:
    done = cnb("k8s", "job", "registry.example.com/team/app@sha256:" + "0" * 64, "-B", BUILDER, "--git", "https://x/y",
               check=False)  # fmt: skip
    assert done.returncode == 2 and "not a digest" in done.stderr and done.stdout == ""


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


# The params and workspaces each catalog task declares (tektoncd/catalog task/buildpacks/0.6/buildpacks.yaml and
# task/buildpacks-phases/0.3/buildpacks-phases.yaml): a run naming anything else fails on the cluster.
BUILDPACKS_06 = ({"APP_IMAGE", "BUILDER_IMAGE", "SOURCE_SUBPATH", "ENV_VARS", "PROCESS_TYPE", "RUN_IMAGE",
                  "CACHE_IMAGE", "SKIP_RESTORE", "USER_ID", "GROUP_ID", "PLATFORM_DIR"},
                 {"source", "cache", "dockerconfig"})  # fmt: skip
PHASES_03 = ({"CNB_BUILD_IMAGE", "CNB_BUILDER_IMAGE", "CNB_CACHE_IMAGE", "CNB_ENV_VARS", "CNB_EXPERIMENTAL_MODE",
              "CNB_GROUP_ID", "CNB_INSECURE_REGISTRIES", "CNB_LAYERS_DIR", "CNB_LOG_LEVEL",
              "CNB_PLATFORM_API_SUPPORTED", "CNB_PLATFORM_API", "CNB_PLATFORM_DIR", "CNB_PROCESS_TYPE",
              "CNB_RUN_IMAGE", "CNB_SKIP_LAYERS", "CNB_USER_ID", "APP_IMAGE", "SOURCE_SUBPATH", "TAGS", "USER_HOME",
              "INSPECT_TOOLS_IMAGE"}, {"source", "cache"})  # fmt: skip
CATALOG = "https://github.com/tektoncd/catalog.git"


def resolver_path(task_ref: dict[str, Any]) -> str:
    params = {p["name"]: p["value"] for p in task_ref["params"]}
    assert task_ref["resolver"] == "git" and params["url"] == CATALOG
    assert len(params["revision"]) == 40  # a pinned commit, not a moving branch
    return str(params["pathInRepo"])


def test_tekton_taskrun_of_the_buildpacks_task(cnb: Cnb) -> None:
    (run,) = documents(cnb, "tekton", APP, "-B", BUILDER, "--source-pvc", "hello-src", "--subpath", "apps/web",
                       "--cache-pvc", "hello-cache", "--registry-secret", "regcred", "-e", "BP_A=1",
                       "--process-type", "worker")  # fmt: skip
    assert errors(run) == [] and run["kind"] == "TaskRun"
    spec = run["spec"]
    assert resolver_path(spec["taskRef"]) == "task/buildpacks/0.6/buildpacks.yaml"
    params = {p["name"]: p["value"] for p in spec["params"]}
    assert params == {"APP_IMAGE": APP, "BUILDER_IMAGE": BUILDER, "SOURCE_SUBPATH": "apps/web",
                      "ENV_VARS": ["BP_A=1"], "PROCESS_TYPE": "worker"}  # fmt: skip
    assert set(params) <= BUILDPACKS_06[0]
    workspaces = {w["name"]: w for w in spec["workspaces"]}
    assert set(workspaces) == BUILDPACKS_06[1]
    assert workspaces["source"]["persistentVolumeClaim"] == {"claimName": "hello-src"}
    assert workspaces["cache"]["persistentVolumeClaim"] == {"claimName": "hello-cache"}
    # the task reads config.json at the root of its dockerconfig workspace
    assert workspaces["dockerconfig"]["secret"] == {
        "secretName": "regcred", "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}  # fmt: skip


def test_tekton_pipeline_of_git_clone_and_buildpacks_phases(cnb: Cnb) -> None:
    account, pipeline, run = documents(cnb, "tekton", APP, "-B", BUILDER, "--git", "https://github.com/x/app",
                                       "--revision", "v1.2", "--phases", "--registry-secret", "regcred",
                                       "--cache-image", "registry.example.com/team/hello-cache", "--name", "hello")  # fmt: skip
    assert [d["kind"] for d in (account, pipeline, run)] == ["ServiceAccount", "Pipeline", "PipelineRun"]
    assert all(errors(d) == [] for d in (account, pipeline, run))
    assert account["secrets"] == [{"name": "regcred"}]  # Tekton writes $HOME/.docker/config.json from it
    assert run["spec"]["taskRunTemplate"] == {"serviceAccountName": "hello"}
    clone, build = pipeline["spec"]["tasks"]
    assert resolver_path(clone["taskRef"]) == "task/git-clone/0.10/git-clone.yaml"
    assert resolver_path(build["taskRef"]) == "task/buildpacks-phases/0.3/buildpacks-phases.yaml"
    assert build["runAfter"] == ["fetch-source"]
    params = {p["name"]: p["value"] for p in build["params"]}
    assert params == {"APP_IMAGE": APP, "CNB_BUILDER_IMAGE": BUILDER,
                      "CNB_CACHE_IMAGE": "registry.example.com/team/hello-cache"}  # fmt: skip
    assert set(params) <= PHASES_03[0] and {w["name"] for w in build["workspaces"]} <= PHASES_03[1]
    assert {p["name"]: p["value"] for p in run["spec"]["params"]} == {"git-url": "https://github.com/x/app",
                                                                      "git-revision": "v1.2"}  # fmt: skip
    assert run["spec"]["pipelineRef"] == {"name": "hello"}
    (source,) = run["spec"]["workspaces"]
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", **source["volumeClaimTemplate"]}
    assert errors(claim) == []  # Tekton's schema keeps this field unchecked: check it as Kubernetes does


def test_tekton_refuses_tags(cnb: Cnb) -> None:
    done = cnb("k8s", "tekton", APP, "-B", BUILDER, "--git", "https://x/y", "-t", "registry.example.com/a:2",
               check=False)  # fmt: skip
    assert done.returncode == 2


TEKTON_REQUIRED = [
    ("TaskRun", ("spec", "workspaces", 0, "name"), "  - name: source"),
    ("TaskRun", ("spec", "params", 0, "name"), "  - name: {{ param.name | tojson }}"),
    ("PipelineRun", ("spec", "workspaces", 0, "name"), "  - name: source"),
    ("Pipeline", ("spec", "tasks", 0, "workspaces", 0, "name"), "    - name: output"),
    ("Pipeline", ("spec", "tasks", 0, "taskRef", "params", 0, "value"), "value: {{ catalog | tojson }}"),
    ("Pipeline", ("spec", "params", 0, "name"), "  - name: git-url"),
]


@pytest.mark.parametrize(("kind", "path", "text"), TEKTON_REQUIRED)
def test_dropping_a_required_field_of_a_tekton_run_fails(kind: str, path: tuple[Any, ...], text: str) -> None:
    from cnbplatform.k8s.builds import BuildRequest, tekton_documents

    assert text in (TEMPLATES / "tekton.yaml.j2").read_text()
    source = {"source_pvc": "src"} if kind == "TaskRun" else {"git": "https://x/y"}
    (doc,) = [d for d in tekton_documents(BuildRequest(APP, BUILDER, **source)) if d["kind"] == kind]
    assert errors(doc) == []
    assert any("is a required property" in e for e in errors(drop(doc, path))), path


def test_an_unknown_field_fails_where_the_crd_schema_has_properties() -> None:
    from cnbplatform.k8s.builds import BuildRequest, tekton_documents

    (run,) = tekton_documents(BuildRequest(APP, BUILDER, source_pvc="src"))
    broken = copy.deepcopy(run)
    broken["spec"]["taskRefs"] = broken["spec"].pop("taskRef")  # a typo: the API server's strict check refuses it
    assert any("taskRefs" in e for e in errors(broken))
    kept = copy.deepcopy(run)
    kept["spec"]["params"][0]["value"] = {"any": "shape"}  # x-kubernetes-preserve-unknown-fields: not checked
    assert errors(kept) == []


def test_kpack_resources_from_a_builder_in_a_registry(tiny_home: Path, registry: RunningRegistry) -> None:
    builder = f"{registry.host}/k8s/tiny-builder:1"
    run_cnb(tiny_home, "-q", "image", "copy", TINY, builder)
    config = skopeo_inspect(f"docker://{builder}", "--config")["config"]
    labels = config["Labels"]
    docs = yaml.safe_load_all(run_cnb(tiny_home, "k8s", "kpack", APP, "-B", builder, "--git",
                                      "https://github.com/x/app", "--revision", "main", "--registry-secret", "regcred",
                                      "--lifecycle", "registry.example.com/cnb/lifecycle:0.1", "-n", "apps",
                                      "--name", "hello", "-e", "BP_A=1").stdout)  # fmt: skip
    by_kind = {d["kind"]: d for d in docs if d}
    assert list(by_kind) == ["ServiceAccount", "ClusterLifecycle", "ClusterStore", "ClusterStack", "ClusterBuilder",
                             "Image"]  # fmt: skip
    assert all(errors(d) == [] for d in by_kind.values()), {k: errors(d) for k, d in by_kind.items()}
    assert by_kind["ClusterLifecycle"]["spec"]["image"] == "registry.example.com/cnb/lifecycle:0.1"
    assert by_kind["ClusterStore"]["spec"]["sources"] == [{"image": builder}]
    stack = by_kind["ClusterStack"]["spec"]
    metadata = json.loads(labels["io.buildpacks.builder.metadata"])
    assert stack["runImage"]["image"] == metadata["stack"]["runImage"]["image"]
    assert stack["id"] == labels["io.buildpacks.stack.id"] and stack["buildImage"]["image"] == builder
    order = json.loads(labels["io.buildpacks.buildpack.order"])
    spec = by_kind["ClusterBuilder"]["spec"]
    assert [[ref["id"] for ref in entry["group"]] for entry in spec["order"]] == [
        [ref["id"] for ref in entry["group"]] for entry in order]  # fmt: skip
    assert spec["lifecycle"] == {"name": "hello", "kind": "ClusterLifecycle"}
    assert spec["serviceAccountRef"] == {"name": "hello", "namespace": "apps"}
    assert spec["tag"] == "registry.example.com/team/hello-builder"
    image = by_kind["Image"]["spec"]
    assert image["tag"] == APP and image["builder"] == {"kind": "ClusterBuilder", "name": "hello"}
    assert image["source"] == {"git": {"url": "https://github.com/x/app", "revision": "main"}}
    assert image["build"]["env"] == [{"name": "BP_A", "value": "1"}] and image["serviceAccountName"] == "hello"
    assert by_kind["ServiceAccount"]["secrets"] == [{"name": "regcred"}]


LABELS = {
    "io.buildpacks.builder.metadata": json.dumps({"stack": {"runImage": {"image": "registry.example.com/run:1"}}}),
    "io.buildpacks.stack.id": "io.example.stack",
    "io.buildpacks.buildpack.order": json.dumps([{"group": [{"id": "a/b", "version": "1.0.0"},
                                                            {"id": "c/d", "optional": True}]}]),
}  # fmt: skip


def kpack_docs(**changes: Any) -> list[dict[str, Any]]:
    from cnbplatform.k8s.builds import BuildRequest, kpack_documents, kpack_stack

    labels = {**LABELS, **changes.pop("labels", {})}
    stack = kpack_stack(BUILDER, labels, stack_id=changes.pop("stack_id", None))
    req = BuildRequest(APP, BUILDER, **{"git": "https://x/y", "revision": "main", **changes})
    return kpack_documents(req, stack, lifecycle="registry.example.com/cnb/lifecycle:1")


def test_kpack_order_and_refusals() -> None:
    from cnbplatform.errors import UsageError

    builder = {d["kind"]: d for d in kpack_docs()}["ClusterBuilder"]
    assert builder["spec"]["order"] == [{"group": [{"id": "a/b", "version": "1.0.0"}, {"id": "c/d", "optional": True}]}]
    with pytest.raises(UsageError, match="stack-id"):
        kpack_docs(labels={"io.buildpacks.stack.id": ""})
    assert {d["kind"]: d for d in kpack_docs(labels={"io.buildpacks.stack.id": ""}, stack_id="x")}[
        "ClusterStack"]["spec"]["id"] == "x"  # fmt: skip
    with pytest.raises(UsageError, match="buildpack order"):
        kpack_docs(labels={"io.buildpacks.buildpack.order": "[]"})
    with pytest.raises(UsageError, match="not a builder image"):
        kpack_docs(labels={"io.buildpacks.builder.metadata": "7"})
    with pytest.raises(UsageError, match="revision"):
        kpack_docs(revision="")
    with pytest.raises(UsageError, match="additional tags to the image"):
        kpack_docs(tags=("elsewhere.example.com/team/hello:2",))


def test_kpack_refuses_before_reading_the_builder(cnb: Cnb) -> None:
    done = cnb("k8s", "kpack", APP, "-B", "127.0.0.1:1/nothing:1", "--git", "https://x/y", check=False)
    assert done.returncode == 2 and "--revision" in done.stderr and "127.0.0.1:1" not in done.stderr


KPACK_REQUIRED = [
    ("ClusterLifecycle", ("spec", "image"), "  image: {{ lifecycle | tojson }}"),
    ("ClusterStore", ("spec", "sources"), "  sources:"),
    ("ClusterStack", ("spec", "id"), "  id: {{ stack_id | tojson }}"),
    ("ClusterStack", ("spec", "runImage", "image"), "    image: {{ run_image | tojson }}"),
    ("ClusterBuilder", ("spec", "tag"), "  tag: {{ builder_tag | tojson }}"),
    ("ClusterBuilder", ("spec", "serviceAccountRef", "namespace"), "    namespace: {{ namespace | tojson }}"),
    ("ClusterBuilder", ("spec", "stack", "kind"), "    kind: ClusterStack"),
    ("ClusterBuilder", ("spec", "order", 0, "group", 0, "id"), "    - id: {{ entry.id | tojson }}"),
    ("Image", ("spec", "tag"), "  tag: {{ image | tojson }}"),
    ("Image", ("spec", "source"), "  source:"),
    ("Image", ("spec", "source", "git", "revision"), "      revision: {{ revision | tojson }}"),
    ("Image", ("spec", "builder", "name"), "    name: {{ name | tojson }}"),
]


@pytest.mark.parametrize(("kind", "path", "text"), KPACK_REQUIRED)
def test_dropping_a_required_field_of_a_kpack_resource_fails(kind: str, path: tuple[Any, ...], text: str) -> None:
    assert text in (TEMPLATES / "kpack.yaml.j2").read_text()
    (doc,) = [d for d in kpack_docs() if d["kind"] == kind]
    assert errors(doc) == []
    assert any("is a required property" in e for e in errors(drop(doc, path))), path
