"""project.toml (docs/spec-notes.md §11): schema 0.2, legacy 0.1, and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnbplatform.files.common import SpecFileError
from cnbplatform.files.project_toml import ProjectDescriptor


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "project.toml"
    path.write_text(text)
    return path


def test_schema_02(tmp_path: Path) -> None:
    project = ProjectDescriptor.load(
        write(
            tmp_path,
            """
[_]
schema-version = "0.2"
id = "com.example.app"
name = "App"
[io.buildpacks]
builder = "cnb/bookworm"
exclude = ["tests/", "*.log"]
[[io.buildpacks.group]]
id = "cnb/python"
[[io.buildpacks.group]]
id = "example/inline"
[io.buildpacks.group.script]
api = "0.12"
inline = "echo hi"
[[io.buildpacks.pre.group]]
uri = "./bp"
[[io.buildpacks.build.env]]
name = "JAVA_OPTS"
value = "-Xmx1g"
[[io.buildpacks.env.build]]
name = "LEGACY"
value = "yes"
""",
        )
    )
    assert project.builder == "cnb/bookworm"
    assert project.exclude == ("tests/", "*.log") and project.include == ()
    assert [g.id for g in project.group] == ["cnb/python", "example/inline"]
    assert project.group[1].script is not None and project.group[1].script.inline == "echo hi"
    assert project.pre[0].uri == "./bp"
    assert [(e.name, e.value) for e in project.env] == [("JAVA_OPTS", "-Xmx1g"), ("LEGACY", "yes")]


def test_legacy_schema_01(tmp_path: Path) -> None:
    project = ProjectDescriptor.load(
        write(tmp_path, '[project]\nid = "x"\n[build]\nexclude = ["a"]\n[[build.env]]\nname = "K"\nvalue = "v"\n')
    )
    assert project.schema_version == "0.1" and project.exclude == ("a",) and project.env[0].name == "K"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[_]\nschema-version = "0.3"\n', "unsupported"),
        ('[_]\nschema-version = "0.2"\n[io.buildpacks]\ninclude = ["a"]\nexclude = ["b"]\n', "mutually exclusive"),
        ('[_]\nschema-version = "0.2"\n[[io.buildpacks.group]]\nid = "a"\nversion = "1"\nuri = "x"\n', "only one of"),
        ('[_]\nschema-version = "0.2"\n[[io.buildpacks.group]]\nversion = "1"\n', "id or a uri"),
        ("[_\n", "not valid TOML"),
    ],
)
def test_refusals_name_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SpecFileError) as info:
        ProjectDescriptor.load(path)
    assert needle in info.value.message and str(path) in info.value.message
