"""Issue 2 "must show": htpasswd basic auth over TLS with a private CA, credentials from Docker's config.json."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cnb
from tests.support.images import make_busybox_image
from tests.support.pki import make_ca
from tests.support.registry import RunningRegistry, start_registry

pytestmark = pytest.mark.integration
USER, PASSWORD = "cnb-user", "s3cret-pass"


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    reg = start_registry(tmp_path_factory.mktemp("tls-registry"), tls=True, htpasswd=(USER, PASSWORD))
    try:
        yield reg
    finally:
        reg.stop()


def write_config(cnb: Cnb, registry: str, user: str, password: str) -> None:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    config = Path(cnb.env["DOCKER_CONFIG"]) / "config.json"
    config.write_text(json.dumps({"auths": {registry: {"auth": token}}}))


def test_tls_and_basic_auth_from_config_json(tmp_path: Path, cnb: Cnb, tls_registry: RunningRegistry) -> None:
    assert tls_registry.ca_file is not None
    src = tmp_path / "src"
    digest = make_busybox_image(src, "busybox")
    target = f"{tls_registry.host}/private/busybox:1"
    ca = {"CNB_REGISTRY_CA": str(tls_registry.ca_file)}

    write_config(cnb, tls_registry.host, USER, PASSWORD)
    done = cnb("image", "copy", f"oci:{src}:busybox", target, extra_env=ca)
    assert digest in done.stdout
    details = json.loads(cnb("image", "inspect", "--json", target, extra_env=ca).stdout)
    assert details["digest"] == digest
    # the password never shows up, even with -v
    verbose = cnb("-v", "image", "inspect", target, extra_env=ca)
    assert PASSWORD not in verbose.stderr and base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode() not in (
        verbose.stderr
    )
    assert "GET https://" in verbose.stderr

    # the CA may also come from $CNB_HOME/certs.d/<host>/ca.crt, as Docker reads /etc/docker/certs.d
    certs = cnb.home / "certs.d" / tls_registry.host
    certs.mkdir(parents=True)
    (certs / "ca.crt").write_bytes(tls_registry.ca_file.read_bytes())
    cnb("image", "copy", target, "private-copy:1")

    write_config(cnb, tls_registry.host, USER, "wrong-password")
    bad = cnb("image", "copy", target, f"oci:{tmp_path}/out:x", check=False, extra_env=ca)
    assert bad.returncode != 0
    assert "unauthorized" in bad.stderr.lower()
    assert "wrong-password" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_tls_with_the_wrong_ca_is_refused(tmp_path: Path, cnb: Cnb, tls_registry: RunningRegistry) -> None:
    """A CA that did not sign the registry's certificate is not trusted (loopback without a CA is treated as
    an insecure registry, as Docker does, so the check needs an explicit, wrong CA)."""
    other = make_ca(tmp_path / "other-ca")
    write_config(cnb, tls_registry.host, USER, PASSWORD)
    done = cnb(
        "image",
        "inspect",
        f"{tls_registry.host}/private/none:1",
        check=False,
        extra_env={"CNB_REGISTRY_CA": str(other.cert_file)},
    )
    assert done.returncode != 0
    assert "certificate" in done.stderr.lower()
