"""Writing the build cache at the end of an export (docs/spec-notes.md §7.2; §16 item 48).

For each group buildpack, each ``cache=true`` layer with a local directory goes into the next cache: its tar (made
once, and shared with the image for ``launch=true`` layers) is *reused* when its diffID equals the sha the old
cache metadata recorded and the cache still holds an intact copy, else *added*. ``<layers>/sbom/cache`` is one more
layer (``sbom.sha``). Then the metadata is set and the cache committed. A ``cache=true`` layer without contents is
skipped with a warning. Every failure here is a warning: the image export still succeeds.

Once the image has been written, each cached layer's directory is handed to the cache (``adopt_tree``) when the
backend keeps extracted copies, so the next restore is a rename instead of an extraction (docs/design.md §3 decision 4).
The directories are only handed over after the image write succeeded, so a failed push can be retried with the
layers dir intact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cnbplatform.errors import CnbError
from cnbplatform.files.analyzed import BuildpackLayers, LayerEntry
from cnbplatform.files.labels import CacheMetadata
from cnbplatform.lifecycle.cache.protocol import Cache, CacheWriter
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.lifecycle.export.layers import BuildpackDir
from cnbplatform.oci.layers.spec import LayerBlob
from cnbplatform.oci.store.protocol import WriteResult


@dataclass
class CacheOutcome:
    """What the cache export did; ``committed`` is False when it failed (see the warnings)."""

    committed: bool = False
    added: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    write: WriteResult | None = None  # what an image cache pushed


class _CacheExport:
    def __init__(self, cache: Cache, writer: CacheWriter, old: CacheMetadata, reporter: Reporter) -> None:
        self.cache = cache
        self.writer = writer
        self.old = old
        self.reporter = reporter
        self.outcome = CacheOutcome()
        self.trees: dict[str, tuple[Path, str | None]] = {}

    def put(self, what: str, blob: LayerBlob, old_sha: str | None) -> None:
        if old_sha == blob.diff_id and self.writer.reuse(blob.diff_id):
            self.reporter.info(f"Reusing cache layer {what}")
            self.outcome.reused.append(blob.diff_id)
        else:
            self.reporter.info(f"Adding cache layer {what}")
            self.writer.add_blob(blob)
            self.outcome.added.append(blob.diff_id)
        self.reporter.debug(f"Layer {what} SHA: {blob.diff_id}")

    def buildpack(self, bp: BuildpackDir, blobs: Mapping[str, LayerBlob]) -> BuildpackLayers:
        old_bp = self.old.for_buildpack(bp.buildpack.id)
        layers: dict[str, LayerEntry] = {}
        for layer in bp.layers:
            if not layer.toml.types.cache:
                continue
            if layer.dir is None:
                self.reporter.warn(f"Failed to cache layer '{layer.key}': layer is cache=true but has no contents")
                continue
            blob = blobs.get(layer.key)
            if blob is None:
                continue  # its tar could not be made (already warned)
            old_entry = old_bp.layers.get(layer.name) if old_bp else None
            self.put(f"'{layer.key}'", blob, old_entry.sha if old_entry and old_entry.cache else None)
            layers[layer.name] = LayerEntry.from_layer_toml(layer.toml, blob.diff_id)
            self.trees.setdefault(blob.diff_id, (layer.dir, blob.tree_digest))
        return BuildpackLayers(key=bp.buildpack.id, version=bp.buildpack.version, layers=layers)


def export_cache(
    cache: Cache,
    buildpacks: Sequence[BuildpackDir],
    blobs: Mapping[str, LayerBlob],
    sbom_blob: LayerBlob | None,
    *,
    image_written: Callable[[], bool],
    reporter: Reporter,
) -> CacheOutcome:
    """Write the next version of *cache* (module docstring). *blobs* maps ``<id>:<layer>`` to the layer's blob;
    *image_written* blocks until the image export is over and tells whether it succeeded."""
    try:
        old = cache.metadata()
    except CnbError as exc:
        reporter.warn(f"Failed to read {cache.description}, writing a new cache: {exc.message}")
        old = CacheMetadata()
    try:
        with cache.begin() as writer:
            job = _CacheExport(cache, writer, old, reporter)
            entries = tuple(job.buildpack(bp, blobs) for bp in buildpacks)
            sbom = None
            if sbom_blob is not None:
                job.put("'cache.sbom'", sbom_blob, old.sbom)
                sbom = sbom_blob.diff_id
            writer.set_metadata(CacheMetadata(sbom=sbom, buildpacks=entries))
            if image_written():
                for diff_id, (layer_dir, digest) in sorted(job.trees.items()):
                    if writer.adopt_tree(diff_id, layer_dir, digest):
                        job.outcome.adopted.append(diff_id)
            writer.commit()
            job.outcome.write = getattr(writer, "result", None)
            job.outcome.committed = True
            return job.outcome
    except (CnbError, OSError) as exc:
        reason = exc.message if isinstance(exc, CnbError) else (exc.strerror or str(exc))
        reporter.warn(f"Failed to export cache to {cache.description}: {reason}")
        return CacheOutcome()
