"""YAML streams in and out: ``-f FILE|DIR|-`` as kbld reads them, and one ``---``-separated stream out."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
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


def iter_documents(files: Iterable[tuple[str, str]]) -> Iterator[Document]:
    """Every non-empty document of every file, in input order, as it is parsed; malformed YAML is one line
    naming the place."""
    for name, text in files:
        index = 0
        try:
            for data in yaml.load_all(text, Loader=_LOADER):
                if data is not None:
                    yield Document(name, index, data)
                index += 1
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UsageError(f"read {name}:{where}: malformed YAML: {problem}") from exc


def parse_documents(files: Iterable[tuple[str, str]]) -> list[Document]:
    return list(iter_documents(files))


def dump(data: Any) -> str:
    """One document as block YAML, keys in their order."""
    text: str = yaml.dump(
        data, Dumper=_DUMPER, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16
    )
    return text


_PLAIN = re.compile(r"[A-Za-z_/][A-Za-z0-9_./@+-]*(?::[A-Za-z0-9_./@+-]+)*|[0-9][A-Za-z0-9_.:@+-]*/[A-Za-z0-9_./:@+-]*")
_SPECIAL = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"})


def _scalar(value: Any) -> str | None:
    """*value* as a YAML scalar that reads back as the same value, or None when it is not a plain scalar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN.fullmatch(value) and value.lower() not in _SPECIAL:
            return value
        if value.isprintable():  # double-quoted, as kbld (go-yaml) writes them; JSON's escapes are YAML's
            return json.dumps(value, ensure_ascii=False)
    return None  # PyYAML writes it


def _literal(value: Any) -> list[str] | None:
    """The lines of *value* for a ``|`` block, when one reads back exactly (kbld's annotations are such text)."""
    if (
        not isinstance(value, str)
        or not value.endswith("\n")
        or value.endswith("\n\n")
        or value.startswith((" ", "\n"))
    ):
        return None
    lines = value[:-1].split("\n")
    if any(not line.isprintable() or line != line.rstrip() for line in lines):
        return None
    return lines


def _block(value: Any, indent: str, out: list[str]) -> bool:
    """Append *value* as block YAML lines; False when it holds something this writer does not do."""
    if isinstance(value, dict):
        for key in sorted(value):
            if not isinstance(key, str) or _scalar(key) is None:
                return False
            item = value[key]
            text = _scalar(item)
            literal = _literal(item)
            if literal is not None:
                out.append(f"{indent}{_scalar(key)}: |")
                out += [f"{indent}  {line}" if line else "" for line in literal]
            elif text is not None:
                out.append(f"{indent}{_scalar(key)}: {text}")
            elif isinstance(item, (dict, list)) and item:
                out.append(f"{indent}{_scalar(key)}:")
                if not _block(item, indent if isinstance(item, list) else indent + "  ", out):
                    return False
            else:
                return False
        return True
    if isinstance(value, list):
        for item in value:
            text = _scalar(item)
            if text is not None:
                out.append(f"{indent}- {text}")
                continue
            if not isinstance(item, (dict, list)) or not item:
                return False
            inner: list[str] = []
            if not _block(item, indent + "  ", inner):
                return False
            out.append(f"{indent}- {inner[0][len(indent) + 2 :]}")
            out += inner[1:]
        return True
    return False


def dump_sorted(data: Any) -> str:
    """Keys sorted, as kbld's annotations and locks are written (plain data is written directly: a third of the
    time of a large resolve went to PyYAML's representer for these)."""
    lines: list[str] = []
    if isinstance(data, (dict, list)) and data and _block(data, "", lines):
        return "\n".join(lines) + "\n"
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
