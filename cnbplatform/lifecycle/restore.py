"""The restore phase (docs/spec-notes.md §2.3, §7.3): put back what the previous build left for this one.

Per buildpack of the group (no other buildpack is ever looked at, §16 item 54):

1. ``store.toml`` from the previous image's metadata, even with skip-layers (§16 item 49);
2. layer tomls from the previous image's metadata: launch layers that are not ``build=true, cache=false``, and
   ``cache=true`` ones only when the cache also holds them as ``cache=true``;
3. layer tomls from the cache metadata: ``cache=true`` layers; ``launch=true`` ones only when the image lacks
   them and the Platform API is at least 0.14;
4. contents of every restored ``cache=true`` layer from the cache, only when the sha the toml came with equals
   the cache's; otherwise toml and directory are both removed (§16 item 52). Contents come from an intact
   extracted copy by rename when the cache has one, else from the blob, whose diffID is verified while it is
   extracted; a missing or corrupt blob is a warning and the layer is dropped, toml included (§16 item 55);
5. (Platform ≥ 0.8) the cache's SBOM layer is extracted, then ``<layers>/sbom/{launch,cache}/<bp>/<layer>/
   sbom.<ext>`` is copied to ``<layers>/<bp>/<layer>.sbom.<ext>`` for each layer whose toml was restored, and
   ``<layers>/sbom`` is deleted.

Restored tomls hold only ``[metadata]`` (§16 item 50): a buildpack must declare the types again to keep a layer.
Launch-only layers get a toml and no directory (§16 item 51); ``build=true, cache=false`` layers get nothing
(§16 item 53). With skip-layers only step 1 runs. Failures raise :class:`PhaseError` with exit code 42.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cnbplatform.errors import CnbError, PhaseError
from cnbplatform.files.analyzed import Analyzed, LayerEntry
from cnbplatform.files.apis import ApiVersion, check_buildpack_api
from cnbplatform.files.build_toml import StoreToml
from cnbplatform.files.buildpack_toml import escape_id
from cnbplatform.files.group import GroupFile, GroupMember
from cnbplatform.files.labels import CacheMetadata
from cnbplatform.files.untrusted import is_name
from cnbplatform.lifecycle.cache.protocol import READ_ERRORS, Cache, extract_layer, remove_path
from cnbplatform.lifecycle.common import EXIT_RESTORE, Reporter, check_group_apis

_SBOM_FILE = re.compile(r"^sbom\.[A-Za-z0-9]+\.json$")


@dataclass(frozen=True)
class RestoreInputs:
    """What the restorer needs, already resolved by the platform. ``uid``/``gid``: owner of what is restored when
    running as root; ``layers_mount``: the layers directory's path inside the build container."""

    group: GroupFile
    analyzed: Analyzed
    cache: Cache | None
    layers_dir: Path
    skip_layers: bool = False
    uid: int | None = None
    gid: int | None = None
    platform_api: str = "0.15"
    layers_mount: str = "/layers"


@dataclass
class _Buildpack:
    member: GroupMember
    dir: Path
    restored: dict[str, LayerEntry] = field(default_factory=dict)  # layer name -> entry its toml was written from
    taken: set[str] = field(default_factory=set)  # layers moved whole from the cache's extracted copies

    @property
    def id(self) -> str:
        return self.member.id


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def restore(inputs: RestoreInputs, reporter: Reporter) -> None:
    """Run the restore phase (module docstring); raises PhaseError (exit 42) on failure."""
    check_group_apis(inputs.group, "restore")
    _Restorer(inputs, reporter).run()


class _Restorer:
    def __init__(self, inputs: RestoreInputs, reporter: Reporter) -> None:
        self.inputs = inputs
        self.reporter = reporter
        self.api = ApiVersion.parse(inputs.platform_api)
        self.buildpacks: list[_Buildpack] = []

    @contextlib.contextmanager
    def _doing(self, action: str) -> Iterator[None]:
        try:
            yield
        except PhaseError:
            raise
        except CnbError as exc:
            raise PhaseError("restore", EXIT_RESTORE, action, exc.message) from exc
        except OSError as exc:
            raise PhaseError("restore", EXIT_RESTORE, action, exc.strerror or str(exc)) from exc

    def run(self) -> None:
        inputs = self.inputs
        for member in inputs.group.group:
            check_buildpack_api(member.api, f"buildpack {member}")
            escaped = escape_id(member.id)
            if not is_name(escaped):
                raise PhaseError("restore", EXIT_RESTORE, f"read group: invalid buildpack id {member.id!r}")
            self.buildpacks.append(_Buildpack(member, inputs.layers_dir / escaped))
        if inputs.cache is None:
            self.reporter.warn("No cached data will be used: no cache specified")
            cache_meta = CacheMetadata()
        else:
            with self._doing(f"read {inputs.cache.description}"):
                cache_meta = inputs.cache.metadata()
        for bp in self.buildpacks:
            with self._doing(f"restore store.toml of {bp.id}"):
                self._store_toml(bp)
        if inputs.skip_layers:
            self.reporter.info("Skipping buildpack layer analysis")
        else:
            for bp in self.buildpacks:
                with self._doing(f"restore layer metadata of {bp.id}"):
                    self._layer_metadata(bp, cache_meta)
            for bp in self.buildpacks:
                with self._doing(f"restore cached layers of {bp.id}"):
                    self._layer_contents(bp, cache_meta)
            if self.api.at_least("0.8"):
                with self._doing("restore SBOM files"):
                    self._sboms(cache_meta)
        with self._doing("set the owner of restored files"):
            self._own()

    # -- step 1 ---------------------------------------------------------------------------------------

    def _store_toml(self, bp: _Buildpack) -> None:
        app = self.inputs.analyzed.metadata.for_buildpack(bp.id)
        if app is None or app.store is None:
            return
        StoreToml(metadata=dict(app.store)).dump(bp.dir / "store.toml")

    # -- steps 2 and 3 --------------------------------------------------------------------------------

    def _write_toml(self, bp: _Buildpack, name: str, entry: LayerEntry, source: str) -> None:
        if not is_name(name):
            self.reporter.warn(f"Not restoring layer {name!r} of {bp.id}: not a valid layer name")
            return
        self.reporter.info(f"Restoring metadata for '{bp.id}:{name}' from {source}")
        entry.to_layer_toml().dump_restored(bp.dir / f"{name}.toml")
        bp.restored[name] = entry

    def _layer_metadata(self, bp: _Buildpack, cache_meta: CacheMetadata) -> None:
        app_bp = self.inputs.analyzed.metadata.for_buildpack(bp.id)
        cache_bp = cache_meta.for_buildpack(bp.id)
        app_layers = app_bp.layers if app_bp else {}
        cached_layers = cache_bp.layers if cache_bp else {}
        for name, entry in sorted(app_layers.items()):
            ident = f"'{bp.id}:{name}'"
            if not entry.launch:
                self.reporter.debug(f"Not restoring metadata for {ident}, marked as launch=false")
                continue
            if entry.build and not entry.cache:
                self.reporter.debug(f"Not restoring metadata for {ident}, marked as build=true, cache=false")
                continue
            cached = cached_layers.get(name)
            if entry.cache and (cached is None or not cached.cache):
                self.reporter.debug(f"Not restoring metadata for {ident}, marked as cache=true, but not found in cache")
                continue
            self._write_toml(bp, name, entry, "app image")
        for name, entry in sorted(cached_layers.items()):
            ident = f"'{bp.id}:{name}'"
            if not entry.cache:
                self.reporter.debug(f"Not restoring {ident} from cache, marked as cache=false")
                continue
            if entry.launch and name in app_layers:
                continue  # restored (or deliberately not) from the app image above
            if entry.launch and not self.api.at_least("0.14"):
                self.reporter.debug(f"Not restoring {ident} from cache, marked as launch=true")
                continue
            self._write_toml(bp, name, entry, "cache")

    # -- step 4 ---------------------------------------------------------------------------------------

    def _drop(self, bp: _Buildpack, name: str) -> None:
        remove_path(bp.dir / name)
        (bp.dir / f"{name}.toml").unlink(missing_ok=True)
        bp.restored.pop(name, None)

    def _layer_contents(self, bp: _Buildpack, cache_meta: CacheMetadata) -> None:
        cache_bp = cache_meta.for_buildpack(bp.id)
        cached_layers = cache_bp.layers if cache_bp else {}
        for name, entry in sorted(bp.restored.items()):
            if not entry.cache:
                continue
            ident = f"'{bp.id}:{name}'"
            cached = cached_layers.get(name)
            if cached is None or not cached.cache:
                self.reporter.info(f"Removing {ident}, not in cache")
                self._drop(bp, name)
            elif entry.sha != cached.sha:
                self.reporter.info(f"Removing {ident}, wrong sha")
                self.reporter.debug(f"Layer sha: {entry.sha!r}, cache sha: {cached.sha!r}")
                self._drop(bp, name)
            else:
                self.reporter.info(f"Restoring data for {ident} from cache")
                self._restore_layer(bp, name, cached.sha)

    def _restore_layer(self, bp: _Buildpack, name: str, sha: str) -> None:
        cache = self.inputs.cache
        assert cache is not None  # cached layers come from a cache's metadata
        ident = f"'{bp.id}:{name}'"
        dest = bp.dir / name
        remove_path(dest)
        if cache.take_tree(sha, dest):
            self.reporter.debug(f"Restored {ident} from the cache's extracted copy of {sha}")
            bp.taken.add(name)
            return
        opener = cache.layer(sha)
        if opener is None:
            self.reporter.warn(f"Skipping restore for layer {ident}: {cache.description} has no layer {sha}")
            self._drop(bp, name)
            return
        try:
            extract_layer(
                opener, self.inputs.layers_dir, layers_mount=self.inputs.layers_mount, what=f"cached layer {ident}"
            )
        except READ_ERRORS as exc:
            reason = exc.message if isinstance(exc, CnbError) else str(exc)
            self.reporter.warn(f"Skipping restore for layer {ident}: {reason}")
            self._drop(bp, name)
            return
        if not _is_dir(dest):
            self.reporter.warn(f"Skipping restore for layer {ident}: cached layer {sha} does not hold its directory")
            self._drop(bp, name)

    # -- step 5 ---------------------------------------------------------------------------------------

    def _sboms(self, cache_meta: CacheMetadata) -> None:
        layers_dir = self.inputs.layers_dir
        cache = self.inputs.cache
        if cache_meta.sbom and cache is not None:
            self.reporter.info("Restoring data for SBOM from cache")
            opener = cache.layer(cache_meta.sbom)
            try:
                if opener is None:
                    raise CnbError(f"{cache.description} has no layer {cache_meta.sbom}")
                extract_layer(opener, layers_dir, layers_mount=self.inputs.layers_mount, what="cached SBOM layer")
            except READ_ERRORS as exc:
                reason = exc.message if isinstance(exc, CnbError) else str(exc)
                self.reporter.warn(f"Skipping restore of the cached SBOM layer: {reason}")
        sbom_dir = layers_dir / "sbom"
        for bp in self.buildpacks:
            if not _is_dir(bp.dir):
                continue
            for kind in ("launch", "cache"):
                for name in sorted(bp.restored):
                    self._copy_sboms(sbom_dir, kind, bp.dir, name)
        remove_path(sbom_dir)

    @staticmethod
    def _copy_sboms(sbom_dir: Path, kind: str, bp_dir: Path, layer: str) -> None:
        """Copy ``<sbom_dir>/<kind>/<bp>/<layer>/sbom.<ext>`` to ``<bp_dir>/<layer>.sbom.<ext>`` (regular files
        only, and only through real directories)."""
        source = sbom_dir
        for part in (kind, bp_dir.name, layer):
            if not _is_dir(source):
                return
            source = source / part
        if not _is_dir(source):
            return
        for entry in sorted(os.scandir(source), key=lambda e: e.name):
            if _SBOM_FILE.match(entry.name) and entry.is_file(follow_symlinks=False):
                target = bp_dir / f"{layer}.{entry.name}"
                remove_path(target)
                shutil.copyfile(entry.path, target)

    # -- ownership ------------------------------------------------------------------------------------

    def _own(self) -> None:
        uid, gid = self.inputs.uid, self.inputs.gid
        if uid is None or gid is None or os.geteuid() != 0:
            return
        for bp in self.buildpacks:
            if _is_dir(bp.dir):
                _chown_tree(bp.dir, uid, gid, skip=bp.taken)


def _chown_tree(root: Path, uid: int, gid: int, *, skip: set[str] | frozenset[str] = frozenset()) -> None:
    """``lchown`` *root* and everything below it (never following a symlink) where the owner differs.

    A directory directly below *root* named in *skip* (a layer taken whole from the cache's extracted copies: a
    tree some earlier build made and owned) is left alone when its own owner is already right."""

    def own(path: str) -> bool:
        st = os.lstat(path)
        if (st.st_uid, st.st_gid) == (uid, gid):
            return False
        os.chown(path, uid, gid, follow_symlinks=False)
        return True

    top = str(root)
    own(top)
    for directory, dirs, files in os.walk(root, followlinks=False):
        kept = []
        for name in dirs:
            changed = own(os.path.join(directory, name))
            if changed or directory != top or name not in skip:
                kept.append(name)
        dirs[:] = kept
        for name in files:
            own(os.path.join(directory, name))
