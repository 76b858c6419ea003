"""``cnb k8s``: Kubernetes documents: pull secrets, app manifests, and what builds an app on a cluster (a Job,
Tekton runs, kpack resources)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cnbplatform.cli.output import OPTIONS, err_console
from cnbplatform.cli.params import typer_option

if TYPE_CHECKING:
    from cnbplatform.k8s.builds import BuildRequest
    from cnbplatform.k8s.deploy import AppFacts
    from cnbplatform.platform.context import PlatformContext

app = typer.Typer(rich_markup_mode=None, help="Kubernetes documents for what cnb builds.", no_args_is_help=True)


def emit(text: str, output: Path | None, *, private: bool = False) -> None:
    """*text* to stdout, or to *output* (0600 when *private*) through a temporary file."""
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from cnbplatform.resolve.documents import write_atomically

    write_atomically(output, text, 0o600 if private else 0o644)


@app.command("pull-secret")
def pull_secret(
    registry: str = typer.Argument(..., help="Registry host, e.g. ghcr.io or 127.0.0.1:5000."),
    name: str = typer_option("k8s pull-secret", "name"),
    namespace: str | None = typer_option("k8s pull-secret", "namespace"),
    service_account: str | None = typer_option("k8s pull-secret", "service_account"),
    output: Path | None = typer_option("k8s pull-secret", "output"),
) -> None:
    """A kubernetes.io/dockerconfigjson Secret from the credentials cnb uses for REGISTRY."""
    from cnbplatform.errors import UsageError
    from cnbplatform.k8s.secrets import pull_secret_yaml
    from cnbplatform.oci.reference import is_registry_host
    from cnbplatform.oci.registry import resolve_credential
    from cnbplatform.platform.context import context_from_env

    if not is_registry_host(registry):
        raise UsageError(f"{registry!r} is not a registry host (host or host:port, e.g. ghcr.io)")
    ctx = context_from_env()
    credential = resolve_credential(registry, ctx.env)
    text = pull_secret_yaml(registry, credential, name=name, namespace=namespace, service_account=service_account)
    emit(text, output, private=True)
    if not OPTIONS.quiet and output is not None:
        err_console.print(f"wrote Secret {name} for {registry} to {output}")


@app.command("manifests")
def manifests(
    image: str = typer.Argument(..., help="A buildpacks-built image (registry reference or any cnb address)."),
    port: int | None = typer_option("k8s manifests", "port"),
    replicas: int = typer_option("k8s manifests", "replicas"),
    name: str | None = typer_option("k8s manifests", "name"),
    namespace: str | None = typer_option("k8s manifests", "namespace"),
    pull_secret: str | None = typer_option("k8s manifests", "pull_secret"),
    output: Path | None = typer_option("k8s manifests", "output"),
    insecure_registry: list[str] = typer_option("k8s manifests", "insecure_registry"),
) -> None:
    """A Deployment and a Service for IMAGE, from its buildpacks labels."""
    from cnbplatform.k8s.deploy import manifests_yaml
    from cnbplatform.platform.context import context_from_env

    ctx = context_from_env(insecure_registries=insecure_registry)
    facts = read_facts(ctx, image, port=port, name=name)
    emit(manifests_yaml(facts, replicas=replicas, pull_secret=pull_secret, namespace=namespace), output)


def read_facts(
    ctx: PlatformContext, image: str, *, port: int | None, name: str | None, buildpacks: bool = True
) -> AppFacts:
    """The image's facts for its manifests; a registry image is named by its digest."""
    from cnbplatform.k8s.deploy import app_facts
    from cnbplatform.oci.address import StoreKind
    from cnbplatform.platform.images import inspect_image

    details = inspect_image(ctx, image)
    if details.image is None:
        details = inspect_image(ctx, image, platform="linux/amd64")
    assert details.image is not None
    pinned = image
    if details.address.kind is StoreKind.REGISTRY and details.address.reference is not None:
        ref = details.address.reference
        registry = "index.docker.io" if ref.registry == "docker.io" else ref.registry
        pinned = f"{registry}/{ref.repository}@{details.descriptor.digest}"
    facts = app_facts(pinned, details.image.config, port=port, name=name, buildpacks=buildpacks)
    if details.address.kind is not StoreKind.REGISTRY and not OPTIONS.quiet:
        err_console.styled("warning:", "yellow", f"{image} is not in a registry: a cluster cannot pull it as named")
    return facts


_APP_IMAGE_HELP = "The app image to build, in a registry the cluster pushes to."


def _request(**values: object) -> BuildRequest:
    """A build request from a command's options (lists become tuples)."""
    from cnbplatform.k8s.builds import BuildRequest

    fields = {key: tuple(value) if isinstance(value, list) else value for key, value in values.items()}
    return BuildRequest(**fields)  # type: ignore[arg-type]


@app.command("job")
def job(
    image: str = typer.Argument(..., metavar="IMAGE", help=_APP_IMAGE_HELP),
    builder: str = typer_option("k8s job", "builder"),
    git: str | None = typer_option("k8s job", "git"),
    revision: str = typer_option("k8s job", "revision"),
    source_pvc: str | None = typer_option("k8s job", "source_pvc"),
    subpath: str = typer_option("k8s job", "subpath"),
    cache_image: str | None = typer_option("k8s job", "cache_image"),
    cache_pvc: str | None = typer_option("k8s job", "cache_pvc"),
    registry_secret: str | None = typer_option("k8s job", "registry_secret"),
    run_image: str | None = typer_option("k8s job", "run_image"),
    process_type: str | None = typer_option("k8s job", "process_type"),
    tag: list[str] = typer_option("k8s job", "tag"),
    env: list[str] = typer_option("k8s job", "env"),
    uid: int = typer_option("k8s job", "uid"),
    gid: int = typer_option("k8s job", "gid"),
    platform_api: str = typer_option("k8s job", "platform_api"),
    name: str | None = typer_option("k8s job", "name"),
    namespace: str | None = typer_option("k8s job", "namespace"),
    output: Path | None = typer_option("k8s job", "output"),
) -> None:
    """A Job building IMAGE on any cluster: the builder's /cnb/lifecycle phases in init containers, as kpack runs
    them (non-root, no capabilities, the registry secret as the phases' docker config)."""
    from cnbplatform.k8s.builds import job_yaml

    req = _request(image=image, builder=builder, git=git, revision=revision, source_pvc=source_pvc, subpath=subpath,
                   cache_image=cache_image, cache_pvc=cache_pvc, registry_secret=registry_secret,
                   run_image=run_image, process_type=process_type, tags=tag, env=env, uid=uid, gid=gid,
                   platform_api=platform_api, name=name, namespace=namespace)  # fmt: skip
    emit(job_yaml(req), output)


@app.command("tekton")
def tekton(
    image: str = typer.Argument(..., metavar="IMAGE", help=_APP_IMAGE_HELP),
    builder: str = typer_option("k8s tekton", "builder"),
    git: str | None = typer_option("k8s tekton", "git"),
    revision: str = typer_option("k8s tekton", "revision"),
    source_pvc: str | None = typer_option("k8s tekton", "source_pvc"),
    subpath: str = typer_option("k8s tekton", "subpath"),
    phases: bool = typer_option("k8s tekton", "phases"),
    cache_image: str | None = typer_option("k8s tekton", "cache_image"),
    cache_pvc: str | None = typer_option("k8s tekton", "cache_pvc"),
    registry_secret: str | None = typer_option("k8s tekton", "registry_secret"),
    run_image: str | None = typer_option("k8s tekton", "run_image"),
    process_type: str | None = typer_option("k8s tekton", "process_type"),
    env: list[str] = typer_option("k8s tekton", "env"),
    name: str | None = typer_option("k8s tekton", "name"),
    namespace: str | None = typer_option("k8s tekton", "namespace"),
    output: Path | None = typer_option("k8s tekton", "output"),
) -> None:
    """Tekton runs of the catalog's buildpacks task building IMAGE: a TaskRun over a source volume claim, or for a
    git repository a Pipeline (git-clone, then the task) and its PipelineRun. The tasks come from the catalog by
    Tekton's git resolver, pinned to a commit."""
    from cnbplatform.k8s.builds import tekton_yaml

    req = _request(image=image, builder=builder, git=git, revision=revision, source_pvc=source_pvc, subpath=subpath,
                   cache_image=cache_image, cache_pvc=cache_pvc, registry_secret=registry_secret,
                   run_image=run_image, process_type=process_type, env=env, name=name, namespace=namespace)  # fmt: skip
    emit(tekton_yaml(req, phases=phases), output)


@app.command("kpack")
def kpack(
    image: str = typer.Argument(..., metavar="IMAGE", help=_APP_IMAGE_HELP),
    builder: str = typer_option("k8s kpack", "builder"),
    git: str | None = typer_option("k8s kpack", "git"),
    revision: str = typer_option("k8s kpack", "revision"),
    subpath: str = typer_option("k8s kpack", "subpath"),
    lifecycle: str | None = typer_option("k8s kpack", "lifecycle"),
    builder_tag: str | None = typer_option("k8s kpack", "builder_tag"),
    stack_id: str | None = typer_option("k8s kpack", "stack_id"),
    build_image: str | None = typer_option("k8s kpack", "build_image"),
    run_image: str | None = typer_option("k8s kpack", "run_image"),
    cache_image: str | None = typer_option("k8s kpack", "cache_image"),
    registry_secret: str | None = typer_option("k8s kpack", "registry_secret"),
    process_type: str | None = typer_option("k8s kpack", "process_type"),
    tag: list[str] = typer_option("k8s kpack", "tag"),
    env: list[str] = typer_option("k8s kpack", "env"),
    name: str | None = typer_option("k8s kpack", "name"),
    namespace: str | None = typer_option("k8s kpack", "namespace"),
    output: Path | None = typer_option("k8s kpack", "output"),
    insecure_registry: list[str] = typer_option("k8s kpack", "insecure_registry"),
) -> None:
    """kpack resources that keep IMAGE built from git: the builder image's buildpacks as a ClusterStore, its build
    and run images as a ClusterStack, a ClusterBuilder (on a cnb ClusterLifecycle when one is given) and the Image.
    Reads the builder's labels from its registry."""
    from cnbplatform.k8s.builds import kpack_checked, kpack_stack, kpack_yaml
    from cnbplatform.platform.context import context_from_env
    from cnbplatform.platform.images import inspect_image

    req = _request(image=image, builder=builder, git=git, revision=revision, subpath=subpath,
                   cache_image=cache_image, registry_secret=registry_secret, run_image=run_image,
                   process_type=process_type, tags=tag, env=env, name=name, namespace=namespace)  # fmt: skip
    req = kpack_checked(req, lifecycle=lifecycle, builder_tag=builder_tag)
    ctx = context_from_env(insecure_registries=insecure_registry)
    details = inspect_image(ctx, builder)
    if details.image is None:
        details = inspect_image(ctx, builder, platform="linux/amd64")
    assert details.image is not None
    stack = kpack_stack(builder, details.image.config.labels, run_image=run_image, stack_id=stack_id,
                        build_image=build_image)  # fmt: skip
    emit(kpack_yaml(req, stack, lifecycle=lifecycle, builder_tag=builder_tag), output)
