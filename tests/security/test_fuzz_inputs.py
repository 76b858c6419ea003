"""Threat: a descriptor, label or buildpack output that cnb does not expect crashes it (issue 9 item 4).

Every input must end in one line and the spec's exit code: a :class:`~cnbplatform.errors.CnbError`, which the CLI
renders as ``error: <message>``. Anything else reaches the CLI's last line of defence, ``error: internal error:
…``, which is a bug. Hypothesis feeds every TOML reader in ``cnbplatform/files`` and every label reader documents
made of the keys those readers look for, odd strings (NUL, ``..``, absolute paths), deep nesting and bytes that are
not UTF-8; then buildpack outputs (layer names, launch.toml, SBOM names, as bytes) go through a real build.
Examples are bounded (``max_examples``) so the module takes seconds.
"""

from __future__ import annotations

import inspect
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, suppress
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import cnbplatform.files as files_pkg
from cnbplatform.cli import entry
from cnbplatform.errors import CnbError
from cnbplatform.files import builder_labels as bl
from cnbplatform.files import labels
from cnbplatform.files.analyzed import Analyzed
from cnbplatform.files.apis import ApiVersion
from cnbplatform.files.build_toml import BuildToml, StoreToml
from cnbplatform.files.builder_toml import BuilderConfig
from cnbplatform.files.buildpack_toml import BuildpackDescriptor, ExtensionDescriptor
from cnbplatform.files.group import GroupFile
from cnbplatform.files.launch import LaunchToml
from cnbplatform.files.layer_toml import LayerToml
from cnbplatform.files.metadata import BuildMetadata
from cnbplatform.files.order import Order
from cnbplatform.files.package_toml import PackageConfig
from cnbplatform.files.plan import BuildpackPlan, DetectOutput, Plan
from cnbplatform.files.project_metadata import ProjectMetadata
from cnbplatform.files.project_toml import ProjectDescriptor
from cnbplatform.files.report import Report
from cnbplatform.files.run_toml import RunConfig
from cnbplatform.files.system import SystemConfig
from tests.security.helpers import copy_of_home
from tests.support.builders import BUILDER, REPO

FUZZ = settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)

#: the keys the readers look for, so generated documents get past the first lookup
VOCAB = (
    "api", "buildpack", "extension", "id", "version", "name", "homepage", "clear-env", "sbom-formats", "exec-env",
    "targets", "os", "arch", "variant", "arch-variant", "distros", "stacks", "mixins", "order", "group", "optional",
    "metadata", "processes", "type", "command", "args", "direct", "default", "working-dir", "labels", "key", "value",
    "slices", "paths", "bom", "types", "launch", "build", "cache", "unmet", "provides", "requires", "entries", "or",
    "plan", "buildpacks", "extensions", "images", "image", "mirrors", "run-image", "run", "reference", "top-layer",
    "layers", "sha", "data", "store", "schema-version", "_", "io.buildpacks", "include", "exclude", "env", "uri",
    "script", "inline", "shell", "pre", "post", "builder", "source", "description", "lifecycle", "stack",
    "build-image", "dependencies", "platform", "system", "runImage", "topLayer", "buildpackID", "launcher",
    "apis", "supported", "deprecated", "createdBy", "digest", "tags", "extend", "previous-image", "target",
    "licenses", "keywords", "bin", "url", "ref", "layersMetadata", "buildpack.layers", "io",
)  # fmt: skip
ODD = (
    "", "/", ".", "..", "../../x", "/etc/passwd", "a\0b", "\0", "0.12", "0.2", "0.3", "1.0.0", "web", "*", "a/b",
    "urn:cnb:builder:x", "docker://x", "file:///etc", "sha256:" + "a" * 64, "x" * 300, "é", "\n", "${HOME}",
)  # fmt: skip

keys = st.one_of(st.sampled_from(VOCAB), st.text(max_size=6))
scalars = st.one_of(
    st.sampled_from(ODD),
    st.text(max_size=12),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=25
)
documents = st.dictionaries(keys, values, max_size=7)


def nested(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


DEEP_TOML = "a = " + nested(50_000)
DEEP_INLINE = "a = " + "{b = " * 5_000 + "1" + "}" * 5_000
DEEP_JSON = '{"a": ' + nested(50_000) + "}"


def _launch(api: str) -> Callable[[str, str], object]:
    return lambda text, path: LaunchToml.parse(text, path, api=api)


#: every reader of a TOML file in cnbplatform/files: (name, parse(text, path))
TOML_READERS: dict[str, Callable[[str, str], object]] = {
    "analyzed.toml": Analyzed.parse,
    "build.toml": BuildToml.parse,
    "store.toml": StoreToml.parse,
    "builder.toml": BuilderConfig.parse,
    "buildpack.toml": BuildpackDescriptor.parse,
    "extension.toml": ExtensionDescriptor.parse,
    "group.toml": GroupFile.parse,
    "launch.toml (0.8)": _launch("0.8"),
    "launch.toml (0.12)": _launch("0.12"),
    "layer.toml": LayerToml.parse,
    "metadata.toml": BuildMetadata.parse,
    "order.toml": Order.parse,
    "package.toml": PackageConfig.parse,
    "detect plan.toml": DetectOutput.parse,
    "plan.toml": Plan.parse,
    "buildpack plan": BuildpackPlan.parse,
    "project-metadata.toml": ProjectMetadata.parse,
    "report.toml": Report.parse,
    "run.toml": RunConfig.parse,
    "stack.toml": RunConfig.parse_stack,
    "system.toml": SystemConfig.parse,
}

#: every label reader: (name, parse(text))
LABEL_READERS: dict[str, Callable[[str], object]] = {
    "order label": bl.parse_order_label,
    "system label": bl.parse_system_label,
    "buildpack layers label": bl.parse_module_layers,
    "buildpackage metadata": bl.PackageMetadata.from_json,
    "builder metadata": bl.BuilderMetadata.from_json,
    "build metadata": labels.BuildMetadataLabel.from_json_strict,
    "build metadata (tolerant)": labels.BuildMetadataLabel.from_json,
    "project metadata": labels.ProjectMetadataLabel.from_json_strict,
    "cache metadata": labels.CacheMetadata.from_json_strict,
    "lifecycle metadata": labels.LifecycleMetadata.from_json_strict,
    "lifecycle metadata (tolerant)": labels.LifecycleMetadata.from_json,
    "api version": ApiVersion.parse,
}


def survives(call: Callable[[], object]) -> None:
    """The reader returns or raises CnbError (one line at the CLI); any other exception fails the test."""
    with suppress(CnbError):
        call()


def test_every_file_reader_is_fuzzed() -> None:
    """A reader added to cnbplatform/files later is fuzzed too: every class with ``parse`` is in the tables."""
    fuzzed = {getattr(r, "__self__", None) for r in TOML_READERS.values()} | {LaunchToml, ProjectDescriptor}
    fuzzed |= {getattr(r, "__self__", None) for r in LABEL_READERS.values()}
    missing = []
    for path in sorted(Path(files_pkg.__file__).parent.glob("*.py")):
        module = __import__(f"cnbplatform.files.{path.stem}", fromlist=["_"])
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not ("parse" in vars(cls) or "from_json_strict" in vars(cls)):
                continue
            if cls not in fuzzed and not any(issubclass(f, cls) for f in fuzzed if isinstance(f, type)):
                missing.append(f"{module.__name__}.{cls.__name__}")
    assert not missing, missing


@pytest.mark.parametrize("reader", TOML_READERS.values(), ids=TOML_READERS.keys())
@FUZZ
@given(doc=documents)
@example(doc={}).via("empty")
def test_toml_readers(reader: Callable[[str, str], object], doc: dict[str, Any]) -> None:
    text = tomli_w.dumps(doc)
    survives(lambda: reader(text, "/fuzz/file.toml"))


@pytest.mark.parametrize("reader", TOML_READERS.values(), ids=TOML_READERS.keys())
@pytest.mark.parametrize("text", [DEEP_TOML, DEEP_INLINE, 'a = "x\\u0000y"', "a = [1, 'x', {b = 2}]"])
def test_toml_readers_on_deep_nesting_and_nul(reader: Callable[[str, str], object], text: str) -> None:
    survives(lambda: reader(text, "/fuzz/file.toml"))


@FUZZ
@given(doc=documents, raw=st.binary(max_size=64))
@example(doc={}, raw=b"\xff\xfe").via("not UTF-8")
def test_project_toml_from_disk(tmp_path_factory: pytest.TempPathFactory, doc: dict[str, Any], raw: bytes) -> None:
    path = tmp_path_factory.mktemp("project") / "project.toml"
    path.write_bytes(tomli_w.dumps(doc).encode() + raw)
    survives(lambda: ProjectDescriptor.load(path))


@pytest.mark.parametrize("reader", LABEL_READERS.values(), ids=LABEL_READERS.keys())
@FUZZ
@given(doc=st.one_of(documents, values))
@example(doc={"buildpacks": [{"key": "a", "layers": {"..": {"data": {}}}}]}).via("dotdot layer")
def test_label_readers(reader: Callable[[str], object], doc: Any) -> None:
    survives(lambda: reader(json.dumps(doc)))


@pytest.mark.parametrize("reader", LABEL_READERS.values(), ids=LABEL_READERS.keys())
@pytest.mark.parametrize("text", [DEEP_JSON, "not json", "[]", '{"a": "\\u0000"}', "\ud800"])
def test_label_readers_on_odd_text(reader: Callable[[str], object], text: str) -> None:
    survives(lambda: reader(text))


# -- the CLI's last line of defence -------------------------------------------------------------------------------


def test_an_unexpected_exception_is_one_internal_error_line_and_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """What every fuzzed input must never reach: an exception that is not a CnbError becomes one line."""

    def broken() -> int:
        raise ZeroDivisionError("division by zero\nsecond line")

    monkeypatch.setattr(entry, "fast_command", lambda args: broken)
    stderr = io.StringIO()
    with redirect_stderr(stderr), pytest.raises(SystemExit) as info:
        entry.main(["anything"])
    assert info.value.code == 1
    assert stderr.getvalue() == (
        "error: internal error: ZeroDivisionError: division by zero second line (cnb -v … shows the traceback)\n"
    )


def test_deep_toml_through_the_cli_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "package.toml"
    config.write_text(DEEP_TOML)
    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", "buildpack", "package", str(tmp_path / "x.cnb"), "--config", str(config)],
        env={**os.environ, "CNB_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)},
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: {config}: tables and arrays are nested more than")


# -- buildpack outputs through a real build ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def home(tiny_builder_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's CNB_HOME with the tiny builder, for this module's builds."""
    return copy_of_home(tiny_builder_home, tmp_path_factory, "fuzz-home")


LAYER_NAMES = st.one_of(
    st.sampled_from([b"web", b"deps", b"..", b".", b"layer\xff", b"a b", b"-x", b"launch", b"build", b"x" * 200]),
    st.binary(min_size=1, max_size=8).filter(lambda b: b"/" not in b and b"\0" not in b),
)
LAYER_TOMLS = st.one_of(
    st.just({"types": {"launch": True, "build": True, "cache": True}, "metadata": {"k": "v"}}),
    st.fixed_dictionaries({"types": st.dictionaries(st.sampled_from(["launch", "build", "cache"]), values)}),
    documents,
)
PROCESSES = st.lists(
    st.fixed_dictionaries(
        {"type": st.one_of(st.sampled_from(ODD), st.text(max_size=6)), "command": st.one_of(values, st.just(["x"]))},
        optional={"args": values, "default": values, "working-dir": values},
    ),
    max_size=3,
)
LAUNCH_TOMLS = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            "processes": PROCESSES,
            "labels": st.lists(st.fixed_dictionaries({"key": scalars, "value": scalars}), max_size=3),
            "slices": st.lists(st.fixed_dictionaries({"paths": st.lists(scalars, max_size=3)}), max_size=2),
        },
    ),
    documents,
)
SBOM_NAMES = st.builds(
    lambda owner, ext: owner + b".sbom." + ext,
    st.one_of(st.sampled_from([b"launch", b"build", b"web", b"..", b"\xff"]), LAYER_NAMES),
    st.sampled_from([b"cdx.json", b"spdx.json", b"syft.json", b"x.json"]),
)


@st.composite
def buildpack_outputs(draw: st.DrawFn) -> dict[bytes, bytes | None]:
    """A buildpack's layers dir as {relative path: content, or None for a directory}, as bytes (names need not
    be UTF-8)."""
    out: dict[bytes, bytes | None] = {}
    for name in draw(st.lists(LAYER_NAMES, max_size=3, unique=True)):
        out[name + b".toml"] = tomli_w.dumps(draw(LAYER_TOMLS)).encode()
        if draw(st.booleans()):
            out[name] = None
            out[name + b"/file\xfe"] = b"content"
            for env_dir in draw(st.lists(st.sampled_from([b"env", b"env.launch", b"env.build", b"env.launch/web"]))):
                out[name + b"/" + env_dir.split(b"/")[0]] = None
                out[name + b"/" + env_dir] = None
                var = draw(st.sampled_from([b"PATH", b"A.append", b"A.delim", b"A.prepend", b"A.default", b"="]))
                out[name + b"/" + env_dir + b"/" + var] = draw(st.binary(max_size=8))
    if draw(st.booleans()):
        out[b"launch.toml"] = tomli_w.dumps(draw(LAUNCH_TOMLS)).encode()
    for extra in (b"build.toml", b"store.toml"):
        if draw(st.booleans()):
            out[extra] = tomli_w.dumps(draw(documents)).encode()
    for name in draw(st.lists(SBOM_NAMES, max_size=2, unique=True)):
        out[name] = draw(st.sampled_from([b"{}", b"not json", b'{"bomFormat": "CycloneDX"}']))
    return out


BUILD_SCRIPT = """#!/bin/sh
set -e
cp -a "$CNB_BUILDPACK_DIR/out/." "${CNB_LAYERS_DIR:-$1}/"
"""


def write_fuzz_buildpack(directory: Path, outputs: dict[bytes, bytes | None]) -> Path:
    (directory / "bin").mkdir(parents=True)
    (directory / "buildpack.toml").write_text(
        'api = "0.10"\n[buildpack]\nid = "fuzz/bp"\nversion = "1.0.0"\n'
        'sbom-formats = ["application/vnd.cyclonedx+json", "application/spdx+json", "application/vnd.syft+json"]\n'
    )
    for name, body in (("detect", "#!/bin/sh\nexit 0\n"), ("build", BUILD_SCRIPT)):
        (directory / "bin" / name).write_text(body)
        (directory / "bin" / name).chmod(0o755)
    out = os.fsencode(directory / "out")
    os.mkdir(out)
    for rel, content in sorted(outputs.items(), key=lambda item: item[0].count(b"/")):
        target = os.path.join(out, rel)
        if content is None:
            os.makedirs(target, exist_ok=True)
        else:
            with open(target, "wb") as f:
                f.write(content)
    return directory


#: the cases the issue names, besides whatever Hypothesis draws
NAMED_OUTPUTS: dict[str, dict[bytes, bytes | None]] = {
    "non-UTF-8 layer dir": {b"layer\xff.toml": b"[types]\nlaunch = true\n", b"layer\xff": None, b"layer\xff/f": b"x"},
    "NUL in launch.toml": {b"launch.toml": b'[[processes]]\ntype = "web"\ncommand = ["a\\u0000b"]\n'},
    "deep launch.toml": {b"launch.toml": DEEP_TOML.encode()},
    "dotdot layer": {b"...toml": b"[types]\nlaunch = true\n"},
    "newline in names": {b"a\nerror: forged.toml": b"[types]\nlaunch = 1\n", b"b\n.sbom.cdx.json": b"{}"},
}


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(outputs=buildpack_outputs())
@example(outputs=NAMED_OUTPUTS["non-UTF-8 layer dir"]).via("non-UTF-8 layer dir")
@example(outputs=NAMED_OUTPUTS["NUL in launch.toml"]).via("NUL in launch.toml")
@example(outputs=NAMED_OUTPUTS["deep launch.toml"]).via("deep launch.toml")
@example(outputs=NAMED_OUTPUTS["dotdot layer"]).via("dotdot layer")
@example(outputs=NAMED_OUTPUTS["newline in names"]).via("newline in names")
def test_buildpack_outputs_through_a_real_build(
    home: Path, tmp_path_factory: pytest.TempPathFactory, outputs: dict[bytes, bytes | None]
) -> None:
    work = tmp_path_factory.mktemp("fuzz-build")
    bp = write_fuzz_buildpack(work / "bp", outputs)
    app = work / "app"
    app.mkdir()
    (app / "hello.sh").write_text("echo hi\n")
    env = {"CNB_HOME": str(home), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", "-q", "build", f"fuzz-{work.name}", "--builder", BUILDER,
         "--path", str(app), "--buildpack", str(bp)],
        env=env, cwd=REPO, capture_output=True, timeout=300,
    )  # fmt: skip
    stderr = done.stderr.decode("utf-8", "replace")
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), stderr  # -q: nothing else
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == ([lines[-1]] if done.returncode else []), f"exit {done.returncode}: {stderr}"
