"""YAML streams in and out: ``-f FILE|DIR|-`` as kbld reads them, and one ``---``-separated stream out."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cnbplatform.errors import NotFoundError, UsageError

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BASE_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Dumper(_BASE_DUMPER):  # type: ignore[misc]
    """Multi-line strings as literal blocks (``|``), as kbld writes its annotations."""


def _str(dumper: Any, value: str) -> Any:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)
_DUMPER: Any = _Dumper
SUFFIXES = (".yml", ".yaml")


@dataclass
class Document:
    """One YAML document and where it came from (``-`` for standard input)."""

    source: str
    index: int
    data: Any

    @property
    def description(self) -> str:
        kind = self.data.get("kind") if isinstance(self.data, dict) else None
        name = (self.data.get("metadata") or {}).get("name") if isinstance(self.data, dict) else None
        what = f"{kind}/{name}" if kind and isinstance(name, str) else f"document {self.index + 1}"
        return f"{what} in {self.source}"


def input_files(paths: Sequence[str]) -> list[tuple[str, str]]:
    """(name, text) for each ``-f``: a file, every ``*.yml``/``*.yaml`` under a directory (sorted), or stdin."""
    if not paths:
        raise UsageError("no input: give -f FILE, -f DIR or -f -")
    out: list[tuple[str, str]] = []
    for given in paths:
        if given == "-":
            out.append(("-", sys.stdin.read()))
            continue
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
            out += [(str(p), _read(p)) for p in found]
        elif path.is_file():
            out.append((str(path), _read(path)))
        else:
            raise NotFoundError(f"read {given}: no such file or directory")
    return out


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"read {path}: {exc}") from exc


def parse_documents(files: Iterable[tuple[str, str]]) -> list[Document]:
    """Every non-empty document of every file, in input order; malformed YAML is one line naming the place."""
    docs: list[Document] = []
    for name, text in files:
        try:
            loaded = list(yaml.load_all(text, Loader=_LOADER))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UsageError(f"read {name}:{where}: malformed YAML: {problem}") from exc
        docs += [Document(name, i, data) for i, data in enumerate(loaded) if data is not None]
    return docs


def dump(data: Any) -> str:
    """One document as block YAML, keys in their order."""
    text: str = yaml.dump(
        data, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16
    )
    return text


def dump_sorted(data: Any) -> str:
    """Keys sorted, as kbld's annotations and locks are written."""
    text: str = yaml.dump(
        data, Dumper=_DUMPER, sort_keys=True, default_flow_style=False, allow_unicode=True, width=1 << 16
    )
    return text


def load_one(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        raise UsageError(f"read {where}: malformed YAML") from exc


def dump_stream(docs: Iterable[Any]) -> str:
    return "".join("---\n" + dump(d) for d in docs)


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    """Write *text* to *path* through a temporary file in the same directory (nothing partial is ever seen)."""
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    except OSError as exc:
        raise UsageError(f"write {path}: {exc}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UsageError(f"write {path}: {exc}") from exc
