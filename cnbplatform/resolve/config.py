"""kbld's configuration documents and lock files (https://carvel.dev/kbld/docs/latest/config/).

A ``kind: Config`` document (``apiVersion: kbld.k14s.io/v1alpha1``; the older kinds ``Sources``,
``ImageOverrides``, ``ImageDestinations`` and ``ImageKeys`` share its shape) adds ``searchRules``,
``overrides``, ``sources`` and ``destinations``; an imgpkg ``ImagesLock`` (``apiVersion:
imgpkg.carvel.dev/v1alpha1``) is read as preresolved overrides. These documents are consumed, not output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.errors import InvalidReferenceError, UsageError
from cnbplatform.oci.reference import parse_reference
from cnbplatform.resolve.documents import Document, dump_sorted, load_one

CONFIG_API = "kbld.k14s.io/v1alpha1"
CONFIG_KINDS = ("Config", "Sources", "ImageOverrides", "ImageDestinations", "ImageKeys")
LOCK_API = "imgpkg.carvel.dev/v1alpha1"
LOCK_KIND = "ImagesLock"
ANNOTATION = "kbld.k14s.io/images"
LOCK_ID = "kbld.carvel.dev/id"
LOCK_ORIGINS = "kbld.carvel.dev/origins"
STRATEGIES = ("none", "entireValue", "json", "yaml")
BUILDERS = ("docker", "pack", "ko", "kubectlBuildkit", "bazel")

Origins = list[dict[str, Any]]
PathPart = str | int | None  # a key, a list index, or None for "every index" (kbld's allIndexes)


def repo_of(value: str) -> str | None:
    """``registry/repository`` of an image reference, normalised; None when it does not parse."""
    try:
        return parse_reference(value).name
    except InvalidReferenceError:
        return None


@dataclass(frozen=True)
class ImageRef:
    """kbld's ``image`` (the exact string) or ``imageRepo`` (every tag and digest of a repository)."""

    image: str | None = None
    image_repo: str | None = None

    def matches(self, value: str) -> bool:
        if self.image is not None:
            return value == self.image
        return self.image_repo is not None and repo_of(value) == repo_of(self.image_repo)


@dataclass(frozen=True)
class KeyMatcher:
    name: str | None = None
    path: tuple[PathPart, ...] | None = None


@dataclass(frozen=True)
class SearchRule:
    key: KeyMatcher | None = None
    value: ImageRef | None = None
    strategy: str = "entireValue"
    nested: tuple[SearchRule, ...] = ()


DEFAULT_RULE = SearchRule(key=KeyMatcher(name="image"))


@dataclass(frozen=True)
class Override:
    ref: ImageRef
    new_image: str
    preresolved: bool = False
    origins: tuple[dict[str, Any], ...] | None = None  # carried by cnb's own locks (kbld ignores the field)


@dataclass(frozen=True)
class Source:
    ref: ImageRef
    path: Path
    builder: str
    options: Mapping[str, Any]
    where: str


@dataclass(frozen=True)
class Destination:
    ref: ImageRef
    new_image: str
    tags: tuple[str, ...] = ()


@dataclass
class Config:
    rules: list[SearchRule] = field(default_factory=list)
    overrides: list[Override] = field(default_factory=list)
    sources: list[Source] = field(default_factory=list)
    destinations: list[Destination] = field(default_factory=list)
    raw_rules: list[Any] = field(default_factory=list)  # searchRules as written (a lock repeats them, as kbld's does)

    def extend(self, other: Config) -> None:
        self.rules += other.rules
        self.raw_rules += [r for r in other.raw_rules if r not in self.raw_rules]
        self.overrides += other.overrides
        self.sources += other.sources
        self.destinations += other.destinations

    def override_for(self, value: str) -> Override | None:
        return next((o for o in self.overrides if o.ref.matches(value)), None)

    def source_for(self, value: str) -> Source | None:
        return next((s for s in self.sources if s.ref.matches(value)), None)

    def destination_for(self, value: str) -> Destination | None:
        return next((d for d in self.destinations if d.ref.matches(value)), None)


def is_config(doc: Document) -> bool:
    data = doc.data
    return isinstance(data, dict) and (
        (data.get("apiVersion") == CONFIG_API and data.get("kind") in CONFIG_KINDS)
        or (data.get("apiVersion") == LOCK_API and data.get("kind") == LOCK_KIND)
    )


def parse_config(doc: Document, base: Path) -> Config:
    """The Config (or ImagesLock) in *doc*; source paths are relative to *base* (kbld: the working dir)."""
    data: dict[str, Any] = doc.data
    where = doc.description
    if data.get("kind") == LOCK_KIND:
        return _parse_images_lock(data, where)
    for key in data:
        if key not in ("apiVersion", "kind", "metadata", "minimumRequiredVersion", "sources", "overrides",
                       "destinations", "keys", "searchRules"):  # fmt: skip
            raise UsageError(f"read {where}: unknown field {key!r}")
    config = Config()
    for i, raw in enumerate(_list(data, "searchRules", where)):
        config.rules.append(_rule(raw, f"{where} searchRules[{i}]"))
        config.raw_rules.append(raw)
    for i, key in enumerate(_list(data, "keys", where)):
        if not isinstance(key, str) or not key:
            raise UsageError(f"read {where} keys[{i}]: expected a non-empty key name")
        config.rules.append(SearchRule(key=KeyMatcher(name=key)))
    for i, raw in enumerate(_list(data, "overrides", where)):
        config.overrides.append(_override(raw, f"{where} overrides[{i}]"))
    for i, raw in enumerate(_list(data, "sources", where)):
        config.sources.append(_source(raw, f"{where} sources[{i}]", base))
    for i, raw in enumerate(_list(data, "destinations", where)):
        at = f"{where} destinations[{i}]"
        item = _mapping(raw, at)
        ref = _image_ref(item, at)
        new_image = item.get("newImage") or ref.image or ref.image_repo
        tags = item.get("tags") or []
        if not isinstance(new_image, str) or not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise UsageError(f"read {at}: newImage must be a string and tags a list of strings")
        config.destinations.append(Destination(ref, new_image, tuple(tags)))
    return config


def _list(data: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise UsageError(f"read {where}: {key} must be a list")
    return value


def _mapping(raw: object, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UsageError(f"read {where}: expected a mapping")
    return raw


def _image_ref(item: Mapping[str, Any], where: str) -> ImageRef:
    image, repo = item.get("image"), item.get("imageRepo")
    if not (isinstance(image, str) and image) and not (isinstance(repo, str) and repo):
        raise UsageError(f"read {where}: expected image or imageRepo")
    return ImageRef(image if isinstance(image, str) and image else None, repo if isinstance(repo, str) else None)


def _rule(raw: object, where: str) -> SearchRule:
    item = _mapping(raw, where)
    key = value = None
    if item.get("keyMatcher") is not None:
        km = _mapping(item["keyMatcher"], f"{where} keyMatcher")
        name, path = km.get("name"), km.get("path")
        if not name and not path:
            raise UsageError(f"read {where}: keyMatcher needs name or path")
        if name is not None and not isinstance(name, str):
            raise UsageError(f"read {where}: keyMatcher.name must be a string")
        key = KeyMatcher(name=name or None, path=_path(path, where) if path else None)
    if item.get("valueMatcher") is not None:
        value = _image_ref(_mapping(item["valueMatcher"], f"{where} valueMatcher"), f"{where} valueMatcher")
    if key is None and value is None:
        raise UsageError(f"read {where}: expected keyMatcher or valueMatcher")
    strategy = "entireValue"
    nested: tuple[SearchRule, ...] = ()
    if item.get("updateStrategy") is not None:
        us = _mapping(item["updateStrategy"], f"{where} updateStrategy")
        chosen = [k for k in us if k in STRATEGIES]
        if len(chosen) != 1 or len(us) != 1:
            raise UsageError(f"read {where}: updateStrategy must be one of {', '.join(STRATEGIES)}")
        strategy = chosen[0]
        inner = us[strategy] or {}
        if strategy in ("json", "yaml"):
            rules = _list(_mapping(inner, where), "searchRules", where)
            nested = tuple(_rule(r, f"{where} updateStrategy.{strategy}.searchRules[{i}]") for i, r in enumerate(rules))
    return SearchRule(key=key, value=value, strategy=strategy, nested=nested)


def _path(raw: object, where: str) -> tuple[PathPart, ...]:
    if not isinstance(raw, list) or not raw:
        raise UsageError(f"read {where}: keyMatcher.path must be a non-empty list")
    parts: list[PathPart] = []
    for part in raw:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("allIndexes") is True:
            parts.append(None)
        elif isinstance(part, dict) and isinstance(part.get("index"), int):
            parts.append(int(part["index"]))
        else:
            raise UsageError(f"read {where}: keyMatcher.path parts are keys, {{allIndexes: true}} or {{index: N}}")
    return tuple(parts)


def _override(raw: object, where: str) -> Override:
    item = _mapping(raw, where)
    for unsupported in ("tagSelection", "platformSelection"):
        if item.get(unsupported) is not None:
            raise UsageError(f"read {where}: {unsupported} is not supported by cnb resolve")
    new_image = item.get("newImage")
    if not isinstance(new_image, str) or not new_image:
        raise UsageError(f"read {where}: expected newImage")
    origins = item.get("origins")
    if origins is not None and not (isinstance(origins, list) and all(isinstance(o, dict) for o in origins)):
        raise UsageError(f"read {where}: origins must be a list of mappings")
    return Override(_image_ref(item, where), new_image, bool(item.get("preresolved")), _frozen(origins))


def _frozen(origins: list[dict[str, Any]] | None) -> tuple[dict[str, Any], ...] | None:
    return tuple(origins) if origins else None


def _source(raw: object, where: str, base: Path) -> Source:
    item = _mapping(raw, where)
    ref = _image_ref(item, where)
    path = item.get("path")
    if not isinstance(path, str) or not path:
        raise UsageError(f"read {where}: expected path")
    chosen = [b for b in BUILDERS if item.get(b) is not None]
    if len(chosen) > 1:
        raise UsageError(f"read {where}: choose one builder, not {' and '.join(chosen)}")
    builder = chosen[0] if chosen else "docker"
    options = _mapping(item.get(builder) or {}, f"{where} {builder}")
    build = _mapping(options.get("build") or {}, f"{where} {builder}.build")
    return Source(ref, (base / path).resolve(), builder, build, where)


def _parse_images_lock(data: Mapping[str, Any], where: str) -> Config:
    images = data.get("images")
    if images is None and isinstance(data.get("spec"), dict):  # the format before kbld 0.28
        images = data["spec"].get("images")
    config = Config()
    for i, raw in enumerate(images or []):
        at = f"{where} images[{i}]"
        item = _mapping(raw, at)
        image = item.get("image")
        annotations = _mapping(item.get("annotations") or {}, f"{at} annotations")
        ident = annotations.get(LOCK_ID) or image
        if not isinstance(image, str) or not isinstance(ident, str):
            raise UsageError(f"read {at}: expected image and the {LOCK_ID} annotation")
        origins = annotations.get(LOCK_ORIGINS)
        parsed = load_one(origins, f"{at} {LOCK_ORIGINS}") if isinstance(origins, str) else None
        if parsed is not None and not (isinstance(parsed, list) and all(isinstance(o, dict) for o in parsed)):
            raise UsageError(f"read {at}: {LOCK_ORIGINS} must be a YAML list of origins")
        config.overrides.append(Override(ImageRef(image=ident), image, True, _frozen(parsed)))
    return config


# -- outputs -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """One reference as written (``ident``), the digest reference it became, and how."""

    ident: str
    url: str
    origins: tuple[dict[str, Any], ...]


def config_lock(entries: Sequence[Resolved], search_rules: Sequence[Any] = ()) -> str:
    """kbld's ``--lock-output``: a Config whose overrides pin every reference (``preresolved: true``), with the
    inputs' ``searchRules``. Each override also carries its ``origins`` (kbld ignores the field), so a lock fed
    back in reproduces the annotations instead of adding a ``preresolved`` origin."""
    overrides = [
        {"image": e.ident, "newImage": e.url, "preresolved": True, "origins": list(e.origins)}
        for e in sorted(entries, key=lambda e: e.ident)
    ]
    doc: dict[str, Any] = {"apiVersion": CONFIG_API, "kind": "Config", "minimumRequiredVersion": "0.31.0"}
    doc["overrides"] = overrides
    if search_rules:
        doc["searchRules"] = list(search_rules)
    return dump_sorted(doc)


def imgpkg_lock(entries: Sequence[Resolved]) -> str:
    """kbld's ``--imgpkg-lock-output``: an imgpkg ``ImagesLock``."""
    images = [
        {"annotations": {LOCK_ID: e.ident, LOCK_ORIGINS: dump_sorted(list(e.origins))}, "image": e.url}
        for e in sorted(entries, key=lambda e: e.ident)
    ]
    return "---\n" + dump_sorted({"apiVersion": LOCK_API, "images": images, "kind": LOCK_KIND})
