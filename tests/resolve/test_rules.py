"""kbld's search rules, config kinds and pack options, checked without a registry (pure functions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cnbplatform.errors import UsageError
from cnbplatform.imagebuilders.buildpacks import request_from_options
from cnbplatform.platform.build import BuildRequest
from cnbplatform.resolve.config import DEFAULT_RULE, Config, parse_config
from cnbplatform.resolve.documents import Document
from cnbplatform.resolve.search import find_references, replace_references


def config(text: str) -> Config:
    return parse_config(Document("config.yml", 0, yaml.safe_load(text)), Path("/src"))


def test_key_paths_indexes_value_matchers_and_strategies() -> None:
    cfg = config("""
apiVersion: kbld.k14s.io/v1alpha1
kind: Config
searchRules:
- keyMatcher:
    path: [spec, jobs, {allIndexes: true}, runner]
- keyMatcher:
    path: [spec, extra, {index: 1}]
- valueMatcher:
    imageRepo: gcr.io/team/tool
- keyMatcher:
    name: values.yaml
  updateStrategy:
    yaml:
      searchRules:
      - keyMatcher:
          name: repository
- keyMatcher:
    name: image
  valueMatcher:
    image: keep/me:1
  updateStrategy:
    none: {}
""")
    doc: dict[str, Any] = {
        "spec": {
            "jobs": [{"runner": "a/one:1"}, {"runner": "a/two:2", "image": "b/three:3"}],
            "extra": ["not-this", "c/four:4", "not-that"],
            "anywhere": {"deep": ["gcr.io/team/tool:v9", "gcr.io/other/tool:v9"]},
            "values.yaml": "repository: d/five:5\ntag: x\n",
            "sidecar": {"image": "keep/me:1"},
        }
    }
    rules = [*cfg.rules, DEFAULT_RULE]
    assert find_references(doc, rules, "doc") == [
        "a/one:1",
        "a/two:2",
        "b/three:3",
        "c/four:4",
        "gcr.io/team/tool:v9",
        "d/five:5",
    ]
    out = replace_references(doc, rules, lambda v: "pinned/" + v.split("/")[-1], "doc")
    assert out["spec"]["jobs"][1] == {"runner": "pinned/two:2", "image": "pinned/three:3"}
    assert out["spec"]["extra"] == ["not-this", "pinned/four:4", "not-that"]
    assert out["spec"]["anywhere"]["deep"] == ["pinned/tool:v9", "gcr.io/other/tool:v9"]
    assert yaml.safe_load(out["spec"]["values.yaml"]) == {"repository": "pinned/five:5", "tag": "x"}
    assert out["spec"]["sidecar"] == {"image": "keep/me:1"}  # updateStrategy none wins over the image key


def test_older_kinds_and_keys() -> None:
    cfg = config("apiVersion: kbld.k14s.io/v1alpha1\nkind: ImageKeys\nkeys: [customImage]\n")
    assert find_references({"a": {"customImage": "x/y:1", "image": "z:2"}}, [*cfg.rules, DEFAULT_RULE], "d") == [
        "x/y:1",
        "z:2",
    ]
    cfg = config(
        "apiVersion: kbld.k14s.io/v1alpha1\nkind: ImageOverrides\noverrides:\n- imageRepo: nginx\n  newImage: mirror/nginx:1\n"
    )
    assert cfg.override_for("docker.io/library/nginx:1.25") is not None and cfg.override_for("nginx2") is None


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("searchRules:\n- updateStrategy: {none: {}}\n", "keyMatcher or valueMatcher"),
        ("searchRules:\n- keyMatcher: {name: a}\n  updateStrategy: {sometimes: {}}\n", "updateStrategy"),
        ("overrides:\n- image: a\n", "newImage"),
        ("overrides:\n- image: a\n  newImage: b\n  tagSelection: {semver: {}}\n", "tagSelection"),
        ("sources:\n- image: a\n", "path"),
        ("sources:\n- image: a\n  path: .\n  docker: {}\n  pack: {}\n", "choose one builder"),
        ("bogus: 1\n", "unknown field"),
    ],
)
def test_bad_config_is_one_usage_error(text: str, words: str) -> None:
    with pytest.raises(UsageError, match=words):
        config("apiVersion: kbld.k14s.io/v1alpha1\nkind: Config\n" + text)


def test_pack_fields_become_build_flags() -> None:
    base = BuildRequest(image="local:x", path=Path("/src"))
    request = request_from_options("app", {
        "builder": "cnb/tiny-builder", "buildpacks": ["cnb/procfile"], "clearCache": True,
        "rawOptions": ["--env", "A=1", "-e=B=2", "--default-process", "worker", "--network", "none"],
    }, base)  # fmt: skip
    assert (request.builder, request.buildpacks, request.clear_cache) == ("cnb/tiny-builder", ("cnb/procfile",), True)
    assert (request.env, request.default_process, request.network) == (("A=1", "B=2"), "worker", "none")
    with pytest.raises(UsageError, match="--publish"):
        request_from_options("app", {"rawOptions": ["--publish"]}, base)
