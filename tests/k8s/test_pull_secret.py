"""``cnb k8s pull-secret``: the Secret decodes to the credentials cnb uses (config.json auths, a credential
helper, CNB_REGISTRY_AUTH), validates against the Kubernetes schema, and never shows up in ``-v`` output."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import Cnb
from tests.k8s.schema import errors


def decode(secret: dict[str, Any]) -> dict[str, Any]:
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    return dict(json.loads(base64.b64decode(secret["data"][".dockerconfigjson"])))


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_basic_auth_from_config_json(cnb: Cnb, tmp_path: Path) -> None:
    config = Path(cnb.env["DOCKER_CONFIG"]) / "config.json"
    config.write_text(json.dumps({"auths": {"registry.example.com:5000": {"auth": b64("deployer:s3cr3t-Pa55")}}}))
    out = tmp_path / "secret.yml"
    done = cnb("-v", "k8s", "pull-secret", "registry.example.com:5000", "--name", "regcred", "--namespace", "apps",
               "--service-account", "default", "-o", str(out))  # fmt: skip
    for shown in (done.stdout, done.stderr):
        for secret in ("s3cr3t-Pa55", b64("s3cr3t-Pa55"), b64("deployer:s3cr3t-Pa55")):
            assert secret not in shown
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    secret, account = yaml.safe_load_all(out.read_text())
    assert errors(secret) == [] and errors(account) == []
    assert secret["metadata"] == {"name": "regcred", "namespace": "apps"}
    assert decode(secret) == {
        "auths": {
            "registry.example.com:5000": {
                "username": "deployer",
                "password": "s3cr3t-Pa55",
                "auth": b64("deployer:s3cr3t-Pa55"),
            }
        }
    }
    assert account["kind"] == "ServiceAccount" and account["metadata"] == {"name": "default", "namespace": "apps"}
    assert account["imagePullSecrets"] == [{"name": "regcred"}]


def test_credentials_from_a_helper_and_from_cnb_registry_auth(cnb: Cnb, tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(
        '#!/bin/sh\nread server\n[ "$1" = get ] && [ "$server" = ghcr.example.org ] && '
        'printf \'{"ServerURL":"%s","Username":"helper-user","Secret":"helper-pass"}\' "$server"\n'
    )
    helper.chmod(0o755)
    (Path(cnb.env["DOCKER_CONFIG"]) / "config.json").write_text(
        json.dumps({"credHelpers": {"ghcr.example.org": "fake"}})
    )
    env = {"PATH": f"{bin_dir}:{cnb.env['PATH']}"}
    done = cnb("-v", "k8s", "pull-secret", "ghcr.example.org", extra_env=env)
    assert "helper-pass" not in done.stderr
    (secret,) = yaml.safe_load_all(done.stdout)
    assert errors(secret) == []
    assert secret["metadata"] == {"name": "cnb-pull-secret"}
    entry = decode(secret)["auths"]["ghcr.example.org"]
    assert (entry["username"], entry["password"]) == ("helper-user", "helper-pass")
    assert base64.b64decode(entry["auth"]).decode() == "helper-user:helper-pass"
    auth = json.dumps({"quay.example.net": "Basic " + b64("env-user:env-pass")})
    (secret,) = yaml.safe_load_all(
        cnb("k8s", "pull-secret", "quay.example.net", extra_env={"CNB_REGISTRY_AUTH": auth}).stdout
    )
    assert decode(secret)["auths"]["quay.example.net"]["password"] == "env-pass"


def test_no_credentials_is_one_line(cnb: Cnb, tmp_path: Path) -> None:
    done = cnb("k8s", "pull-secret", "nothing.example.com", "-o", str(tmp_path / "s.yml"), check=False)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "no credentials for nothing.example.com" in done.stderr
    assert not (tmp_path / "s.yml").exists()
    bad = cnb("k8s", "pull-secret", "r.example.com", "--name", "Not_A_Name", check=False)
    assert bad.returncode == 2 and "--name" in bad.stderr
    for host in ("Foo//bar:", "ghcr.io/team"):  # a reference is not a registry host
        wrong = cnb("k8s", "pull-secret", host, "-o", str(tmp_path / "s.yml"), check=False)
        assert wrong.returncode == 2 and "not a registry host" in wrong.stderr
        assert len(wrong.stderr.strip().splitlines()) == 1 and not (tmp_path / "s.yml").exists()
