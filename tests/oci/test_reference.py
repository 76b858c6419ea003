from __future__ import annotations

import pytest

from cnbplatform.errors import InvalidReferenceError
from cnbplatform.oci.address import StoreKind, parse_address
from cnbplatform.oci.reference import parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ubuntu", "docker.io/library/ubuntu:latest"),
        ("ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
        ("library/ubuntu", "docker.io/library/ubuntu:latest"),
        ("docker.io/ubuntu", "docker.io/library/ubuntu:latest"),
        ("index.docker.io/foo/bar:1", "docker.io/foo/bar:1"),
        ("user/app", "docker.io/user/app:latest"),
        ("localhost/app", "localhost/app:latest"),
        ("localhost:5000/a/b:t", "localhost:5000/a/b:t"),
        ("127.0.0.1:5000/app", "127.0.0.1:5000/app:latest"),
        ("gcr.io/proj/img@" + DIGEST, "gcr.io/proj/img@" + DIGEST),
        ("gcr.io/proj/img:v1@" + DIGEST, "gcr.io/proj/img:v1@" + DIGEST),
        ("[::1]:5000/app:x", "[::1]:5000/app:x"),
    ],
)
def test_docker_normalisation(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected


def test_parts_and_familiar_form() -> None:
    ref = parse_reference("localhost:5000/team/app:v2")
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == ("localhost:5000", "team/app", "v2", None)
    assert ref.identifier == "v2"
    assert parse_reference("ubuntu").familiar() == "ubuntu:latest"
    assert parse_reference("ubuntu").api_host == "registry-1.docker.io"
    assert parse_reference("a.io/x@" + DIGEST).identifier == DIGEST


@pytest.mark.parametrize(
    "text",
    ["", "UPPER/case", "app:", "app:-bad", "app@sha256:short", "a b", "host.io/", ":tag", "app::x", "x/../y"],
)
def test_bad_references_are_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_reference(text)
    assert "invalid" in info.value.message


def test_uppercase_message_says_why() -> None:
    with pytest.raises(InvalidReferenceError, match="lowercase"):
        parse_reference("MyApp")


@pytest.mark.parametrize(
    ("text", "kind", "tag"),
    [
        ("oci:/tmp/x", StoreKind.LAYOUT, None),
        ("oci:/tmp/x:v1", StoreKind.LAYOUT, "v1"),
        ("oci:/tmp/x:docker.io/library/a:b", StoreKind.LAYOUT, "docker.io/library/a:b"),
        ("myapp", StoreKind.LOCAL, "docker.io/library/myapp:latest"),
        ("local:127.0.0.1:5000/x", StoreKind.LOCAL, "127.0.0.1:5000/x:latest"),
        ("127.0.0.1:5000/x:1", StoreKind.REGISTRY, "127.0.0.1:5000/x:1"),
        ("docker://ubuntu", StoreKind.REGISTRY, "docker.io/library/ubuntu:latest"),
        ("docker-daemon:app:1", StoreKind.DAEMON, "docker.io/library/app:1"),
    ],
)
def test_addresses(text: str, kind: StoreKind, tag: str | None) -> None:
    address = parse_address(text)
    assert address.kind is kind
    assert address.tag == tag


def test_empty_oci_address_is_refused() -> None:
    with pytest.raises(InvalidReferenceError):
        parse_address("oci:")
