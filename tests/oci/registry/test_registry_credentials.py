"""Credential resolution: CNB_REGISTRY_AUTH, Docker config.json auths, credHelpers and credsStore."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from cnbplatform.errors import UsageError
from cnbplatform.oci.registry import Credential, resolve_credential


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _docker_config(tmp_path: Path, content: object) -> dict[str, str]:
    directory = tmp_path / "docker-config"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(content if isinstance(content, str) else json.dumps(content))
    return {"DOCKER_CONFIG": str(directory), "PATH": os.environ.get("PATH", "")}


def _fake_helper(tmp_path: Path, name: str, answers: dict[str, dict[str, str]]) -> str:
    """A ``docker-credential-<name>`` sh script answering ``get`` from a table, logging what it was asked."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    cases = "".join(f"  '{server}') echo '{json.dumps(answer)}' ;;\n" for server, answer in answers.items())
    script = bin_dir / f"docker-credential-{name}"
    script.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 2\n'
        "read -r server\n"
        f'echo "$server" >> "{bin_dir}/asked.log"\n'
        'case "$server" in\n'
        f"{cases}"
        "  *) echo 'credentials not found in native keychain'; exit 1 ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    return str(bin_dir)


def test_auths_entry_with_base64_auth(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {"auths": {"https://registry.test:5000/v1/": {"auth": _b64("bob:pw:with:colons")}}})
    assert resolve_credential("registry.test:5000", env) == Credential(username="bob", password="pw:with:colons")
    assert resolve_credential("other.test", env) is None


def test_auths_entry_with_username_password_and_identity_token(tmp_path: Path) -> None:
    env = _docker_config(
        tmp_path,
        {
            "auths": {
                "a.test": {"username": "u", "password": "p"},
                "b.test": {"identitytoken": "refresh"},
            }
        },
    )
    assert resolve_credential("a.test", env) == Credential(username="u", password="p")
    assert resolve_credential("b.test", env) == Credential(identity_token="refresh")


def test_docker_hub_key(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {"auths": {"https://index.docker.io/v1/": {"auth": _b64("hub:pw")}}})
    assert resolve_credential("docker.io", env) == Credential(username="hub", password="pw")
    assert resolve_credential("index.docker.io", env) == Credential(username="hub", password="pw")


def test_home_docker_config_is_used_without_docker_config(tmp_path: Path) -> None:
    (tmp_path / ".docker").mkdir()
    (tmp_path / ".docker" / "config.json").write_text(json.dumps({"auths": {"h.test": {"auth": _b64("a:b")}}}))
    assert resolve_credential("h.test", {"HOME": str(tmp_path)}) == Credential(username="a", password="b")
    assert resolve_credential("h.test", {}) is None


def test_cred_helper_is_run_with_the_server_url(tmp_path: Path) -> None:
    bin_dir = _fake_helper(
        tmp_path,
        "test",
        {
            "helped.test": {"Username": "hu", "Secret": "hs"},
            "https://index.docker.io/v1/": {"Username": "<token>", "Secret": "idt"},
        },
    )
    env = _docker_config(tmp_path, {"credHelpers": {"helped.test": "test", "docker.io": "test"}})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    assert resolve_credential("helped.test", env) == Credential(username="hu", password="hs")
    assert resolve_credential("docker.io", env) == Credential(identity_token="idt")
    asked = (Path(bin_dir) / "asked.log").read_text().split()
    assert asked == ["helped.test", "https://index.docker.io/v1/"]


def test_creds_store_falls_back_to_auths_when_helper_has_nothing(tmp_path: Path) -> None:
    bin_dir = _fake_helper(tmp_path, "store", {"stored.test": {"Username": "su", "Secret": "ss"}})
    env = _docker_config(tmp_path, {"credsStore": "store", "auths": {"plain.test": {"auth": _b64("pu:pp")}}})
    env["PATH"] = f"{bin_dir}:{env['PATH']}"
    assert resolve_credential("stored.test", env) == Credential(username="su", password="ss")
    assert resolve_credential("plain.test", env) == Credential(username="pu", password="pp")


def test_missing_helper_is_a_usage_error(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {"credHelpers": {"x.test": "does-not-exist"}})
    env["PATH"] = str(tmp_path / "empty")
    with pytest.raises(UsageError, match="docker-credential-does-not-exist is not on PATH"):
        resolve_credential("x.test", env)


def test_cnb_registry_auth_takes_precedence(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {"auths": {"r.test": {"auth": _b64("docker:config")}}})
    env["CNB_REGISTRY_AUTH"] = json.dumps({"r.test": "Basic " + _b64("env:user"), "t.test": "Bearer tok"})
    assert resolve_credential("r.test", env) == Credential(username="env", password="user")
    assert resolve_credential("t.test", env) == Credential(registry_token="tok")


def test_cnb_registry_auth_without_an_entry_falls_through(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {"auths": {"r.test": {"auth": _b64("docker:config")}}})
    env["CNB_REGISTRY_AUTH"] = json.dumps({"other.test": "Bearer tok"})
    assert resolve_credential("r.test", env) == Credential(username="docker", password="config")


def test_malformed_cnb_registry_auth_does_not_echo_it() -> None:
    with pytest.raises(UsageError, match="CNB_REGISTRY_AUTH") as caught:
        resolve_credential("r.test", {"CNB_REGISTRY_AUTH": '{"r.test": "Basic c2VjcmV0'})
    assert "c2VjcmV0" not in str(caught.value)
    with pytest.raises(UsageError, match="Basic <base64>"):
        resolve_credential("r.test", {"CNB_REGISTRY_AUTH": '{"r.test": "Digest abc"}'})


def test_malformed_config_json_names_the_file(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, '{"auths": {')
    with pytest.raises(UsageError) as caught:
        resolve_credential("r.test", env)
    assert str(tmp_path / "docker-config" / "config.json") in str(caught.value)


def test_bad_base64_names_the_file(tmp_path: Path) -> None:
    env = _docker_config(tmp_path, {"auths": {"r.test": {"auth": "!!notbase64"}}})
    with pytest.raises(UsageError, match=r"config\.json"):
        resolve_credential("r.test", env)
