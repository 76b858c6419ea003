"""The launcher that goes into every app image, and the per-process files the exporter compiles for it
(docs/design.md §3 decision 3; docs/spec-notes.md §9).
"""

from __future__ import annotations

from cnbplatform.launcher.compile import (
    COMPILED_DIR,
    DIRECT_FILE,
    LaunchBuildpack,
    LaunchCompileError,
    LaunchLayer,
    LaunchProcess,
    compile_launch_env,
    escape_id,
    has_exec_d,
    launch_processes,
    process_file,
    static_launch_env,
)
from cnbplatform.launcher.pyrun import launch, write_launch_env
from cnbplatform.launcher.script import (
    LAUNCHER_ERROR_EXIT,
    LAUNCHER_PATH,
    LAUNCHER_SCRIPT,
    LIFECYCLE_DIR,
    PROCESS_DIR,
    STRIPPED_VARS,
    launcher_script,
    sh_quote,
)

__all__ = [
    "COMPILED_DIR",
    "DIRECT_FILE",
    "LAUNCHER_ERROR_EXIT",
    "LAUNCHER_PATH",
    "LAUNCHER_SCRIPT",
    "LIFECYCLE_DIR",
    "PROCESS_DIR",
    "STRIPPED_VARS",
    "LaunchBuildpack",
    "LaunchCompileError",
    "LaunchLayer",
    "LaunchProcess",
    "compile_launch_env",
    "escape_id",
    "has_exec_d",
    "launch",
    "launch_processes",
    "launcher_script",
    "process_file",
    "sh_quote",
    "static_launch_env",
    "write_launch_env",
]
