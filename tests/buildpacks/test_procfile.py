"""cnb/procfile (issue 4 item 4): processes from a Procfile, alone and composed after cnb/python.

The scripts run under this machine's dash and BusyBox ``sh`` (POSIX, no bash-isms). End to end: examples/shell on
the tiny BusyBox base, run with ``cnb run``; and a group [cnb/python, cnb/procfile] on bookworm where the Procfile's
``web`` replaces the one cnb/python detected and adds its other processes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.buildpacks.conftest import LanguageImages
from tests.buildpacks.helpers import config, create, make_project
from tests.conftest import REPO, Cnb
from tests.support.builders import BUILD_IMAGE, RUN_IMAGE, make_tiny_bases

BUILDPACK = REPO / "buildpacks" / "procfile"
SHELLS = ["/bin/dash", "/bin/busybox sh"]


def run_script(shell: str, name: str, app: Path, layers: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*shell.split(), str(BUILDPACK / "bin" / name)], cwd=app, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "CNB_LAYERS_DIR": str(layers)}, timeout=30)  # fmt: skip


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(
    ("procfile", "passes"),
    [
        (None, False),
        ("# only a comment\n\n", False),
        ("web:   \n", False),
        ("web: ./run\n", True),
        ("a.b-c_1: x", True),
    ],
)
def test_detect(tmp_path: Path, shell: str, procfile: str | None, passes: bool) -> None:
    if procfile is not None:
        (tmp_path / "Procfile").write_text(procfile)
    assert run_script(shell, "detect", tmp_path, tmp_path).returncode == (0 if passes else 100)


@pytest.mark.parametrize("shell", SHELLS)
def test_build_turns_every_line_into_a_process(tmp_path: Path, shell: str) -> None:
    (tmp_path / "Procfile").write_bytes(
        b"# processes\r\n"
        b'worker: python worker.py --queue "jobs"\r\n'
        b"web: exec gunicorn -b 0.0.0.0:$PORT 'app:make()' \\\\ end\r\n"
        b"\r\n"
        b"worker: echo second\r\n"
        b"release:echo no space"
    )
    done = run_script(shell, "build", tmp_path, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "process worker is given again; keeping the first" in done.stdout
    assert "procfile: 3 process(es), default web" in done.stdout
    launch = tomllib.loads((tmp_path / "launch.toml").read_text())
    assert launch["processes"] == [
        {"type": "worker", "command": ["/bin/sh", "-c", 'python worker.py --queue "jobs"', "worker"], "default": False},
        {"type": "web", "command": ["/bin/sh", "-c", "exec gunicorn -b 0.0.0.0:$PORT 'app:make()' \\\\ end", "web"],
         "default": True},
        {"type": "release", "command": ["/bin/sh", "-c", "echo no space", "release"], "default": False},
    ]  # fmt: skip


def test_without_web_the_first_process_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "Procfile").write_text("worker: ./work\nclock: ./tick\n")
    assert run_script("/bin/dash", "build", tmp_path, tmp_path).returncode == 0
    launch = tomllib.loads((tmp_path / "launch.toml").read_text())
    assert [(p["type"], p["default"]) for p in launch["processes"]] == [("worker", True), ("clock", False)]


@pytest.mark.integration
def test_shell_example_on_the_tiny_base(tmp_path: Path, bp_cnb: Cnb) -> None:
    make_tiny_bases(bp_cnb.home)
    project = make_project(tmp_path / "project", ["procfile"], {})
    shutil.copytree(REPO / "examples" / "shell", project.app)
    done = create(bp_cnb, project, (BUILD_IMAGE, RUN_IMAGE))
    assert "procfile: 2 process(es), default web" in done.stdout + done.stderr
    assert bp_cnb("run", project.output).stdout.splitlines()[0] == "Hello from a cnb-built image!"
    greeted = bp_cnb("run", project.output, "--process", "greet", "--", "world").stdout.strip()
    assert greeted == "hello, world from /workspace"


@pytest.mark.integration
def test_after_python_the_procfile_wins_for_its_types(tmp_path: Path, bp_cnb: Cnb, languages: LanguageImages) -> None:
    project = make_project(
        tmp_path / "project",
        ["python", "procfile"],
        {"app.py": "print('app')\n", "Procfile": "web: python app.py --from-procfile\nworker: python -c 'print(1)'\n"},
    )
    done = create(bp_cnb, project, languages)
    output = done.stdout + done.stderr
    assert "cnb/python: web process (from the Procfile)" in output
    assert "procfile: 2 process(es), default web" in output
    image = config(project.layout)["config"]
    assert image["Entrypoint"] == ["/cnb/process/web"]
    processes = json.loads(image["Labels"]["io.buildpacks.build.metadata"])["processes"]
    assert [(p["type"], p["buildpackID"], p["command"]) for p in processes] == [
        ("web", "cnb/procfile", ["/bin/sh", "-c", "python app.py --from-procfile", "web"]),
        ("worker", "cnb/procfile", ["/bin/sh", "-c", "python -c 'print(1)'", "worker"]),
    ]
