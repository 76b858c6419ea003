"""The OCI image model: descriptors, platforms, manifests, indexes and image configs.

Reads both OCI (image-spec v1.1) and Docker v2 schema 2 documents; writes OCI. Parsed documents keep the raw
bytes they came from, so a copy never re-serialises (and never changes a digest). Image configs keep keys
this model does not know, so a round trip loses nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from cnbplatform.errors import CnbError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.digest import is_digest

#: imgutil's NormalizedDateTime (docs/spec-notes.md §6.2): the ``created`` of every image cnb writes unless a
#: creation time is asked for; the same instant as the tar entries' mtime (``tarformat.EPOCH``).
NORMALIZED_CREATED = "1980-01-01T00:00:01Z"


def created_time(epoch: int | None) -> str:
    """An image's ``created``: *epoch* (seconds since 1970, ``SOURCE_DATE_EPOCH`` or ``--creation-time``) in UTC,
    or :data:`NORMALIZED_CREATED` when None."""
    if epoch is None:
        return NORMALIZED_CREATED
    import datetime  # only when a time is given: most images keep the normalised date

    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class InvalidDocumentError(CnbError):
    """A manifest, index or config that is not valid JSON of the expected shape."""


def _require(obj: dict[str, Any], key: str, kind: type, what: str) -> Any:
    if key not in obj:
        raise InvalidDocumentError(f"invalid {what}: missing {key!r}")
    value = obj[key]
    if not isinstance(value, kind):
        raise InvalidDocumentError(f"invalid {what}: {key!r} must be {kind.__name__}")
    return value


def _loads(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidDocumentError(f"invalid {what}: not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise InvalidDocumentError(f"invalid {what}: expected a JSON object")
    return obj


def canonical_json(obj: Any) -> bytes:
    """Compact JSON with sorted keys: what cnb writes, so equal documents get equal digests."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def parse(cls, value: str) -> Platform:
        """``linux/arm64/v8`` -> Platform; the os part is required."""
        parts = value.strip().split("/")
        if len(parts) < 2 or len(parts) > 3 or not all(parts):
            raise InvalidDocumentError(f"invalid platform {value!r}: expected os/arch[/variant]")
        return cls(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Platform:
        return cls(
            os=str(obj.get("os", "")),
            architecture=str(obj.get("architecture", "")),
            variant=obj.get("variant") or None,
            os_version=obj.get("os.version") or None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        return out

    def normalized(self) -> Platform:
        arch, variant = self.architecture, self.variant
        arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64"}.get(arch, arch)
        if arch == "arm64" and variant in (None, "v8"):
            variant = None
        if arch == "arm" and variant is None:
            variant = "v7"
        return replace(self, architecture=arch, variant=variant)

    def matches(self, wanted: Platform) -> bool:
        """True when this (an index entry's platform) satisfies *wanted*; an unset wanted variant matches any."""
        have, want = self.normalized(), wanted.normalized()
        if have.os != want.os or have.architecture != want.architecture:
            return False
        return want.variant is None or have.variant == want.variant

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: Any, what: str = "descriptor") -> Descriptor:
        if not isinstance(obj, dict):
            raise InvalidDocumentError(f"invalid {what}: expected an object")
        digest = _require(obj, "digest", str, what)
        if not is_digest(digest):
            raise InvalidDocumentError(f"invalid {what}: bad digest {digest!r}")
        size = _require(obj, "size", int, what)
        if size < 0:
            raise InvalidDocumentError(f"invalid {what}: negative size")
        platform = obj.get("platform")
        return cls(
            media_type=str(obj.get("mediaType", "")),
            digest=digest,
            size=size,
            annotations=dict(obj.get("annotations") or {}),
            platform=Platform.from_json(platform) if isinstance(platform, dict) else None,
            urls=tuple(obj.get("urls") or ()),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform.to_json()
        if self.urls:
            out["urls"] = list(self.urls)
        return out

    def with_annotations(self, annotations: dict[str, str]) -> Descriptor:
        return replace(self, annotations=annotations)


@dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker v2 schema 2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    subject: Descriptor | None = None

    @classmethod
    def parse(cls, data: bytes, media_type: str | None = None) -> Manifest:
        obj = _loads(data, "image manifest")
        kind = obj.get("mediaType") or media_type or mt.OCI_MANIFEST
        if kind not in mt.MANIFEST_TYPES:
            raise InvalidDocumentError(f"invalid image manifest: unexpected media type {kind!r}")
        if obj.get("schemaVersion") != 2:
            raise InvalidDocumentError("invalid image manifest: schemaVersion must be 2")
        layers = _require(obj, "layers", list, "image manifest")
        subject = obj.get("subject")
        return cls(
            media_type=kind,
            config=Descriptor.from_json(obj.get("config"), "image manifest config"),
            layers=tuple(Descriptor.from_json(x, "image manifest layer") for x in layers),
            annotations=dict(obj.get("annotations") or {}),
            subject=Descriptor.from_json(subject) if subject else None,
        )

    def to_bytes(self) -> bytes:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [x.to_json() for x in self.layers],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.subject:
            out["subject"] = self.subject.to_json()
        return canonical_json(out)


@dataclass(frozen=True)
class Index:
    """An image index (OCI) or manifest list (Docker)."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def parse(cls, data: bytes, media_type: str | None = None) -> Index:
        obj = _loads(data, "image index")
        kind = obj.get("mediaType") or media_type or mt.OCI_INDEX
        if kind not in mt.INDEX_TYPES:
            raise InvalidDocumentError(f"invalid image index: unexpected media type {kind!r}")
        if obj.get("schemaVersion") != 2:
            raise InvalidDocumentError("invalid image index: schemaVersion must be 2")
        manifests = _require(obj, "manifests", list, "image index")
        return cls(
            media_type=kind,
            manifests=tuple(Descriptor.from_json(x, "image index entry") for x in manifests),
            annotations=dict(obj.get("annotations") or {}),
        )

    def to_bytes(self) -> bytes:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [x.to_json() for x in self.manifests],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return canonical_json(out)

    def select(self, wanted: Platform) -> Descriptor:
        """The first entry whose platform satisfies *wanted* (OCI image-spec, "Platform Variants")."""
        for desc in self.manifests:
            if desc.platform and desc.platform.matches(wanted):
                return desc
        offered = ", ".join(str(d.platform) for d in self.manifests if d.platform) or "none"
        raise InvalidDocumentError(f"no image for platform {wanted} in the index (offered: {offered})")


@dataclass(frozen=True)
class ContainerConfig:
    user: str = ""
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    working_dir: str = ""
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str = ""
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    _KNOWN = (
        "User",
        "Env",
        "Entrypoint",
        "Cmd",
        "WorkingDir",
        "Labels",
        "ExposedPorts",
        "Volumes",
        "StopSignal",
    )

    @classmethod
    def from_json(cls, obj: dict[str, Any] | None) -> ContainerConfig:
        obj = obj or {}
        entrypoint, cmd = obj.get("Entrypoint"), obj.get("Cmd")
        return cls(
            user=str(obj.get("User") or ""),
            env=tuple(obj.get("Env") or ()),
            entrypoint=tuple(entrypoint) if entrypoint is not None else None,
            cmd=tuple(cmd) if cmd is not None else None,
            working_dir=str(obj.get("WorkingDir") or ""),
            labels=dict(obj.get("Labels") or {}),
            exposed_ports=tuple(sorted(obj.get("ExposedPorts") or {})),
            volumes=tuple(sorted(obj.get("Volumes") or {})),
            stop_signal=str(obj.get("StopSignal") or ""),
            extra={k: v for k, v in obj.items() if k not in cls._KNOWN},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        if self.user:
            out["User"] = self.user
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.volumes:
            out["Volumes"] = {v: {} for v in self.volumes}
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        return out

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out


@dataclass(frozen=True)
class History:
    created: str | None = None
    created_by: str | None = None
    comment: str | None = None
    empty_layer: bool = False
    author: str | None = None

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> History:
        return cls(
            created=obj.get("created"),
            created_by=obj.get("created_by"),
            comment=obj.get("comment"),
            empty_layer=bool(obj.get("empty_layer", False)),
            author=obj.get("author"),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (
            ("created", self.created),
            ("created_by", self.created_by),
            ("comment", self.comment),
            ("author", self.author),
        ):
            if value is not None:
                out[key] = value
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@dataclass(frozen=True)
class ImageConfig:
    """The image configuration (OCI image-spec "Image Configuration"); unknown keys are kept in ``extra``."""

    architecture: str
    os: str
    diff_ids: tuple[str, ...]
    config: ContainerConfig = field(default_factory=ContainerConfig)
    created: str | None = None
    author: str | None = None
    variant: str | None = None
    os_version: str | None = None
    history: tuple[History, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    _KNOWN = (
        "architecture",
        "os",
        "rootfs",
        "config",
        "created",
        "author",
        "variant",
        "os.version",
        "history",
    )

    @classmethod
    def parse(cls, data: bytes) -> ImageConfig:
        obj = _loads(data, "image config")
        rootfs = obj.get("rootfs") or {}
        if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids", []), list):
            raise InvalidDocumentError("invalid image config: rootfs.diff_ids must be a list")
        diff_ids = tuple(rootfs.get("diff_ids") or ())
        for d in diff_ids:
            if not isinstance(d, str) or not is_digest(d):
                raise InvalidDocumentError(f"invalid image config: bad diff_id {d!r}")
        cfg = obj.get("config")
        return cls(
            architecture=str(obj.get("architecture", "")),
            os=str(obj.get("os", "")),
            diff_ids=diff_ids,
            config=ContainerConfig.from_json(cfg if isinstance(cfg, dict) else None),
            created=obj.get("created"),
            author=obj.get("author"),
            variant=obj.get("variant") or None,
            os_version=obj.get("os.version") or None,
            history=tuple(History.from_json(h) for h in obj.get("history") or () if isinstance(h, dict)),
            extra={k: v for k, v in obj.items() if k not in cls._KNOWN},
        )

    def to_bytes(self) -> bytes:
        out: dict[str, Any] = dict(self.extra)
        out["architecture"] = self.architecture
        out["os"] = self.os
        out["rootfs"] = {"type": "layers", "diff_ids": list(self.diff_ids)}
        out["config"] = self.config.to_json()
        if self.created is not None:
            out["created"] = self.created
        if self.author is not None:
            out["author"] = self.author
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        return canonical_json(out)

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant, self.os_version)

    @property
    def labels(self) -> dict[str, str]:
        return self.config.labels


def parse_document(data: bytes, media_type: str | None) -> Manifest | Index:
    """Parse a manifest or an index, deciding by the declared media type or the document's own field."""
    kind = media_type or ""
    if not kind:
        obj = _loads(data, "manifest")
        kind = str(obj.get("mediaType") or ("" if "layers" in obj else mt.OCI_INDEX))
        if not kind:
            kind = mt.OCI_MANIFEST
    if mt.is_index(kind):
        return Index.parse(data, kind)
    if mt.is_manifest(kind):
        return Manifest.parse(data, kind)
    raise InvalidDocumentError(f"unsupported manifest media type {kind!r}")
