"""``cnb k8s manifests``: a Deployment and Service from a buildpacks-built image's own config, valid against the
Kubernetes schema (and the validation catches a dropped required field)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import Cnb
from tests.k8s.conftest import BuiltApp
from tests.k8s.schema import errors
from tests.support.builders import run_cnb
from tests.support.tools import skopeo_inspect


def manifests(app: BuiltApp, *args: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(run_cnb(app.home, "k8s", "manifests", app.image, *args).stdout) if d]


def test_deployment_and_service_from_the_image(shell_app: BuiltApp) -> None:
    deployment, service = manifests(shell_app, "--replicas", "2", "--pull-secret", "regcred", "--name", "hello")
    assert errors(deployment) == [] and errors(service) == []
    inspected = skopeo_inspect(f"docker://{shell_app.image}")
    config = skopeo_inspect(f"docker://{shell_app.image}", "--config")["config"]
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    repo = shell_app.image.rsplit(":", 1)[0]
    assert container["image"] == f"{repo}@{inspected['Digest']}"  # pinned to what the registry holds
    assert config["Entrypoint"] == ["/cnb/process/web"] and container["name"] == "web" and "command" not in container
    assert config["User"].split(":")[0] == "1000"
    assert spec["securityContext"]["runAsUser"] == 1000 and spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]  # no PORT: 8080
    assert {"name": "PORT", "value": "8080"} in container["env"]
    assert container["readinessProbe"]["tcpSocket"] == {"port": "http"} and "livenessProbe" in container
    assert container["resources"]["requests"] == {"cpu": "100m", "memory": "128Mi"}
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    assert deployment["spec"]["replicas"] == 2 and deployment["metadata"]["name"] == "hello"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    other = manifests(shell_app, "--port", "3000")[0]["spec"]["template"]["spec"]["containers"][0]
    assert other["ports"][0]["containerPort"] == 3000


def test_the_schema_check_fails_when_a_required_field_is_dropped(shell_app: BuiltApp) -> None:
    deployment, service = manifests(shell_app)
    for path in (("spec", "selector"), ("spec", "template", "spec", "containers", 0, "name")):
        broken = copy.deepcopy(deployment)
        parent: Any = broken
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
        assert any("is a required property" in e for e in errors(broken)), path
    broken = copy.deepcopy(service)
    del broken["spec"]["ports"][0]["port"]
    assert errors(broken)
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"]["runAsUsr"] = 1  # strict: a typo fails
    assert errors(broken)


def test_an_image_not_built_with_buildpacks_is_refused(cnb: Cnb, tmp_path: Path) -> None:
    from tests.support.images import make_busybox_image

    make_busybox_image(tmp_path / "layout", "plain")
    done = cnb("k8s", "manifests", f"oci:{tmp_path / 'layout'}:plain", check=False)
    assert done.returncode == 2 and "not built with buildpacks" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_port_user_and_process_come_from_the_config() -> None:
    from cnbplatform.k8s.deploy import app_facts
    from cnbplatform.oci.model import ImageConfig

    label = '{"processes": [{"type": "worker", "command": ["w"]}, {"type": "web", "command": ["s"]}]}'

    def config(**container: Any) -> ImageConfig:
        raw = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []},
               "config": {"Labels": {"io.buildpacks.build.metadata": label}, **container}}  # fmt: skip
        import json

        return ImageConfig.parse(json.dumps(raw).encode())

    facts = app_facts("r.example/app@sha256:" + "a" * 64, config(Env=["PORT=9000"], User="2000:3000",
                      Entrypoint=["/cnb/lifecycle/launcher"]))  # fmt: skip
    assert (facts.port, facts.run_as_user, facts.run_as_group) == (9000, 2000, 3000)
    assert (facts.process, facts.command, facts.name) == ("web", ("/cnb/process/web",), "app")
    facts = app_facts("r.example/my_App:1", config(ExposedPorts={"5000/tcp": {}}, User="cnb",
                      Env=["CNB_USER_ID=1001"], Entrypoint=["/cnb/process/worker"]))  # fmt: skip
    assert (facts.port, facts.run_as_user, facts.process, facts.command) == (5000, 1001, "worker", None)
    assert facts.name == "my-app"
    assert app_facts("x", config()).run_as_user == 0  # no User: root, so runAsNonRoot stays false
