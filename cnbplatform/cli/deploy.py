"""``cnb deploy IMAGE``: build -> push -> manifests -> resolve (Draft's ``up``), to stdout, ``-o`` or kubectl."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import typer

from cnbplatform.cli.options import spelled
from cnbplatform.cli.output import OPTIONS, err_console
from cnbplatform.cli.params import typer_option
from cnbplatform.errors import CnbError, UsageError


def deploy(
    image: str = typer.Argument(..., help="Registry reference to push the app image to."),
    path: Path = typer_option("deploy", "path"),
    builder: str | None = typer_option("deploy", "builder"),
    dockerfile: Path | None = typer_option("deploy", "dockerfile"),
    using: str | None = typer_option("deploy", "using"),
    port: int | None = typer_option("deploy", "port"),
    replicas: int = typer_option("deploy", "replicas"),
    name: str | None = typer_option("deploy", "name"),
    namespace: str | None = typer_option("deploy", "namespace"),
    pull_secret: str | None = typer_option("deploy", "pull_secret"),
    create_pull_secret: bool = typer_option("deploy", "create_pull_secret"),
    output: Path | None = typer_option("deploy", "output"),
    apply: bool = typer_option("deploy", "apply"),
    insecure_registry: list[str] = typer_option("deploy", "insecure_registry"),
) -> None:
    """Build the app, push IMAGE, and output (or apply) its digest-pinned Deployment and Service."""
    import yaml

    from cnbplatform.cli.commands import StderrReporter
    from cnbplatform.cli.k8s import emit, read_facts
    from cnbplatform.imagebuilders.base import SourceBuild
    from cnbplatform.imagebuilders.registry import builder_named
    from cnbplatform.k8s.deploy import default_name, manifests_yaml
    from cnbplatform.platform.context import context_from_env
    from cnbplatform.resolve.config import CONFIG_API
    from cnbplatform.resolve.run import ResolveRequest, run_resolve, source_origins

    ctx = context_from_env(insecure_registries=insecure_registry)
    kubectl = shutil.which("kubectl", path=ctx.env.get("PATH")) if apply else None
    if apply and kubectl is None:
        raise UsageError(f"{spelled('deploy', 'apply')} needs kubectl on PATH (apt-get install kubernetes-client)")
    if apply and output is not None:
        raise UsageError(f"{spelled('deploy', 'apply')} and {spelled('deploy', 'output')} exclude each other")
    kind = "dockerfile" if dockerfile is not None else (using or "buildpacks")
    if dockerfile is not None and using not in (None, "dockerfile"):
        raise UsageError(
            f"{spelled('deploy', 'dockerfile')} builds with the dockerfile builder, "
            f"not {spelled('deploy', 'using')} {using}"
        )
    options: dict[str, object] = {}
    if kind == "buildpacks" and builder is not None:
        options["builder"] = builder
    elif builder is not None:
        raise UsageError(f"{spelled('deploy', 'builder')} is for buildpacks builds, not the {kind} builder")
    if dockerfile is not None:
        options["file"] = str(dockerfile.resolve())
    if create_pull_secret and pull_secret is None:
        raise UsageError(f"{spelled('deploy', 'create_pull_secret')} needs {spelled('deploy', 'pull_secret')} NAME")
    from cnbplatform.oci.address import StoreKind, parse_destination

    destination = parse_destination(image if "://" in image else f"docker://{image}")
    if destination.kind is not StoreKind.REGISTRY:
        raise UsageError(f"deploy {image!r}: expected a registry reference to push to")
    source = path.resolve()
    if not source.is_dir():
        raise UsageError(f"{spelled('deploy', 'path')} {path}: not a directory")
    reporter = StderrReporter("warn" if OPTIONS.quiet else "info")
    chosen = builder_named(kind)
    built = chosen.build(ctx, SourceBuild(source, image, options), reporter)
    pushed = chosen.push(ctx, built, image)
    reporter.info(f"pushed {pushed.reference}")
    facts = read_facts(
        ctx, pushed.reference, port=port, name=name or default_name(image), buildpacks=kind == "buildpacks"
    )
    manifests = manifests_yaml(
        replace(facts, image=image), replicas=replicas, pull_secret=pull_secret, namespace=namespace
    )
    lock = {
        "apiVersion": CONFIG_API,
        "kind": "Config",
        "overrides": [
            {"image": image, "newImage": pushed.reference, "preresolved": True, "origins": source_origins(source)}
        ],
    }
    outcome = run_resolve(
        ctx, ResolveRequest(files=(), texts=(("manifests", manifests), ("built", yaml.safe_dump(lock)))), reporter
    )
    text = outcome.text
    if create_pull_secret and pull_secret is not None:
        from cnbplatform.k8s.secrets import pull_secret_yaml
        from cnbplatform.oci.reference import parse_reference

        registry = parse_reference(image).registry
        credential = chosen.pull_credential(ctx, registry)
        text = pull_secret_yaml(registry, credential, name=pull_secret, namespace=namespace) + text
    if kubectl is None:
        emit(text, output, private=create_pull_secret)
        return
    try:
        done = subprocess.run([kubectl, "apply", "-f", "-"], input=text.encode(), stdout=sys.stdout.buffer,
                              stderr=subprocess.PIPE, env=dict(ctx.env), timeout=300, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CnbError(f"kubectl apply: {exc}") from exc
    if done.returncode != 0:
        last = done.stderr.decode(errors="replace").strip().splitlines()
        raise CnbError(f"kubectl apply: exit status {done.returncode}" + (f": {last[-1][:300]}" if last else ""))
    if not OPTIONS.quiet:
        err_console.print(f"applied {facts.name} ({pushed.reference})")
