"""``cnb resolve``: read YAML, build ``sources``, pin every image reference to a digest, annotate, write locks.

The steps, in order: parse every input document (``kind: Config`` and ``ImagesLock`` documents configure,
everything else is a resource, kept in input order); find the references in each resource; give each distinct
reference its digest reference (an override, a source built and pushed to its destination, or one manifest
``HEAD``); rewrite the resources and annotate each that has references with ``kbld.k14s.io/images``. Nothing is
written until everything has succeeded.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnbplatform.errors import UsageError
from cnbplatform.imagebuilders.base import SourceBuild
from cnbplatform.imagebuilders.registry import builder_for_kbld
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.store.stores import Stores
from cnbplatform.platform.context import PlatformContext
from cnbplatform.resolve.config import (
    ANNOTATION,
    CONFIG_API,
    DEFAULT_RULE,
    LOCK_API,
    Config,
    Resolved,
    Source,
    config_lock,
    imgpkg_lock,
    is_config,
    parse_config,
)
from cnbplatform.resolve.documents import Document, dump_sorted, dump_stream, input_files, iter_documents, load_one
from cnbplatform.resolve.resolver import DEFAULT_WORKERS, Resolver
from cnbplatform.resolve.search import find_references, replace_references


@dataclass(frozen=True)
class ResolveRequest:
    files: tuple[str, ...]
    texts: tuple[tuple[str, str], ...] = ()  # (name, YAML text) read after the files
    base: Path = field(default_factory=Path.cwd)
    lock_output: bool = False
    imgpkg_lock_output: bool = False
    workers: int = DEFAULT_WORKERS


@dataclass(frozen=True)
class ResolveOutcome:
    text: str
    entries: tuple[Resolved, ...]
    lock: str | None
    imgpkg_lock: str | None
    built: int
    looked_up: int
    seconds: float


def run_resolve(ctx: PlatformContext, request: ResolveRequest, reporter: Reporter) -> ResolveOutcome:
    if request.lock_output and request.imgpkg_lock_output:
        raise UsageError("--lock-output and --imgpkg-lock-output cannot be used together (as in kbld)")
    started = time.monotonic()
    files = [*(input_files(request.files) if request.files else []), *request.texts]
    # Without any kbld Config or lock in the input, every reference is looked up as it is: the lookups can start
    # while the rest is still being parsed.
    speculate = not any(CONFIG_API in text or LOCK_API in text for _, text in files)
    config = Config()
    resources: list[Document] = []
    found: dict[str, str] = {}  # reference as written -> where it was first seen
    known: dict[str, tuple[dict[str, Any], ...]] = {}  # digest url -> origins an earlier run recorded
    per_doc: list[list[str]] = []
    entries: dict[str, Resolved] = {}
    built = 0
    with Stores(ctx) as stores:
        resolver = Resolver(stores, request.workers)
        try:
            for doc in iter_documents(files):
                if is_config(doc):
                    config.extend(parse_config(doc, request.base))
                    continue
                resources.append(doc)
                if speculate:
                    refs = find_references(doc.data, [DEFAULT_RULE], doc.description)
                    for ref in refs:
                        resolver.submit(ref, doc.description)
                    per_doc.append(refs)
            rules = [*config.rules, DEFAULT_RULE]
            for index, doc in enumerate(resources):
                refs = per_doc[index] if speculate else find_references(doc.data, rules, doc.description)
                if not speculate:
                    per_doc.append(refs)
                for ref in refs:
                    found.setdefault(ref, doc.description)
                known.update(_recorded_origins(doc))
            for value, where in found.items():
                override = config.override_for(value)
                if override is not None and override.preresolved:
                    pinned = override.origins or ({"preresolved": {"url": override.new_image}},)
                    entries[value] = Resolved(value, override.new_image, tuple(pinned))
                    continue
                target = override.new_image if override is not None else value
                source = config.source_for(target)
                if source is not None:
                    entries[value] = _build(ctx, config, source, target, reporter)
                    built += 1
                    continue
                resolver.submit(target, where)
            digests = resolver.results()
            looked_up = resolver.distinct
        finally:
            resolver.close()
    for value in found:
        if value in entries:
            continue
        override = config.override_for(value)
        target = override.new_image if override is not None else value
        digested = digests[target]
        recorded = known.get(target) if target == digested.url else None
        if recorded:
            origins: tuple[dict[str, Any], ...] = recorded
        else:
            resolved: dict[str, Any] = {"url": target}
            if digested.tag is not None:
                resolved["tag"] = digested.tag
            origins = ({"resolved": resolved},)
        entries[value] = Resolved(value, digested.url, origins)
    out_docs = []
    for doc, refs in zip(resources, per_doc, strict=True):
        data = replace_references(doc.data, rules, lambda v: entries[v].url, doc.description)
        if refs:
            _annotate(data, [entries[r] for r in refs])
        out_docs.append(data)
    ordered = tuple(entries[v] for v in found)
    return ResolveOutcome(
        text=dump_stream(out_docs),
        entries=ordered,
        lock=config_lock(ordered, config.raw_rules) if request.lock_output else None,
        imgpkg_lock=imgpkg_lock(ordered) if request.imgpkg_lock_output else None,
        built=built,
        looked_up=looked_up,
        seconds=time.monotonic() - started,
    )


def _recorded_origins(doc: Document) -> dict[str, tuple[dict[str, Any], ...]]:
    """The origins a previous run wrote into *doc*'s annotation, by url (so they are kept, not duplicated)."""
    data = doc.data
    meta = data.get("metadata") if isinstance(data, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    text = annotations.get(ANNOTATION) if isinstance(annotations, dict) else None
    if not isinstance(text, str):
        return {}
    items = load_one(text, f"{doc.description} annotation {ANNOTATION}")
    out: dict[str, tuple[dict[str, Any], ...]] = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("url"), str) and isinstance(item.get("origins"), list):
            out[item["url"]] = tuple(o for o in item["origins"] if isinstance(o, dict))
    return out


def _annotate(data: Any, used: Sequence[Resolved]) -> None:
    if not isinstance(data, dict):
        return
    by_url: dict[str, list[dict[str, Any]]] = {}
    for entry in used:
        origins = by_url.setdefault(entry.url, [])
        origins += [o for o in entry.origins if o not in origins]
    listing = [{"origins": by_url[url], "url": url} for url in sorted(by_url)]
    meta = data.get("metadata")
    if not isinstance(meta, dict):
        meta = data["metadata"] = {}
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[ANNOTATION] = dump_sorted(listing)


def _build(ctx: PlatformContext, config: Config, source: Source, image: str, reporter: Reporter) -> Resolved:
    destination = config.destination_for(image)
    if destination is None:
        raise UsageError(
            f"{source.where}: image {image!r} is built from {source.path} but has no destination "
            "(add a destinations entry with newImage in a registry)"
        )
    if not source.path.is_dir():
        raise UsageError(f"{source.where}: path {source.path} is not a directory")
    builder = builder_for_kbld(source.builder, source.where)
    reporter.info(f"build {image} from {source.path} with {builder.name}")
    built_image = builder.build(ctx, SourceBuild(source.path, image, source.options), reporter)
    pushed = builder.push(ctx, built_image, destination.new_image, destination.tags)
    reporter.info(f"pushed {image} -> {pushed.reference}")
    return Resolved(image, pushed.reference, tuple(source_origins(source.path)))


def source_origins(path: Path) -> list[dict[str, Any]]:
    """kbld's origins of an image built from *path*: ``local``, and ``git`` when *path* is in a git work tree."""
    origins: list[dict[str, Any]] = [{"local": {"path": str(path)}}]
    git = _git(path, "rev-parse", "HEAD")
    if git is None:
        return origins
    remote = _git(path, "config", "--get", "remote.origin.url") or ""
    dirty = bool(_git(path, "status", "--porcelain", "--", "."))
    tags = [t for t in (_git(path, "tag", "--points-at", "HEAD") or "").splitlines() if t]
    info: dict[str, Any] = {"dirty": dirty, "remoteURL": remote, "sha": git}
    if tags:
        info["tags"] = tags
    origins.append({"git": info})
    return origins


def _git(path: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
