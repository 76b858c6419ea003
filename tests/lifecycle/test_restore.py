"""The restore phase (docs/spec-notes.md §2.3, §7.3; §16 items 49-56) against real directory caches."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from cnbplatform.errors import CnbError, PhaseError
from cnbplatform.files.analyzed import Analyzed, BuildpackLayers, LayerEntry, LayersMetadata
from cnbplatform.files.group import GroupFile, GroupMember
from cnbplatform.files.labels import CacheMetadata
from cnbplatform.lifecycle.cache.directory import COMMITTED, INDEX, DirCache
from cnbplatform.lifecycle.common import RecordingReporter
from cnbplatform.lifecycle.restore import RestoreInputs, restore
from cnbplatform.oci.digest import hex_part
from cnbplatform.oci.layers.cache import LayerCache
from tests.lifecycle.test_cache import GID, UID, commit_layer, make_tree

BP = "example/bp"
ESC = "example_bp"
Flags = Mapping[str, bool]


def group(*ids: str, api: str = "0.12") -> GroupFile:
    return GroupFile(group=tuple(GroupMember(i, "1.0.0", api) for i in ids))


def entry(sha: str, *, launch: bool = False, build: bool = False, cache: bool = False, name: str = "") -> LayerEntry:
    return LayerEntry(sha=sha, metadata={"layer": name or "x"}, launch=launch, build=build, cache=cache)


def image_metadata(layers: Mapping[str, LayerEntry], *, bp: str = BP, store: dict[str, str] | None = None) -> Analyzed:
    buildpack = BuildpackLayers(key=bp, version="1.0.0", layers=dict(layers), store=store)
    return Analyzed(metadata=LayersMetadata(buildpacks=(buildpack,)))


def new_cache(tmp_path: Path) -> DirCache:
    return DirCache(tmp_path / "cache", LayerCache(tmp_path / "layer-cache"))


def fill(
    cache: DirCache,
    tmp_path: Path,
    layers: Mapping[tuple[str, str], tuple[Mapping[str, bytes], Flags]],
    sbom: Mapping[str, bytes] | None = None,
) -> dict[str, str]:
    """Export *layers* ((bp, name) -> (files, type flags)) and an optional cache SBOM tree into *cache*; the shas
    by layer name."""
    shas: dict[str, str] = {}
    by_bp: dict[str, dict[str, LayerEntry]] = {}
    with cache.begin() as writer:
        for (bp, name), (files, flags) in layers.items():
            escaped = bp.replace("/", "_")
            source = make_tree(tmp_path / "export" / escaped / name, files)
            sha = writer.add_dir(source, prefix=f"/layers/{escaped}/{name}", uid=UID, gid=GID)
            shas[name] = sha
            by_bp.setdefault(bp, {})[name] = entry(sha, name=name, **flags)
        sbom_sha = None
        if sbom is not None:
            source = make_tree(tmp_path / "export-sbom", sbom)
            sbom_sha = writer.add_dir(source, prefix="/layers/sbom/cache", uid=UID, gid=GID)
        buildpacks = tuple(BuildpackLayers(key=bp, version="1.0.0", layers=ls) for bp, ls in by_bp.items())
        writer.set_metadata(CacheMetadata(sbom=sbom_sha, buildpacks=buildpacks))
        writer.commit()
    return shas


def run(
    tmp_path: Path,
    analyzed: Analyzed,
    cache: DirCache | None,
    *,
    ids: tuple[str, ...] = (BP,),
    layers: str = "layers",
    **options: Any,
) -> tuple[Path, RecordingReporter]:
    reporter = RecordingReporter()
    layers_dir = tmp_path / layers
    layers_dir.mkdir(exist_ok=True)
    restore(
        RestoreInputs(group=group(*ids), analyzed=analyzed, cache=cache, layers_dir=layers_dir, **options), reporter
    )
    return layers_dir, reporter


def toml(path: Path) -> dict[str, object]:
    with open(path, "rb") as f:
        return tomllib.load(f)


CACHE_ONLY: Flags = {"cache": True}
LAUNCH_CACHE: Flags = {"cache": True, "launch": True}


def test_store_toml_is_restored_even_with_skip_layers(tmp_path: Path) -> None:
    """§16 item 49."""
    analyzed = image_metadata({"web": entry("sha256:" + "a" * 64, launch=True)}, store={"k": "v"})
    for skip in (True, False):
        layers, reporter = run(tmp_path, analyzed, None, layers=f"layers-{skip}", skip_layers=skip)
        assert toml(layers / ESC / "store.toml") == {"metadata": {"k": "v"}}
        assert (layers / ESC / "web.toml").exists() is not skip
        assert ("Skipping buildpack layer analysis" in reporter.infos) is skip


def test_restored_tomls_hold_only_metadata(tmp_path: Path) -> None:
    """§16 item 50: no [types] in any restored toml (from the image or from the cache)."""
    cache = new_cache(tmp_path)
    shas = fill(cache, tmp_path, {(BP, "deps"): ({"f": b"1"}, CACHE_ONLY)})
    analyzed = image_metadata({"web": entry("sha256:" + "a" * 64, launch=True, name="web")})
    layers, _ = run(tmp_path, analyzed, cache)
    assert toml(layers / ESC / "web.toml") == {"metadata": {"layer": "web"}}
    assert toml(layers / ESC / "deps.toml") == {"metadata": {"layer": "deps"}}
    assert shas["deps"]


def test_launch_only_layers_get_a_toml_and_no_directory(tmp_path: Path) -> None:
    """§16 item 51; launch=false layers of the image get nothing."""
    analyzed = image_metadata(
        {
            "web": entry("sha256:" + "a" * 64, launch=True),
            "tmp": entry("sha256:" + "b" * 64, build=True),
            "none": entry("sha256:" + "c" * 64),
        }
    )
    layers, _ = run(tmp_path, analyzed, new_cache(tmp_path))
    assert (layers / ESC / "web.toml").is_file()
    assert not (layers / ESC / "web").exists()
    assert sorted(p.name for p in (layers / ESC).iterdir()) == ["web.toml"]


def test_cache_layers_come_back_only_with_a_matching_sha(tmp_path: Path) -> None:
    """§16 item 52: toml and contents together when the image's sha equals the cache's, else neither."""
    cache = new_cache(tmp_path)
    shas = fill(
        cache,
        tmp_path,
        {(BP, "same"): ({"a": b"same"}, LAUNCH_CACHE), (BP, "stale"): ({"b": b"stale"}, LAUNCH_CACHE)},
    )
    analyzed = image_metadata(
        {
            "same": entry(shas["same"], launch=True, cache=True),
            "stale": entry("sha256:" + "c" * 64, launch=True, cache=True),
        }
    )
    layers, reporter = run(tmp_path, analyzed, cache)
    assert (layers / ESC / "same.toml").is_file()
    assert (layers / ESC / "same/a").read_bytes() == b"same"
    assert not (layers / ESC / "stale.toml").exists()
    assert not (layers / ESC / "stale").exists()
    assert "Removing 'example/bp:stale', wrong sha" in reporter.infos


def test_launch_cache_layer_missing_from_the_cache_is_not_restored(tmp_path: Path) -> None:
    analyzed = image_metadata({"deps": entry("sha256:" + "d" * 64, launch=True, cache=True)})
    layers, _ = run(tmp_path, analyzed, new_cache(tmp_path))
    assert not (layers / ESC / "deps.toml").exists()


def test_build_layers_without_cache_are_not_restored(tmp_path: Path) -> None:
    """§16 item 53: build=true, cache=false gets nothing, whether the image or the cache metadata names it."""
    cache = new_cache(tmp_path)
    fill(cache, tmp_path, {(BP, "cached-build"): ({"f": b"1"}, {"build": True, "cache": False})})
    analyzed = image_metadata({"tools": entry("sha256:" + "e" * 64, launch=True, build=True)})
    layers, _ = run(tmp_path, analyzed, cache)
    assert not (layers / ESC).exists()


def test_buildpacks_outside_the_group_are_never_restored(tmp_path: Path) -> None:
    """§16 item 54."""
    cache = new_cache(tmp_path)
    fill(cache, tmp_path, {("other/bp", "deps"): ({"f": b"1"}, CACHE_ONLY), (BP, "mine"): ({"g": b"2"}, CACHE_ONLY)})
    analyzed = image_metadata({"web": entry("sha256:" + "a" * 64, launch=True)}, bp="other/bp", store={"k": "v"})
    layers, _ = run(tmp_path, analyzed, cache)
    assert not (layers / "other_bp").exists()
    assert (layers / ESC / "mine/g").read_bytes() == b"2"


def test_a_cached_layer_with_the_wrong_diff_id_is_skipped_with_a_warning(tmp_path: Path) -> None:
    """§16 item 55: a cached tar whose diffID does not match is a warning; the layer is dropped, toml and all,
    and the rest of the cache is still restored."""
    cache = new_cache(tmp_path)
    shas = fill(cache, tmp_path, {(BP, "bad"): ({"f": b"bad"}, CACHE_ONLY), (BP, "good"): ({"g": b"good"}, CACHE_ONLY)})
    index_path = tmp_path / "cache" / COMMITTED / INDEX
    index = json.loads(index_path.read_text())
    index[shas["bad"]] = index[shas["good"]]  # the blob of another layer under the bad layer's diffID
    index_path.write_text(json.dumps(index))

    layers, reporter = run(tmp_path, Analyzed(), cache)
    assert any("Skipping restore for layer 'example/bp:bad'" in w and "digest mismatch" in w for w in reporter.warnings)
    assert not (layers / ESC / "bad.toml").exists() and not (layers / ESC / "bad").exists()
    assert (layers / ESC / "good/g").read_bytes() == b"good"
    assert not any(p.name.startswith(".cnb-extract") for p in layers.iterdir())


def test_second_build_sees_the_cached_contents_of_the_first(tmp_path: Path) -> None:
    """§16 item 56: export of build 1 into a directory cache, restore for build 2 (export-then-restore)."""
    build1 = make_tree(tmp_path / "build1" / ESC / "deps", {"node_modules/x/index.js": b"module.exports = 1\n"})
    cache = new_cache(tmp_path)
    commit_layer(cache, build1)
    layers, reporter = run(tmp_path, Analyzed(), new_cache(tmp_path), layers="build2")
    assert (layers / ESC / "deps/node_modules/x/index.js").read_bytes() == b"module.exports = 1\n"
    assert toml(layers / ESC / "deps.toml") == {"metadata": {"v": "1"}}
    assert reporter.warnings == []


@pytest.mark.parametrize(("api", "restored"), [("0.13", False), ("0.14", True)])
def test_cache_only_restore_of_launch_layers_missing_from_the_image(tmp_path: Path, api: str, restored: bool) -> None:
    """§14 Platform 0.14: a launch+cache layer that the image lacks is restored from the cache."""
    cache = new_cache(tmp_path)
    fill(cache, tmp_path, {(BP, "deps"): ({"f": b"1"}, LAUNCH_CACHE)})
    layers, _ = run(tmp_path, Analyzed(), cache, platform_api=api)
    assert (layers / ESC / "deps.toml").exists() is restored
    assert (layers / ESC / "deps/f").exists() is restored


def test_sboms_are_copied_next_to_restored_layers(tmp_path: Path) -> None:
    """§7.3 step 5: the cache SBOM layer and the analyzer's launch SBOMs land as <layer>.sbom.<ext>; <layers>/sbom
    is removed; layers that were not restored get no SBOM."""
    cache = new_cache(tmp_path)
    fill(
        cache,
        tmp_path,
        {(BP, "deps"): ({"f": b"1"}, CACHE_ONLY)},
        sbom={f"{ESC}/deps/sbom.spdx.json": b'{"spdx": 1}', f"{ESC}/gone/sbom.spdx.json": b"{}"},
    )
    layers = tmp_path / "layers"
    make_tree(layers / "sbom/launch", {f"{ESC}/web/sbom.cdx.json": b'{"cdx": 1}', f"{ESC}/sbom.cdx.json": b"{}"})
    analyzed = image_metadata({"web": entry("sha256:" + "a" * 64, launch=True)})
    run(tmp_path, analyzed, cache)
    assert (layers / ESC / "web.sbom.cdx.json").read_bytes() == b'{"cdx": 1}'
    assert (layers / ESC / "deps.sbom.spdx.json").read_bytes() == b'{"spdx": 1}'
    assert not (layers / ESC / "gone.sbom.spdx.json").exists()
    assert not (layers / "sbom").exists()
    assert sorted(p.name for p in (layers / ESC).iterdir()) == [
        "deps",
        "deps.sbom.spdx.json",
        "deps.toml",
        "web.sbom.cdx.json",
        "web.toml",
    ]


def test_no_cache_is_a_warning(tmp_path: Path) -> None:
    analyzed = image_metadata({"web": entry("sha256:" + "a" * 64, launch=True)})
    layers, reporter = run(tmp_path, analyzed, None)
    assert any("No cached data will be used" in w for w in reporter.warnings)
    assert (layers / ESC / "web.toml").is_file()


def test_restore_by_rename_needs_no_blob(tmp_path: Path) -> None:
    """The fast path: an adopted tree is moved into place (same inode), no extraction (the blobs are gone)."""
    build1 = make_tree(tmp_path / "build1" / ESC / "deps", {"big": b"z" * 100_000})
    inode = (build1 / "big").stat().st_ino
    cache = new_cache(tmp_path)
    diff_id = commit_layer(cache, build1, adopt=True)
    for blob in (tmp_path / "cache" / COMMITTED / "blobs").iterdir():
        blob.unlink()
    layers, reporter = run(tmp_path, Analyzed(), new_cache(tmp_path), layers="build2")
    assert (layers / ESC / "deps/big").stat().st_ino == inode
    assert (layers / ESC / "deps/big").read_bytes() == b"z" * 100_000
    assert reporter.warnings == []
    assert not (tmp_path / "cache/trees" / hex_part(diff_id)).exists()


def test_changed_tree_falls_back_to_the_blob(tmp_path: Path) -> None:
    build1 = make_tree(tmp_path / "build1" / ESC / "deps", {"f": b"original"})
    cache = new_cache(tmp_path)
    diff_id = commit_layer(cache, build1, adopt=True)
    tree = tmp_path / "cache/trees" / hex_part(diff_id)
    (tree / "f").write_bytes(b"tampered")  # same size: only the timestamps tell
    # The open descriptor keeps the discarded file's inode allocated, so the extracted file cannot be given the
    # same inode number (the filesystem would otherwise be free to reuse it once the discarded tree is deleted).
    with (tree / "f").open("rb") as tampered:
        inode = os.fstat(tampered.fileno()).st_ino
        layers, reporter = run(tmp_path, Analyzed(), new_cache(tmp_path), layers="build2")
        assert (layers / ESC / "deps/f").read_bytes() == b"original"
        assert (layers / ESC / "deps/f").stat().st_ino != inode
    assert reporter.warnings == []


def test_restored_files_belong_to_the_build_user(tmp_path: Path) -> None:
    cache = new_cache(tmp_path)
    fill(cache, tmp_path, {(BP, "deps"): ({"d/f": b"1"}, CACHE_ONLY)})
    analyzed = image_metadata({"web": entry("sha256:" + "a" * 64, launch=True)}, store={"k": "v"})
    layers, _ = run(tmp_path, analyzed, cache, uid=4321, gid=4322)
    expected = (4321, 4322) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    for path in (layers / ESC, layers / ESC / "web.toml", layers / ESC / "store.toml", layers / ESC / "deps/d/f"):
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == expected, path


@pytest.mark.parametrize("root_owner", [(4321, 4322), (4001, 4002)])
def test_a_tree_taken_whole_is_walked_for_ownership_only_when_its_root_has_another_owner(
    tmp_path: Path, root_owner: tuple[int, int]
) -> None:
    """An extracted copy some build made and owned is moved back as it is; its root's owner tells whether the
    build it comes from ran as the same user (then nothing below it is looked at)."""
    build1 = make_tree(tmp_path / "build1" / ESC / "deps", {"d/f": b"1"})
    if os.geteuid() == 0:
        os.chown(build1, *root_owner)
        os.chown(build1 / "d" / "f", 7, 7)  # a marker: left as it is when the tree is not walked
    cache = new_cache(tmp_path)
    commit_layer(cache, build1, adopt=True)
    layers, _ = run(tmp_path, Analyzed(), new_cache(tmp_path), layers="build2", uid=4321, gid=4322)
    inner = (layers / ESC / "deps" / "d" / "f").lstat()
    if os.geteuid() != 0:
        assert (inner.st_uid, inner.st_gid) == (os.getuid(), os.getgid())
    elif root_owner == (4321, 4322):
        assert (inner.st_uid, inner.st_gid) == (7, 7)
    else:
        assert (inner.st_uid, inner.st_gid) == (4321, 4322)
    root = (layers / ESC / "deps").lstat()
    assert (root.st_uid, root.st_gid) == ((4321, 4322) if os.geteuid() == 0 else (os.getuid(), os.getgid()))


def test_layer_names_cannot_escape(tmp_path: Path) -> None:
    analyzed = image_metadata({"../../evil": entry("sha256:" + "a" * 64, launch=True)})
    layers, reporter = run(tmp_path, analyzed, None)
    assert not (tmp_path / "evil.toml").exists()
    assert any("not a valid layer name" in w for w in reporter.warnings)
    assert layers.is_dir()


def test_failures_exit_42_and_unsupported_buildpack_api_exits_12(tmp_path: Path) -> None:
    (tmp_path / "layers").mkdir()
    (tmp_path / "layers" / ESC).write_text("not a directory")
    analyzed = image_metadata({"web": entry("sha256:" + "a" * 64, launch=True)}, store={"k": "v"})
    with pytest.raises(PhaseError) as info:
        run(tmp_path, analyzed, None)
    assert info.value.exit_code == 42 and "store.toml" in str(info.value)
    with pytest.raises(CnbError) as api_info:
        restore(
            RestoreInputs(group=group(BP, api="0.1"), analyzed=analyzed, cache=None, layers_dir=tmp_path / "x"),
            RecordingReporter(),
        )
    assert api_info.value.exit_code == 12
