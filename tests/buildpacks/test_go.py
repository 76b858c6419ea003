"""cnb/go's bin/build run directly with this machine's go (the bookworm build images have none; the trixie builder
carries Go): the go-stdlib and go-vendored examples build into static binaries that serve their page, launch.toml
names the binary as the web process, and the SBOM lists the vendored module with its pkg:golang purl."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO

BP = REPO / "buildpacks" / "go"


def build(app: Path, layers: Path, **env: str) -> subprocess.CompletedProcess[str]:
    layers.mkdir(exist_ok=True)
    full = {**os.environ, "CNB_BUILDPACK_DIR": str(BP), "CNB_LAYERS_DIR": str(layers), **env}
    return subprocess.run(["sh", str(BP / "bin" / "build")], cwd=app, env=full, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def serve(binary: str) -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([binary], env={"PORT": str(port)}, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60  # generous: the machine may be busy
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"the binary exited with {proc.returncode} before it answered")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                    return str(answer.read().decode())
            except OSError:
                time.sleep(0.1)
        raise AssertionError("the binary never answered")
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(
    ("example", "page", "components"),
    [
        ("go-stdlib", "Hello from cnb! (go-stdlib)\n", []),
        ("go-vendored", "Hello from cnb! (go-vendored, greeting v0.1.0)\n",
         [("example.com/cnb/greeting", "v0.1.0", "pkg:golang/example.com/cnb/greeting@v0.1.0")]),
    ],
)  # fmt: skip
def test_example_builds_a_static_web_binary_with_an_sbom(
    tmp_path: Path, example: str, page: str, components: list[tuple[str, str, str]]
) -> None:
    app, layers = tmp_path / "app", tmp_path / "layers"
    shutil.copytree(REPO / "examples" / example, app)
    done = build(app, layers)
    assert done.returncode == 0, done.stderr
    binary = layers / "app" / "bin" / example
    assert tomllib.loads((layers / "launch.toml").read_text()) == {
        "processes": [{"type": "web", "command": [str(binary)], "default": True}]
    }
    assert "statically linked" in subprocess.run(["file", "-L", str(binary)], capture_output=True, text=True).stdout
    sbom = json.loads((layers / "app.sbom.cdx.json").read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    assert [(c["name"], c["version"], c["purl"]) for c in sbom["components"]] == components
    assert tomllib.loads((layers / "gocache.toml").read_text()) == {"types": {"cache": True}}
    assert serve(str(binary)) == page


def test_several_targets_and_bad_targets(tmp_path: Path) -> None:
    app = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "go-stdlib", app)
    (app / "cmd" / "worker").mkdir(parents=True)
    (app / "cmd" / "worker" / "main.go").write_text("package main\n\nfunc main() {}\n")
    (app / "lib").mkdir()
    (app / "lib" / "lib.go").write_text("package lib\n")
    done = build(app, tmp_path / "layers", BP_GO_TARGETS=".:./cmd/worker")
    assert done.returncode == 0, done.stderr
    processes = tomllib.loads((tmp_path / "layers" / "launch.toml").read_text())["processes"]
    assert [(p["type"], Path(p["command"][0]).name) for p in processes] == [("web", "go-stdlib"), ("worker", "worker")]
    done = build(app, tmp_path / "layers2", BP_GO_TARGETS="./lib")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == "cnb/go: error: BP_GO_TARGETS: './lib' is not a main package"
