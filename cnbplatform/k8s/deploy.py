"""A Deployment and a Service for a buildpacks-built image, read from the image itself (Draft's ``create``).

From the image: the default process (the ``/cnb/process/<type>`` entrypoint the exporter set; an image built
without one runs its ``web`` process), the port (``--port``, else the image's ``PORT`` env, else its first
exposed port, else 8080: the ``PORT`` convention buildpacks' web processes follow), the user (``User`` as
``uid[:gid]``, else ``CNB_USER_ID``/``CNB_GROUP_ID``) for ``runAsUser``/``runAsGroup``/``runAsNonRoot``.
Always: readiness and liveness probes on the port, resource requests, ``seccompProfile: RuntimeDefault``, every
capability dropped, no privilege escalation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cnbplatform.errors import UsageError
from cnbplatform.files.labels import BUILD_METADATA_LABEL, BuildMetadataLabel
from cnbplatform.k8s.render import render, to_yaml
from cnbplatform.k8s.secrets import check_name
from cnbplatform.oci.model import ImageConfig

DEFAULT_PORT = 8080
PROCESS_DIR = "/cnb/process/"


@dataclass(frozen=True)
class AppFacts:
    image: str
    name: str
    port: int
    process: str | None
    command: tuple[str, ...] | None
    run_as_user: int | None
    run_as_group: int | None


def default_name(image: str) -> str:
    """A DNS-1123 label from the image's repository's last component."""
    last = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0].lower()
    name = re.sub(r"[^a-z0-9-]+", "-", last).strip("-")[:63].strip("-")
    return name or "app"


def app_facts(
    image: str,
    config: ImageConfig,
    *,
    port: int | None = None,
    name: str | None = None,
    buildpacks: bool = True,
) -> AppFacts:
    """What the manifests need, from the image's config (see the module doc). With *buildpacks* false, an image
    built another way (a Dockerfile) is taken as it is: its own entrypoint, no process type."""
    container = config.config
    env = container.env_dict()
    labels = config.labels
    if buildpacks and BUILD_METADATA_LABEL not in labels:
        raise UsageError(f"{image} was not built with buildpacks (it has no {BUILD_METADATA_LABEL} label)")
    metadata = BuildMetadataLabel.from_json(labels.get(BUILD_METADATA_LABEL))
    types = [p.type for p in metadata.processes]
    entry = container.entrypoint or ()
    process: str | None = None
    command: tuple[str, ...] | None = None
    if entry and entry[0].startswith(PROCESS_DIR):
        process = entry[0][len(PROCESS_DIR) :]
    elif "web" in types:
        process, command = "web", (f"{PROCESS_DIR}web",)
    elif types:
        process, command = types[0], (f"{PROCESS_DIR}{types[0]}",)
    if port is None:
        port = _port(env.get("PORT"), container.exposed_ports)
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: expected 1-65535")
    uid, gid = _user(container.user, env)
    return AppFacts(image, check_name(name or default_name(image), "--name"), port, process, command, uid, gid)


def _port(from_env: str | None, exposed: tuple[str, ...]) -> int:
    if from_env and from_env.isdigit():
        return int(from_env)
    for item in exposed:
        number = item.split("/", 1)[0]
        if number.isdigit():
            return int(number)
    return DEFAULT_PORT


def _user(user: str, env: dict[str, str]) -> tuple[int | None, int | None]:
    uid_text, _, gid_text = user.partition(":")
    uid = int(uid_text) if uid_text.isdigit() else None
    gid = int(gid_text) if gid_text.isdigit() else None
    if uid is None and env.get("CNB_USER_ID", "").isdigit():
        uid = int(env["CNB_USER_ID"])
    if gid is None and env.get("CNB_GROUP_ID", "").isdigit():
        gid = int(env["CNB_GROUP_ID"])
    if uid is None and not user:
        uid = 0  # no User: the image runs as root
    return uid, gid


def manifests_yaml(
    facts: AppFacts, *, replicas: int = 1, pull_secret: str | None = None, namespace: str | None = None
) -> str:
    """The Deployment and the Service as YAML."""
    if replicas < 0:
        raise UsageError(f"--replicas {replicas}: expected 0 or more")
    if pull_secret is not None:
        check_name(pull_secret, "--pull-secret")
    if namespace is not None:
        check_name(namespace, "--namespace")
    docs = render(
        "app.yaml.j2",
        name=facts.name,
        namespace=namespace,
        replicas=replicas,
        image=facts.image,
        container=re.sub(r"[^a-z0-9-]+", "-", (facts.process or "app").lower()).strip("-")[:63] or "app",
        command=list(facts.command) if facts.command else None,
        port=facts.port,
        service_port=80,
        pull_secret=pull_secret,
        run_as_user=facts.run_as_user,
        run_as_group=facts.run_as_group,
        run_as_non_root=facts.run_as_user is not None and facts.run_as_user != 0,
        cpu="100m",
        memory="128Mi",
        memory_limit="512Mi",
    )
    return to_yaml(docs)
