"""Registry credentials: ``CNB_REGISTRY_AUTH`` and Docker's ``config.json`` (with credential helpers).

Implements Platform API 0.15 "Registry Authentication" (``CNB_REGISTRY_AUTH``: a JSON object mapping a
registry to the value of an ``Authorization`` header) and falls back to the Docker CLI configuration file
as documented by ``docker login`` ("Credential stores", "Credential helpers"). The environment is only
ever read through the mapping a caller passes in; credentials never reach a log line or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cnbplatform.errors import UsageError
from cnbplatform.oci.reference import DOCKER_HUB, normal_registry

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_DOCKER_HUB_WEB = "registry.hub.docker.com"  # one more name of Docker Hub that config.json keys use
_HELPER_TIMEOUT = 60.0


@dataclass(frozen=True, repr=False)
class Credential:
    """What a registry (or its token server) is shown to prove who we are.

    ``identity_token`` is an OAuth2 refresh token for the token server (``docker login`` stores one as
    ``identitytoken``); ``registry_token`` is a bearer token sent to the registry as is.
    """

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    registry_token: str | None = None

    @property
    def has_basic(self) -> bool:
        return self.username is not None and self.password is not None

    def basic_header(self) -> str:
        """The ``Authorization: Basic`` value (RFC 7617) for username and password."""
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        def hidden(value: str | None) -> str:
            return "None" if value is None else "'***'"

        return (
            f"Credential(username={self.username!r}, password={hidden(self.password)}, "
            f"identity_token={hidden(self.identity_token)}, registry_token={hidden(self.registry_token)})"
        )

    __str__ = __repr__


def normalize_registry(name: str) -> str:
    """The key Docker matches credentials by: scheme and path stripped, Docker Hub aliases unified."""
    value = name.strip()
    for prefix in ("https://", "http://"):
        if value.lower().startswith(prefix):
            value = value[len(prefix) :]
            break
    value = normal_registry(value.split("/", 1)[0].lower())
    return DOCKER_HUB if value == _DOCKER_HUB_WEB else value


def _helper_server_url(registry: str) -> str:
    """The server URL a credential helper is asked about (Docker Hub has its historical key)."""
    return DOCKER_HUB_KEY if normalize_registry(registry) == "docker.io" else registry


def resolve_credential(registry: str, env: Mapping[str, str]) -> Credential | None:
    """Find credentials for *registry*: ``CNB_REGISTRY_AUTH`` first, then Docker's ``config.json``."""
    from_env = _from_cnb_registry_auth(registry, env)
    if from_env is not None:
        return from_env
    config_path = _docker_config_path(env)
    if config_path is None or not config_path.is_file():
        return None
    return _from_docker_config(registry, config_path, env)


def _from_cnb_registry_auth(registry: str, env: Mapping[str, str]) -> Credential | None:
    raw = env.get("CNB_REGISTRY_AUTH")
    if not raw:
        return None
    try:
        table = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise UsageError(f"read CNB_REGISTRY_AUTH: not valid JSON (line {exc.lineno} column {exc.colno})") from exc
    if not isinstance(table, dict):
        raise UsageError("read CNB_REGISTRY_AUTH: expected a JSON object of registry -> Authorization header")
    wanted = normalize_registry(registry)
    for key, header in table.items():
        if normalize_registry(str(key)) != wanted:
            continue
        if not isinstance(header, str):
            raise UsageError(f"read CNB_REGISTRY_AUTH: the entry for {key!r} is not a string")
        return _credential_from_header(header, f"CNB_REGISTRY_AUTH entry for {key!r}")
    return None


def _credential_from_header(header: str, where: str) -> Credential:
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic" and value:
        username, password = _decode_basic(value, where)
        return Credential(username=username, password=password)
    if scheme.lower() == "bearer" and value:
        return Credential(registry_token=value)
    raise UsageError(f"read {where}: expected 'Basic <base64>' or 'Bearer <token>'")


def _decode_basic(value: str, where: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise UsageError(f"read {where}: credentials are not valid base64 of 'user:password'") from exc
    username, sep, password = decoded.partition(":")
    if not sep:
        raise UsageError(f"read {where}: credentials are not of the form 'user:password'")
    return username, password


def _docker_config_path(env: Mapping[str, str]) -> Path | None:
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    if env.get("HOME"):
        return Path(env["HOME"]) / ".docker" / "config.json"
    return None


def _load_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise UsageError(f"read Docker config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"read Docker config {path}: expected a JSON object")
    return data


def _matching(table: object, registry: str, path: Path, field: str) -> Any:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UsageError(f"read Docker config {path}: {field!r} is not an object")
    wanted = normalize_registry(registry)
    exact = table.get(registry)
    if exact is not None:
        return exact
    for key, value in table.items():
        if normalize_registry(str(key)) == wanted:
            return value
    return None


def _from_docker_config(registry: str, path: Path, env: Mapping[str, str]) -> Credential | None:
    config = _load_config(path)
    helper = _matching(config.get("credHelpers"), registry, path, "credHelpers")
    if helper is None:
        helper = config.get("credsStore")
    if helper is not None:
        if not isinstance(helper, str) or not helper:
            raise UsageError(f"read Docker config {path}: credential helper names must be strings")
        found = run_credential_helper(helper, registry, env)
        if found is not None:
            return found
    entry = _matching(config.get("auths"), registry, path, "auths")
    if entry is None:
        return None
    if not isinstance(entry, dict):
        raise UsageError(f"read Docker config {path}: the auths entry for {registry} is not an object")
    return _credential_from_entry(entry, registry, path)


def _credential_from_entry(entry: dict[str, Any], registry: str, path: Path) -> Credential | None:
    where = f"Docker config {path} (auths entry for {registry})"
    username = entry.get("username") or None
    password = entry.get("password") or None
    if entry.get("auth"):
        username, password = _decode_basic(str(entry["auth"]), where)
    identity = entry.get("identitytoken") or None
    token = entry.get("registrytoken") or None
    if not any((username, password, identity, token)):
        return None
    for value in (username, password, identity, token):
        if value is not None and not isinstance(value, str):
            raise UsageError(f"read {where}: credential fields must be strings")
    return Credential(username=username, password=password, identity_token=identity, registry_token=token)


def run_credential_helper(name: str, registry: str, env: Mapping[str, str]) -> Credential | None:
    """Ask ``docker-credential-<name> get`` (docker-credential-helpers protocol) for *registry*.

    Returns None when the helper has no credentials for it.
    """
    program = f"docker-credential-{name}"
    executable = shutil.which(program, path=env.get("PATH"))
    action = f"get credentials for {registry} from {program}"
    if executable is None:
        raise UsageError(f"{action}: {program} is not on PATH")
    try:
        done = subprocess.run(
            [executable, "get"],
            input=_helper_server_url(registry).encode(),
            capture_output=True,
            env=dict(env),
            timeout=_HELPER_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError(f"{action}: {exc}") from exc
    if done.returncode != 0:
        message = (done.stdout or done.stderr).decode(errors="replace").strip().splitlines()
        first = message[0][:200] if message else f"exit status {done.returncode}"
        if "credentials not found" in first.lower():
            return None
        raise UsageError(f"{action}: {first}")
    try:
        answer = json.loads(done.stdout)
        username, secret = answer.get("Username"), answer.get("Secret")
    except (json.JSONDecodeError, AttributeError) as exc:
        raise UsageError(f"{action}: the helper did not answer with JSON") from exc
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None
    if username == "<token>":
        return Credential(identity_token=secret)
    return Credential(username=username, password=secret)
