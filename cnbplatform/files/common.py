"""What every typed spec file shares: TOML reading/writing and errors that name the file, the key and what was
expected (issue: "Bad files fail with the path, the key and what was expected").

Readers get values through :class:`Table`, which records the dotted key path, so a wrong type anywhere says
``<path>: key 'processes[1].command': expected an array of strings, got string``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cnbplatform.errors import CnbError

# tomllib and tomli_w load on first use: commands that read labels but no TOML file (``cnb rebase``) skip them.


class SpecFileError(CnbError):
    """A spec file that is missing, not TOML, or has a key of the wrong type or value."""

    def __init__(self, path: str | Path, problem: str, *, key: str | None = None, exit_code: int | None = None):
        where = f"{path}: " if str(path) else ""
        what = f"key {key!r}: " if key else ""
        super().__init__(f"{where}{what}{problem}", exit_code=exit_code)
        self.path = str(path)
        self.key = key


def _type_name(value: Any) -> str:
    return {
        str: "string",
        bool: "boolean",
        int: "integer",
        float: "float",
        list: "array",
        dict: "table",
    }.get(type(value), type(value).__name__)


class Table:
    """A TOML table plus where it came from, with typed getters that raise SpecFileError."""

    def __init__(self, data: Mapping[str, Any], path: str | Path = "", prefix: str = "") -> None:
        self.data = data
        self.path = path
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, problem: str) -> SpecFileError:
        return SpecFileError(self.path, problem, key=self._key(key))

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, kind: type | tuple[type, ...], expected: str, required: bool) -> Any:
        if key not in self.data:
            if required:
                raise self.error(key, f"required, expected {expected}")
            return None
        value = self.data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(key, f"expected {expected}, got {_type_name(value)}")
        return value

    def get_str(self, key: str, default: str = "", *, required: bool = False) -> str:
        value = self._get(key, str, "a string", required)
        return default if value is None else value

    def opt_str(self, key: str) -> str | None:
        value: str | None = self._get(key, str, "a string", False)
        return value

    def get_bool(self, key: str, default: bool = False) -> bool:
        value = self._get(key, bool, "a boolean", False)
        return default if value is None else bool(value)

    def get_int(self, key: str, default: int = 0) -> int:
        value = self._get(key, int, "an integer", False)
        return default if value is None else int(value)

    def str_list(self, key: str, *, required: bool = False) -> list[str]:
        value = self._get(key, list, "an array of strings", required)
        if value is None:
            return []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise self.error(f"{key}[{i}]", f"expected a string, got {_type_name(item)}")
        return list(value)

    def table(self, key: str, *, required: bool = False) -> Table:
        value = self._get(key, dict, "a table", required)
        return Table(value or {}, self.path, self._key(key))

    def raw_table(self, key: str) -> dict[str, Any]:
        """A free-form table (e.g. ``[metadata]``), returned as a plain dict."""
        value = self._get(key, dict, "a table", False)
        return dict(value or {})

    def tables(self, key: str, *, required: bool = False) -> list[Table]:
        """An array of tables (``[[key]]``)."""
        value = self._get(key, list, "an array of tables", required)
        out = []
        for i, item in enumerate(value or []):
            if not isinstance(item, dict):
                raise self.error(f"{key}[{i}]", f"expected a table, got {_type_name(item)}")
            out.append(Table(item, self.path, f"{self._key(key)}[{i}]"))
        return out

    def reject(self, *keys: str, reason: str) -> None:
        for key in keys:
            if key in self.data:
                raise self.error(key, reason)

    def only(self, *allowed: str) -> None:
        """Refuse keys outside *allowed* (for files whose schema is closed, like builder.toml)."""
        for key in self.data:
            if key not in allowed:
                raise self.error(key, f"unknown key (expected one of: {', '.join(allowed)})")


#: How deep tables and arrays may nest in a spec file or label. Far beyond any real file, and low enough that
#: every recursive reader and writer after the parser (TOML and JSON dumps, label conversions) stays well inside
#: Python's recursion limit.
MAX_NESTING = 100


def check_nesting(value: Any, path: str | Path) -> None:
    """Refuse tables and arrays nested deeper than :data:`MAX_NESTING` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            raise SpecFileError(path, f"tables and arrays are nested more than {MAX_NESTING} deep")
        if isinstance(item, Mapping):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def parse_toml(text: str, path: str | Path = "") -> Table:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecFileError(path or "<toml>", f"not valid TOML: {exc}") from exc
    except RecursionError:  # the parser recurses once per nested array or inline table
        raise SpecFileError(path or "<toml>", f"tables and arrays are nested more than {MAX_NESTING} deep") from None
    check_nesting(data, path or "<toml>")
    return Table(data, path)


def read_toml(path: Path, *, missing_ok: bool = False) -> Table:
    """Read a TOML file; a missing file is an error unless *missing_ok* (then an empty table)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return Table({}, path)
        raise SpecFileError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecFileError(path, f"cannot read: {exc}") from exc
    return parse_toml(text, path)


def dumps_toml(data: Mapping[str, Any]) -> str:
    import tomli_w

    return tomli_w.dumps(_drop_none(data))


def write_toml(path: Path, data: Mapping[str, Any]) -> None:
    """Write *data* as TOML atomically (temp file + rename); ``None`` values are left out."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.urandom(16).hex()}.tmp")
    tmp.write_text(dumps_toml(data), encoding="utf-8")
    os.replace(tmp, path)


def _drop_none(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value if v is not None]
    return value
