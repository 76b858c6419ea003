"""Issue 9 item 9: registry reads resume. A blob download whose connection dies in the middle, or whose body is
cut short, is asked for again from where it stopped (``Range``), or from the start where the registry ignores
ranges, within the retry budget (``CNB_REGISTRY_RETRIES``); the digest is still checked over the whole blob.

A fault-injecting proxy (:mod:`tests.support.faultproxy`) sits between cnb and a real docker-registry.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cnbplatform.errors import RegistryError
from cnbplatform.oci.registry import RegistryClient
from tests.conftest import Cnb
from tests.support.faultproxy import FaultProxy
from tests.support.images import make_random_image
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo

MB = 1024 * 1024


@dataclass(frozen=True)
class Pushed:
    source: Path  # the OCI layout it came from
    ref: str  # below the registry host
    big: dict[str, int | str]  # the descriptor of its big layer


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory, registry: RunningRegistry) -> Pushed:
    """A two-layer image pushed to the registry once for this module (by skopeo, keeping its digests)."""
    src = tmp_path_factory.mktemp("resume-src") / "layout"
    make_random_image(src, "img", [3 * MB, MB // 4], seed=9)
    ref = "security/resume:1"
    skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", f"oci:{src}:img", f"docker://{registry.host}/{ref}")
    layers = json.loads((src / "blobs" / "sha256" / _manifest_hex(src)).read_text())["layers"]
    return Pushed(src, ref, max(layers, key=lambda layer: int(layer["size"])))


def _manifest_hex(layout: Path) -> str:
    index = json.loads((layout / "index.json").read_text())
    return str(index["manifests"][0]["digest"]).split(":", 1)[1]


def _blob_sha256(layout: Path, digest: str) -> str:
    data = (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _blob_gets(proxy: FaultProxy, digest: str) -> list[tuple[str | None, int, bool]]:
    return [(e.range, e.status, e.cut) for e in proxy.log if e.method == "GET" and e.path.endswith(digest)]


@pytest.mark.integration
def test_a_connection_dropped_mid_blob_resumes_with_range(
    tmp_path: Path, cnb: Cnb, registry: RunningRegistry, pushed: Pushed
) -> None:
    ref, big = pushed.ref, pushed.big
    cut = int(big["size"]) // 2
    with FaultProxy(registry.host, blob=str(big["digest"]), drop_after=cut) as proxy:
        dst = tmp_path / "dst"
        cnb("image", "copy", f"{proxy.host}/{ref}", f"oci:{dst}:img")
        gets = _blob_gets(proxy, str(big["digest"]))
    assert gets[0] == (None, 200, True), gets  # the first GET died half way
    assert len(gets) == 2, gets
    resumed_at = int(str(gets[1][0]).removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= cut  # only the missing part was asked for again
    assert gets[1][1:] == (206, False)
    assert _blob_sha256(dst, str(big["digest"])) == big["digest"]
    assert _manifest_hex(dst) == _manifest_hex(pushed.source)  # the same image, manifest and all


@pytest.mark.integration
def test_a_registry_that_ignores_ranges_is_read_again_from_the_start(
    tmp_path: Path, cnb: Cnb, registry: RunningRegistry, pushed: Pushed
) -> None:
    ref, big = pushed.ref, pushed.big
    with FaultProxy(
        registry.host, blob=str(big["digest"]), drop_after=int(big["size"]) // 3, strip_range=True
    ) as proxy:
        dst = tmp_path / "dst"
        cnb("image", "copy", f"{proxy.host}/{ref}", f"oci:{dst}:img")
        gets = _blob_gets(proxy, str(big["digest"]))
    assert [(status, cut) for _, status, cut in gets] == [(200, True), (200, False)], gets
    assert gets[1][0] is None  # the range never reached the registry
    assert _blob_sha256(dst, str(big["digest"])) == big["digest"]


@pytest.mark.integration
def test_a_body_cut_short_without_a_length_is_noticed_by_size_and_resumed(
    tmp_path: Path, cnb: Cnb, registry: RunningRegistry, pushed: Pushed
) -> None:
    ref, big = pushed.ref, pushed.big
    with FaultProxy(registry.host, blob=str(big["digest"]), drop_after=MB, hide_length=True) as proxy:
        dst = tmp_path / "dst"
        cnb("image", "copy", f"{proxy.host}/{ref}", f"oci:{dst}:img")
        gets = _blob_gets(proxy, str(big["digest"]))
    assert [(status, cut) for _, status, cut in gets] == [(200, True), (206, False)], gets
    assert _blob_sha256(dst, str(big["digest"])) == big["digest"]


@pytest.mark.integration
def test_resuming_stays_within_the_retry_budget(
    tmp_path: Path, cnb: Cnb, registry: RunningRegistry, pushed: Pushed
) -> None:
    ref, big = pushed.ref, pushed.big
    with FaultProxy(registry.host, blob=str(big["digest"]), drop_after=MB, drops=100) as proxy:
        dst = tmp_path / "dst"
        done = cnb(
            "image",
            "copy",
            f"{proxy.host}/{ref}",
            f"oci:{dst}:img",
            check=False,
            extra_env={"CNB_REGISTRY_RETRIES": "3"},
        )
        gets = _blob_gets(proxy, str(big["digest"]))
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert str(big["digest"]) in lines[0] and "after 3 attempts" in lines[0], lines[0]
    assert len(gets) == 3 and all(cut for _, _, cut in gets), gets
    index = json.loads((dst / "index.json").read_text()) if (dst / "index.json").exists() else {"manifests": []}
    assert index["manifests"] == []


# -- the reader against a scripted registry (httpx.MockTransport): answers no real registry gives ------------------


class _Cut(httpx.SyncByteStream):
    """A body that yields *data* and then dies, as a dropped connection does."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data
        raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")


def _scripted(blob: bytes, resume: Callable[[httpx.Request], httpx.Response]) -> tuple[RegistryClient, list[str]]:
    ranges: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200)
        ranges.append(request.headers.get("range", ""))
        if len(ranges) == 1:
            return httpx.Response(200, headers={"content-length": str(len(blob))}, stream=_Cut(blob[:1000]))
        return resume(request)

    client = RegistryClient("registry.example.test", transport=httpx.MockTransport(handle), retries=3, backoff=0.001)
    return client, ranges


def test_a_resumed_body_that_starts_elsewhere_is_one_error_not_wrong_bytes() -> None:
    blob = bytes(range(256)) * 40
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
    wrong = httpx.Response(206, headers={"content-range": f"bytes 0-{len(blob) - 1}/{len(blob)}"}, content=blob)
    client, ranges = _scripted(blob, lambda request: wrong)
    with client, pytest.raises(RegistryError) as err, client.open_blob("app", digest, len(blob)) as stream:
        stream.read()
    assert ranges == ["", "bytes=1000-"]
    assert str(err.value) == (
        f"pull blob {digest} from registry.example.test/app: asked to resume at byte 1000, got the range "
        f"'bytes 0-{len(blob) - 1}/{len(blob)}'"
    )


def test_a_resumed_body_is_joined_exactly() -> None:
    blob = bytes(range(256)) * 40
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"

    def rest(request: httpx.Request) -> httpx.Response:
        start = int(request.headers["range"].removeprefix("bytes=").removesuffix("-"))
        headers = {"content-range": f"bytes {start}-{len(blob) - 1}/{len(blob)}"}
        return httpx.Response(206, headers=headers, content=blob[start:])

    client, ranges = _scripted(blob, rest)
    with client, client.open_blob("app", digest, len(blob)) as stream:
        assert stream.read() == blob
    assert ranges == ["", "bytes=1000-"]
