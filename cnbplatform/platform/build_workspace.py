"""The directories one ``cnb build`` works in: the app copy, the layers, the platform env, the buildpacks and order.

Everything lives in the build's own ``$CNB_HOME/work/<random>/`` (see :mod:`cnbplatform.platform.build_locks`; the
layer cache's fingerprints leave host paths out, so a fresh dir per build costs no cache hit). The app is copied in
fresh each build, after project.toml's include /
exclude patterns are applied (docs/spec-notes.md §11: excluded files are removed before the build, not just from the
image).
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cnbplatform.buildpack.lookup import find_buildpack
from cnbplatform.errors import NotFoundError, UsageError
from cnbplatform.files.buildpack_toml import BuildpackDescriptor, escape_id
from cnbplatform.files.common import write_toml
from cnbplatform.files.untrusted import check_module_id, check_version, join

if TYPE_CHECKING:
    import pathspec

    from cnbplatform.files.project_toml import GroupRef, ProjectDescriptor

ENV_NAME_FORBIDDEN = ("=", "/", "\0")


@dataclass(frozen=True)
class Workspace:
    root: Path
    app: Path
    layers: Path
    platform: Path
    buildpacks: Path
    order: Path

    @classmethod
    def in_dir(cls, root: Path) -> Workspace:
        return cls(root, root / "app", root / "layers", root / "platform", root / "buildpacks", root / "order.toml")

    def reset(self) -> None:
        """Fresh app, layers, platform and buildpacks dirs (the cache keeps what must survive)."""
        for path in (self.app, self.layers, self.platform, self.buildpacks):
            if path.exists() or path.is_symlink():
                shutil.rmtree(path)
            path.mkdir(parents=True)
        (self.platform / "env").mkdir()


def copy_app(source: Path, dest: Path, project: ProjectDescriptor | None) -> int:
    """Copy the app into *dest*, honouring include/exclude; returns how many files were copied."""
    if not source.is_dir():
        raise NotFoundError(f"app directory {source} does not exist")
    include = _spec(project.include) if project and project.include else None
    exclude = _spec(project.exclude) if project and project.exclude else None
    copied = 0
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = os.path.relpath(dirpath, source)
        rel_dir = "" if rel_dir == "." else rel_dir
        kept_dirs = []
        for name in sorted(dirnames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if exclude is not None and exclude.match_file(rel + "/"):
                continue
            kept_dirs.append(name)
            full = Path(dirpath) / name
            if full.is_symlink():
                _copy_entry(full, dest / rel)
        dirnames[:] = [d for d in kept_dirs if not (Path(dirpath) / d).is_symlink()]
        for name in sorted(filenames):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if exclude is not None and exclude.match_file(rel):
                continue
            if include is not None and not include.match_file(rel):
                continue
            copied += _copy_entry(Path(dirpath) / name, dest / rel)
        if include is None:
            for name in kept_dirs:
                (dest / rel_dir / name).mkdir(parents=True, exist_ok=True)
    return copied


def _spec(patterns: Sequence[str]) -> pathspec.PathSpec[Any]:
    """gitignore-style patterns (project.toml's include / exclude); pathspec loads only when a project has them."""
    import pathspec

    return pathspec.PathSpec.from_lines("gitignore", patterns)


def _copy_entry(src: Path, dst: Path) -> int:
    """Copy a regular file or a symlink (as a symlink); 1 when copied. FIFOs, sockets and devices (a ``.git``
    fsmonitor socket, say) are not app content: they are left out."""
    mode = src.lstat().st_mode
    if not (stat.S_ISLNK(mode) or stat.S_ISREG(mode)):
        return 0
    dst.parent.mkdir(parents=True, exist_ok=True)
    if stat.S_ISLNK(mode):
        os.symlink(os.readlink(src), dst)
    else:
        shutil.copy2(src, dst, follow_symlinks=False)
    return 1


def write_platform_env(platform: Path, env: Mapping[str, str]) -> None:
    """``<platform>/env/NAME`` holds the value verbatim (docs/spec-notes.md §3.9 step 3)."""
    for name, value in env.items():
        if not name or any(c in name for c in ENV_NAME_FORBIDDEN):
            raise UsageError(f"invalid environment variable name {name!r}")
        (platform / "env" / name).write_text(value)


def parse_env(items: Iterable[str], files: Iterable[Path], host_env: Mapping[str, str]) -> dict[str, str]:
    """``--env K=V`` / ``--env K`` (value from this machine) and ``--env-file`` lines, pack's rules; later wins."""
    env: dict[str, str] = {}
    for path in files:
        try:
            lines = path.read_text().splitlines()
        except OSError as exc:
            raise UsageError(f"--env-file {path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise UsageError(f"--env-file {path}: not UTF-8 text (byte {exc.start})") from exc
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#"):
                _set(env, line, host_env)
    for item in items:
        _set(env, item, host_env)
    return env


def _set(env: dict[str, str], item: str, host_env: Mapping[str, str]) -> None:
    key, sep, value = item.partition("=")
    key = key.strip()
    if not key:
        raise UsageError(f"--env {item!r}: expected KEY=VALUE or KEY")
    if sep:
        env[key] = value
    elif key in host_env:
        env[key] = host_env[key]


def link_tree(src: Path, dst: Path) -> None:
    """Copy a read-only tree cheaply (hard links where possible)."""

    def link(a: str, b: str) -> object:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)
        return b

    shutil.copytree(src, dst, symlinks=True, copy_function=link, dirs_exist_ok=True)


def add_buildpack_dir(buildpacks: Path, source: Path) -> BuildpackDescriptor:
    """Put the buildpack in *source* (a dir with buildpack.toml) at ``<buildpacks>/<escaped id>/<version>``."""
    descriptor = BuildpackDescriptor.load(source)  # its id and version are checked path segments
    target = join(buildpacks, escape_id(descriptor.id), descriptor.version, file=source / "buildpack.toml")
    if target.exists() or target.is_symlink():
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    return descriptor


def write_inline_buildpack(buildpacks: Path, ref: GroupRef) -> tuple[str, str]:
    """An inline (project.toml script) buildpack: bin/detect passes, bin/build is ``#!<shell>\\n<inline>``."""
    assert ref.script is not None
    version = ref.version or "0.0.0"
    target = join(buildpacks, escape_id(check_module_id(ref.id)), check_version(version))
    (target / "bin").mkdir(parents=True, exist_ok=True)
    write_toml(target / "buildpack.toml", {"api": ref.script.api, "buildpack": {"id": ref.id, "version": version}})
    for name, body in (("detect", "#!/bin/sh\nexit 0\n"), ("build", f"#!{ref.script.shell}\n{ref.script.inline}\n")):
        path = target / "bin" / name
        path.write_text(body)
        path.chmod(0o755)
    return ref.id, version


def resolve_in(buildpacks: Path, bp_id: str, version: str) -> tuple[str, str]:
    try:
        found = find_buildpack(buildpacks, bp_id, version)
    except (NotFoundError, UsageError) as exc:
        raise NotFoundError(f"buildpack {bp_id}{'@' + version if version else ''} is not in the builder") from exc
    return found.id, found.version


def write_order(path: Path, groups: Sequence[Sequence[tuple[str, str, bool]]]) -> None:
    """order.toml for *groups* of (id, version, optional); written by a TOML writer, as versions come from
    buildpack.toml files and may hold quotes."""
    order = [
        {"group": [{"id": i, "version": v, **({"optional": True} if o else {})} for i, v, o in group]}
        for group in groups
    ]
    write_toml(path, {"order": order})
