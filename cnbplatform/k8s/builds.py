"""What a user applies to build on a cluster with a builder image's lifecycle (``/cnb/lifecycle/<phase>``):
a plain Kubernetes Job whose init containers run the phases as kpack's build pod does, Tekton runs of the
catalog's ``buildpacks`` 0.6 and ``buildpacks-phases`` 0.3 tasks, and kpack's cluster resources.

The facts each document follows are upstream's: kpack's ``pkg/apis/build/v1alpha2/build_pod.go`` (phase flags,
volumes, ``HOME=/builder/home``, security), the Tekton catalog's ``task/buildpacks/0.6/buildpacks.yaml`` and
``task/buildpacks-phases/0.3/buildpacks-phases.yaml`` (workspaces and params) and kpack's ``v1alpha2`` types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from cnbplatform.errors import UsageError
from cnbplatform.k8s.deploy import default_name
from cnbplatform.k8s.render import render, to_yaml
from cnbplatform.k8s.secrets import check_name
from cnbplatform.oci.reference import parse_reference

_GIT_URL = re.compile(r"^(?:(?:https?|ssh|git|git\+ssh|file)://[^\s]+|[\w.-]+@[\w.-]+:[^\s]+)$")
GIT_IMAGE = "ghcr.io/tektoncd-catalog/git-clone:v1.1.0"
"""The image the catalog's git-clone 0.10 runs (``/ko-app/git-init``), also used by the Job's source step."""
CATALOG = "https://github.com/tektoncd/catalog.git"
CATALOG_REVISION = "55dd80ef1b83861613dce9080dfdf6656f1aecd4"
"""The tektoncd/catalog commit whose tasks the Tekton documents were written against (pinned, not ``main``)."""
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class BuildRequest:
    """One app build: the image to write, the builder to build it with, and where its source comes from."""

    image: str
    builder: str
    name: str | None = None
    namespace: str | None = None
    git: str | None = None
    revision: str = ""
    source_pvc: str | None = None
    subpath: str = ""
    cache_image: str | None = None
    cache_pvc: str | None = None
    registry_secret: str | None = None
    run_image: str | None = None
    process_type: str | None = None
    tags: tuple[str, ...] = ()
    env: tuple[str, ...] = field(default=())
    uid: int = 1000
    gid: int = 1000
    platform_api: str = "0.9"

    def checked(self) -> BuildRequest:
        """Itself, after refusing what no cluster could run (one-line errors)."""
        for what, value in (("image", self.image), ("--builder", self.builder), ("--run-image", self.run_image),
                            ("--cache-image", self.cache_image), *(("--tag", t) for t in self.tags)):  # fmt: skip
            if value is not None:
                if value.startswith(("oci:", "docker-daemon:", "local:", "docker://")):
                    raise UsageError(f"{what} {value!r}: a cluster pulls images by registry reference (host/repo:tag)")
                ref = parse_reference(value)
                if ref.digest and what in ("image", "--cache-image", "--tag"):
                    raise UsageError(f"{what} {value!r}: an image is written under a tag, not a digest")
        for what, value in (("--name", self.name), ("--namespace", self.namespace),
                            ("--source-pvc", self.source_pvc), ("--cache-pvc", self.cache_pvc),
                            ("--registry-secret", self.registry_secret)):  # fmt: skip
            if value is not None:
                check_name(value, what)
        if self.git is not None and not _GIT_URL.match(self.git):
            raise UsageError(f"--git {self.git!r}: expected a git URL (https://host/repo, ssh://…, git@host:repo)")
        if self.git and self.source_pvc:
            raise UsageError("--git and --source-pvc: give one source")
        if not self.git and not self.source_pvc:
            raise UsageError("no source: give --git URL (cloned in the cluster) or --source-pvc CLAIM")
        if self.cache_image and self.cache_pvc:
            raise UsageError("--cache-image and --cache-pvc: give one cache")
        if self.subpath.startswith("/") or ".." in self.subpath.split("/"):
            raise UsageError(f"--subpath {self.subpath!r}: expected a relative path inside the source")
        for entry in self.env:
            key, sep, _ = entry.partition("=")
            if not sep or not _ENV_NAME.match(key):
                raise UsageError(f"--env {entry!r}: expected KEY=VALUE")
        if min(self.uid, self.gid) < 1:
            raise UsageError("--uid and --gid: the build runs as a non-root user (ids from 1)")
        return self

    @property
    def resource_name(self) -> str:
        return self.name or default_name(self.image)

    @property
    def app_dir(self) -> str:
        return "/workspace/" + self.subpath.strip("/") if self.subpath.strip("/") else "/workspace"


def phase_args(req: BuildRequest) -> dict[str, list[str]]:
    """kpack's flags for each phase (``build_pod.go``): a registry cache goes to analyze, restore and export, a
    volume cache (``/cache``) to restore and export; extra tags are the analyzer's ``-tag``s and the exporter's
    positional names."""
    volume_cache = ["-cache-dir=/cache"] if req.cache_pvc else []
    image_cache = [f"-cache-image={req.cache_image}"] if req.cache_image else []
    return {
        "analyze": ["-layers=/layers", "-analyzed=/layers/analyzed.toml",
                    *([f"-run-image={req.run_image}"] if req.run_image else []), *image_cache,
                    *(f"-tag={tag}" for tag in req.tags), req.image],
        "detect": [f"-app={req.app_dir}", "-group=/layers/group.toml", "-plan=/layers/plan.toml"],
        "restore": ["-group=/layers/group.toml", "-layers=/layers", *volume_cache, *image_cache,
                    "-analyzed=/layers/analyzed.toml"],
        "build": ["-layers=/layers", f"-app={req.app_dir}", "-group=/layers/group.toml", "-plan=/layers/plan.toml"],
        "export": ["-layers=/layers", f"-app={req.app_dir}", "-group=/layers/group.toml",
                   "-analyzed=/layers/analyzed.toml", "-project-metadata=/layers/project-metadata.toml",
                   *volume_cache, *image_cache,
                   *([f"-process-type={req.process_type}"] if req.process_type else []),
                   "-report=/var/report/report.toml", req.image, *req.tags],
    }  # fmt: skip


def job_documents(req: BuildRequest, *, git_image: str = GIT_IMAGE) -> list[dict[str, Any]]:
    """The Job (see ``templates/job.yaml.j2``)."""
    req = req.checked()
    git_args = [f"-url={req.git}", f"-revision={req.revision}", "-path=/workspace", "-depth=1"] if req.git else []
    return render(
        "job.yaml.j2",
        name=req.resource_name,
        namespace=req.namespace,
        builder=req.builder,
        git=req.git,
        git_image=git_image,
        git_args=git_args,
        source_pvc=req.source_pvc,
        cache_pvc=req.cache_pvc,
        registry_secret=req.registry_secret,
        pull_secret=req.registry_secret,
        env=list(req.env),
        uid=req.uid,
        gid=req.gid,
        platform_api=req.platform_api,
        args=phase_args(req),
        export_env=[{"name": "CNB_RUN_IMAGE", "value": req.run_image}] if req.run_image else [],
    )


def job_yaml(req: BuildRequest, *, git_image: str = GIT_IMAGE) -> str:
    return to_yaml(job_documents(req, git_image=git_image))


TEKTON_TASKS = {
    False: "task/buildpacks/0.6/buildpacks.yaml",
    True: "task/buildpacks-phases/0.3/buildpacks-phases.yaml",
}


def tekton_params(req: BuildRequest, *, phases: bool) -> list[dict[str, Any]]:
    """The task's params that differ from its defaults; the two tasks spell them differently (the phases task
    prefixes ``CNB_``)."""
    prefix = "CNB_" if phases else ""
    params: list[tuple[str, Any]] = [("APP_IMAGE", req.image), (f"{prefix}BUILDER_IMAGE", req.builder)]
    if req.subpath.strip("/"):
        params.append(("SOURCE_SUBPATH", req.subpath.strip("/")))
    if req.env:
        params.append((f"{prefix}ENV_VARS", list(req.env)))
    for key, value in (("PROCESS_TYPE", req.process_type), ("RUN_IMAGE", req.run_image),
                       ("CACHE_IMAGE", req.cache_image)):  # fmt: skip
        if value:
            params.append((prefix + key, value))
    return [{"name": key, "value": value} for key, value in params]


def tekton_documents(req: BuildRequest, *, phases: bool = False) -> list[dict[str, Any]]:
    """A TaskRun (source on a volume) or a Pipeline and its PipelineRun (source from git) of the catalog's
    ``buildpacks`` 0.6 task, or of ``buildpacks-phases`` 0.3 with *phases* (see ``templates/tekton.yaml.j2``).

    Registry credentials: ``buildpacks`` 0.6 reads ``config.json`` from its ``dockerconfig`` workspace (the
    Secret's ``.dockerconfigjson`` mounted under that name); ``buildpacks-phases`` has no such workspace and
    reads ``$HOME/.docker/config.json``, which Tekton writes from the Secrets of the run's ServiceAccount."""
    req = req.checked()
    if req.tags:
        raise UsageError("--tag: the Tekton tasks write one image")
    service_account = req.resource_name if phases and req.registry_secret else None
    return render(
        "tekton.yaml.j2",
        name=req.resource_name,
        namespace=req.namespace,
        git=req.git,
        revision=req.revision,
        source_pvc=req.source_pvc,
        cache_pvc=req.cache_pvc,
        registry_secret=req.registry_secret,
        dockerconfig=bool(req.registry_secret) and not phases,
        service_account=service_account,
        task_path=TEKTON_TASKS[phases],
        params=tekton_params(req, phases=phases),
        catalog=CATALOG,
        catalog_revision=CATALOG_REVISION,
        source_size="1Gi",
    )


def tekton_yaml(req: BuildRequest, *, phases: bool = False) -> str:
    return to_yaml(tekton_documents(req, phases=phases))


@dataclass(frozen=True)
class KpackStack:
    """What kpack's ClusterStack and ClusterBuilder take from the builder image (or from the options)."""

    stack_id: str
    build_image: str
    run_image: str
    order: list[list[dict[str, Any]]]


def kpack_stack(
    builder: str,
    labels: dict[str, str],
    *,
    run_image: str | None = None,
    stack_id: str | None = None,
    build_image: str | None = None,
) -> KpackStack:
    """The stack and order of a builder image from its labels: ``io.buildpacks.builder.metadata``'s
    ``stack.runImage.image`` (or ``images[0].image``), ``io.buildpacks.stack.id`` (kpack requires the build and run
    images to carry the stack id it is given) and ``io.buildpacks.buildpack.order``. The build image is the
    builder itself unless given: it has the build image's ``CNB_USER_ID``/``CNB_GROUP_ID`` and stack label."""
    import json

    def label(name: str) -> Any:
        try:
            return json.loads(labels[name]) if name in labels else None
        except json.JSONDecodeError as e:
            raise UsageError(f"{builder}: label {name} is not JSON ({e.msg})") from None

    metadata = label("io.buildpacks.builder.metadata")
    if not isinstance(metadata, dict):
        raise UsageError(f"{builder} is not a builder image (no io.buildpacks.builder.metadata label)")
    if run_image is None:
        stack = metadata.get("stack") or {}
        images = metadata.get("images") or []
        run_image = (stack.get("runImage") or {}).get("image") or (images[0].get("image") if images else None)
        if not run_image:
            raise UsageError(f"{builder} names no run image: give --run-image")
    stack_id = stack_id or labels.get("io.buildpacks.stack.id")
    if not stack_id:
        raise UsageError(
            f"{builder} has no io.buildpacks.stack.id label, which kpack's ClusterStack needs: give --stack-id"
        )
    order = label("io.buildpacks.buildpack.order") or []
    groups = [
        [{"id": str(ref["id"]), "version": str(ref.get("version") or ""), "optional": bool(ref.get("optional"))}
         for ref in entry.get("group", []) if isinstance(ref, dict) and ref.get("id")]
        for entry in order if isinstance(entry, dict)
    ]  # fmt: skip
    groups = [group for group in groups if group]
    if not groups:
        raise UsageError(f"{builder} has no buildpack order (io.buildpacks.buildpack.order)")
    return KpackStack(stack_id, build_image or builder, run_image, groups)


def default_builder_tag(image: str) -> str:
    """Where kpack writes the builder it assembles: next to the app image, ``<repository>-builder``."""
    ref = parse_reference(image)
    return f"{ref.registry}/{ref.repository}-builder"


def kpack_checked(req: BuildRequest, *, lifecycle: str | None, builder_tag: str | None) -> BuildRequest:
    """*req*, after refusing what kpack's webhook would (before the builder is read from its registry)."""
    req = req.checked()
    if not req.git:
        raise UsageError("kpack builds from git here: give --git URL")
    if not req.revision:
        raise UsageError("--revision: kpack needs a branch, tag or commit to follow")
    for value in (lifecycle, builder_tag):
        if value is not None:
            parse_reference(value)
    registry = parse_reference(req.image).registry
    for tag in req.tags:  # kpack's webhook: additional tags on the same registry as the image
        if parse_reference(tag).registry != registry:
            raise UsageError(f"--tag {tag!r}: kpack writes additional tags to the image's registry ({registry})")
    return req


def kpack_documents(
    req: BuildRequest, stack: KpackStack, *, lifecycle: str | None = None, builder_tag: str | None = None
) -> list[dict[str, Any]]:
    """kpack's ServiceAccount, ClusterLifecycle (with *lifecycle*), ClusterStore, ClusterStack, ClusterBuilder and
    Image (see ``templates/kpack.yaml.j2``)."""
    req = kpack_checked(req, lifecycle=lifecycle, builder_tag=builder_tag)
    return render(
        "kpack.yaml.j2",
        name=req.resource_name,
        namespace=req.namespace or "default",
        registry_secret=req.registry_secret,
        lifecycle=lifecycle,
        builder=req.builder,
        stack_id=stack.stack_id,
        build_image=stack.build_image,
        run_image=stack.run_image,
        order=stack.order,
        builder_tag=builder_tag or default_builder_tag(req.image),
        image=req.image,
        tags=list(req.tags),
        git=req.git,
        revision=req.revision,
        subpath=req.subpath.strip("/"),
        cache_image=req.cache_image,
        default_process=req.process_type,
        env=[{"name": k, "value": v} for k, _, v in (entry.partition("=") for entry in req.env)],
    )


def kpack_yaml(
    req: BuildRequest, stack: KpackStack, *, lifecycle: str | None = None, builder_tag: str | None = None
) -> str:
    return to_yaml(kpack_documents(req, stack, lifecycle=lifecycle, builder_tag=builder_tag))
