"""Env var directories (docs/spec-notes.md §3.8, §3.9 step 3; §16 items 15, 16, 27)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pytest

from cnbplatform.buildpack.envdir import EnvOp, apply_env_ops, platform_env_ops, read_env_dir
from cnbplatform.files.common import SpecFileError


def write(directory: Path, files: dict[str, bytes | str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in files.items():
        (directory / name).write_bytes(value.encode() if isinstance(value, str) else value)
    return directory


def applied(
    directory: Path, env: dict[str, str] | None = None, no_suffix: Literal["override", "default"] = "override"
) -> dict[str, str]:
    out = dict(env or {})
    apply_env_ops(out, read_env_dir(directory, no_suffix=no_suffix))
    return out


def test_no_suffix_overrides_by_default(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"FOO": "new"})
    assert applied(d, {"FOO": "old"}) == {"FOO": "new"}


def test_no_suffix_can_mean_default(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"FOO": "new", "BAR": "b"})
    assert applied(d, {"FOO": "old"}, no_suffix="default") == {"FOO": "old", "BAR": "b"}


def test_override_suffix(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"FOO.override": "new"})
    assert read_env_dir(d) == [EnvOp("FOO", "override", b"new")]
    assert applied(d, {"FOO": "old"})["FOO"] == "new"


@pytest.mark.parametrize(
    ("existing", "expected"),
    [({}, "dflt"), ({"FOO": ""}, "dflt"), ({"FOO": "set"}, "set")],
)
def test_default_only_when_unset_or_empty(tmp_path: Path, existing: dict[str, str], expected: str) -> None:
    d = write(tmp_path / "env", {"FOO.default": "dflt"})
    assert applied(d, existing)["FOO"] == expected


def test_prepend_and_append_with_delim(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"A.prepend": "new", "A.delim": ",", "B.append": "new", "B.delim": "::"})
    assert applied(d, {"A": "old", "B": "old"}) == {"A": "new,old", "B": "old::new"}
    ops = {op.name: op for op in read_env_dir(d)}
    assert ops["A"] == EnvOp("A", "prepend", b"new", b",")
    assert ops["B"] == EnvOp("B", "append", b"new", b"::")
    assert len(read_env_dir(d)) == 2  # the .delim files are not operations themselves


def test_prepend_and_append_without_delim_concatenate(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"A.prepend": "new", "B.append": "new"})
    assert applied(d, {"A": "old", "B": "old"}) == {"A": "newold", "B": "oldnew"}
    assert all(op.delim is None for op in read_env_dir(d))


@pytest.mark.parametrize("existing", [{}, {"A": "", "B": ""}])
def test_no_delimiter_inserted_when_existing_is_empty(tmp_path: Path, existing: dict[str, str]) -> None:
    d = write(tmp_path / "env", {"A.prepend": "new", "A.delim": ":", "B.append": "new", "B.delim": ":"})
    assert applied(d, existing) == {"A": "new", "B": "new"}


def test_delim_applies_within_the_same_dir_only(tmp_path: Path) -> None:
    write(tmp_path / "one", {"A.delim": ","})
    two = write(tmp_path / "two", {"A.append": "x"})
    assert applied(two, {"A": "old"})["A"] == "oldx"


def test_empty_suffix_prepends_with_path_separator(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"PATH.": "/opt/bin"})
    assert read_env_dir(d) == [EnvOp("PATH", "prepend", b"/opt/bin", b":")]
    assert applied(d, {"PATH": "/usr/bin"})["PATH"] == "/opt/bin:/usr/bin"
    assert applied(d, {})["PATH"] == "/opt/bin"
    write(d, {"PATH.delim": ";"})
    assert applied(d, {"PATH": "/usr/bin"})["PATH"] == "/opt/bin;/usr/bin"


def test_unknown_suffix_is_ignored(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"FOO.bogus": "x", "FOO.override.extra": "y", "BAR.txt": "z"})
    assert read_env_dir(d) == []
    assert applied(d, {"FOO": "keep"}) == {"FOO": "keep"}


def test_contents_are_verbatim_with_trailing_newline(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"FOO": "  spaced value\n", "BIN": b"\xff\x00raw"})
    ops = {op.name: op for op in read_env_dir(d)}
    assert ops["FOO"].value == b"  spaced value\n"
    assert ops["BIN"].value == b"\xff\x00raw"
    env = applied(d)
    assert env["FOO"] == "  spaced value\n"
    assert env["BIN"].encode("utf-8", "surrogateescape") == b"\xff\x00raw"


def test_subdirectories_and_symlinks_to_dirs_are_skipped(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"FOO": "x"})
    write(d / "web", {"BAR": "per-process"})
    (d / "LINKDIR").symlink_to(d / "web")
    (tmp_path / "target").write_text("via link")
    (d / "LINKED.override").symlink_to(tmp_path / "target")
    assert applied(d) == {"FOO": "x", "LINKED": "via link"}


def test_dangling_symlink_is_an_error_naming_the_file(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {})
    (d / "FOO").symlink_to(tmp_path / "missing")
    with pytest.raises(SpecFileError, match=r"env/FOO"):
        read_env_dir(d)


def test_fifo_is_skipped(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"FOO": "x"})
    os.mkfifo(d / "PIPE")
    assert [op.name for op in read_env_dir(d)] == ["FOO"]


def test_missing_dir_has_no_ops(tmp_path: Path) -> None:
    assert read_env_dir(tmp_path / "nope") == []
    assert platform_env_ops(tmp_path / "nope") == []


def test_files_apply_in_name_order(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"X.override": "second", "X.default": "first", "X.append": "-third"})
    assert [op.action for op in read_env_dir(d)] == ["append", "default", "override"]
    # append (on empty) → "-third"; default keeps it; override wins
    assert applied(d)["X"] == "second"


def test_unusable_names_are_skipped(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {".override": "x", ".hidden": "y", "A=B": "z", "OK": "1"})
    assert [op.name for op in read_env_dir(d)] == ["OK"]


def test_platform_env_path_like_vars_prepend(tmp_path: Path) -> None:
    d = write(
        tmp_path / "env",
        {"PATH": "/user/bin", "LD_LIBRARY_PATH": "/user/lib", "PKG_CONFIG_PATH": "/pc", "FOO": "user", "CPATH": "/i"},
    )
    env = {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "", "FOO": "lifecycle"}
    apply_env_ops(env, platform_env_ops(d))
    assert env == {
        "PATH": "/user/bin:/usr/bin",
        "LD_LIBRARY_PATH": "/user/lib",
        "PKG_CONFIG_PATH": "/pc",
        "CPATH": "/i",
        "FOO": "user",
    }


def test_platform_env_file_name_is_the_whole_variable_name(tmp_path: Path) -> None:
    d = write(tmp_path / "env", {"FOO.append": "x"})
    assert platform_env_ops(d) == [EnvOp("FOO.append", "override", b"x")]
