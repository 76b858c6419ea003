from __future__ import annotations

import hashlib
import json

import pytest

from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.model import (
    Descriptor,
    ImageConfig,
    Index,
    InvalidDocumentError,
    Manifest,
    Platform,
    parse_document,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def docker_manifest() -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "digest": D1, "size": 10},
            "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP, "digest": D2, "size": 20}],
        }
    ).encode()


def test_reads_docker_v2_schema2_manifest() -> None:
    m = Manifest.parse(docker_manifest())
    assert m.media_type == mt.DOCKER_MANIFEST
    assert m.config.digest == D1 and m.layers[0].size == 20
    assert isinstance(parse_document(docker_manifest(), None), Manifest)


def test_writes_oci_and_round_trips() -> None:
    m = Manifest(mt.OCI_MANIFEST, Descriptor(mt.OCI_CONFIG, D1, 5), (Descriptor(mt.OCI_LAYER_GZIP, D2, 7),), {"a": "b"})
    again = Manifest.parse(m.to_bytes())
    assert again == m and again.annotations == {"a": "b"}
    assert json.loads(m.to_bytes())["mediaType"] == mt.OCI_MANIFEST


@pytest.mark.parametrize(
    "doc",
    [
        b"not json",
        b"[]",
        b'{"schemaVersion": 1, "layers": [], "config": {}}',
        b'{"schemaVersion": 2, "config": {"digest": "sha256:zz", "size": 1}, "layers": []}',
        b'{"schemaVersion": 2, "config": {"digest": "' + D1.encode() + b'", "size": -1}, "layers": []}',
    ],
)
def test_malformed_manifests_are_refused(doc: bytes) -> None:
    with pytest.raises(InvalidDocumentError):
        Manifest.parse(doc, mt.OCI_MANIFEST)


def test_index_platform_selection() -> None:
    index = Index(
        mt.OCI_INDEX,
        (
            Descriptor(mt.OCI_MANIFEST, D1, 1, platform=Platform("linux", "amd64")),
            Descriptor(mt.OCI_MANIFEST, D2, 1, platform=Platform("linux", "arm64", "v8")),
            Descriptor(mt.OCI_MANIFEST, D3, 1, platform=Platform("linux", "arm", "v6")),
        ),
    )
    assert index.select(Platform.parse("linux/arm64")).digest == D2
    assert index.select(Platform.parse("linux/aarch64")).digest == D2
    assert index.select(Platform.parse("linux/amd64")).digest == D1
    assert index.select(Platform.parse("linux/arm/v6")).digest == D3
    with pytest.raises(InvalidDocumentError, match="offered"):
        index.select(Platform.parse("linux/arm/v7"))
    with pytest.raises(InvalidDocumentError):
        Platform.parse("linux")
    assert Index.parse(index.to_bytes()) == index


def test_config_keeps_unknown_keys_and_fields() -> None:
    raw = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [D1]},
            "config": {"Env": ["PATH=/bin", "A=b=c"], "Labels": {"x": "y"}, "Healthcheck": {"Test": ["x"]}},
            "history": [{"created_by": "me", "empty_layer": True}],
            "unknown": {"keep": 1},
        }
    ).encode()
    cfg = ImageConfig.parse(raw)
    assert cfg.config.env_dict() == {"PATH": "/bin", "A": "b=c"}
    assert cfg.labels == {"x": "y"} and cfg.diff_ids == (D1,)
    again = json.loads(cfg.to_bytes())
    assert again["unknown"] == {"keep": 1}
    assert again["config"]["Healthcheck"] == {"Test": ["x"]}
    assert again["history"] == [{"created_by": "me", "empty_layer": True}]
    # canonical form: same content, same bytes, same digest
    assert (
        hashlib.sha256(ImageConfig.parse(cfg.to_bytes()).to_bytes()).digest() == hashlib.sha256(cfg.to_bytes()).digest()
    )


def test_config_with_bad_diff_ids_is_refused() -> None:
    with pytest.raises(InvalidDocumentError, match="diff_id"):
        ImageConfig.parse(b'{"architecture":"amd64","os":"linux","rootfs":{"diff_ids":["nope"]}}')
