"""Run the launcher on the host (``cnb lifecycle launch``, tests): the sh script of
:mod:`cnbplatform.launcher.script` against a layers dir whose ``config/launch/`` holds the compiled files
(docs/spec-notes.md §9; docs/design.md §3 decision 3).

The script is given to ``sh -c`` with ``$0`` set to ``argv[0]``, so argv0 dispatch works exactly as with a
``/cnb/process/<type>`` symlink in an image.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from cnbplatform.errors import CnbError
from cnbplatform.launcher.compile import COMPILED_DIR
from cnbplatform.launcher.script import LAUNCHER_ERROR_EXIT, LAUNCHER_PATH, LAUNCHER_SCRIPT


def launch(
    argv: Sequence[str],
    env: Mapping[str, str],
    layers_dir: Path | str,
    app_dir: Path | str,
    *,
    shell: Sequence[str] = ("/bin/sh",),
) -> int:
    """Run the launcher with *argv* (``argv[0]`` picks the process type) and *env*; return its exit code.

    ``CNB_LAYERS_DIR`` and ``CNB_APP_DIR`` are set from *layers_dir* and *app_dir*. A process killed by a signal
    gives ``128 + signal``, as a shell reports it. *shell* is the interpreter (e.g. ``("/bin/busybox", "sh")``).
    """
    argv0 = argv[0] if argv else LAUNCHER_PATH
    full_env = dict(env)
    full_env["CNB_LAYERS_DIR"] = str(layers_dir)
    full_env["CNB_APP_DIR"] = str(app_dir)
    command = [*shell, "-c", LAUNCHER_SCRIPT.decode("utf-8", "surrogateescape"), argv0, *argv[1:]]
    try:
        result = subprocess.run(command, env=full_env, check=False)
    except OSError as exc:
        message = f"run the launcher with {shell[0]}: {exc.strerror or exc}"
        raise CnbError(message, exit_code=LAUNCHER_ERROR_EXIT) from exc
    return 128 - result.returncode if result.returncode < 0 else result.returncode


def write_launch_env(layers_dir: Path | str, files: Mapping[str, bytes]) -> Path:
    """Write compiled launch files (from :func:`~cnbplatform.launcher.compile.compile_launch_env`) under
    ``<layers_dir>/config/launch/``, replacing whatever was there; return that directory.
    """
    target = Path(layers_dir) / COMPILED_DIR
    try:
        if target.exists():
            shutil.rmtree(target)
        for rel, data in sorted(files.items()):
            path = target / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    except OSError as exc:
        raise CnbError(f"write launch environment to {target}: {exc.strerror or exc}") from exc
    return target
