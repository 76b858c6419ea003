"""``cnb buildpack new``: the skeleton of a new buildpack (buildpack.toml, ``bin/detect``, ``bin/build``)."""

from __future__ import annotations

import json
from pathlib import Path

from cnbplatform.errors import UsageError
from cnbplatform.files.buildpack_toml import (
    BuildpackDescriptor,
)

_DETECT = """#!/bin/sh
# bin/detect (Buildpack API 0.12): exit 0 to take part in the build, 100 to pass.
# $CNB_PLATFORM_DIR holds the platform's env/ and $CNB_BUILD_PLAN_PATH is where to write requires/provides.
set -eu
exit 0
"""

_BUILD = """#!/bin/sh
# bin/build (Buildpack API 0.12): make layers under $CNB_LAYERS_DIR for the app in the current directory.
# $CNB_BP_PLAN_PATH holds the entries this buildpack is asked for; $CNB_PLATFORM_DIR/env the user's variables.
set -eu
echo "---> $(basename "$CNB_BUILDPACK_DIR") build"
exit 0
"""


def scaffold_buildpack(directory: Path, buildpack_id: str, *, version: str = "1.0.0", api: str = "0.12") -> list[Path]:
    """A new ``sh`` buildpack in *directory* (which must not exist): buildpack.toml, bin/detect, bin/build."""
    if directory.exists():
        raise UsageError(f"directory {directory} exists")
    text = (
        f"api = {json.dumps(api)}\n\n[buildpack]\nid = {json.dumps(buildpack_id)}\nversion = {json.dumps(version)}\n\n"
        '[[targets]]\nos = "linux"\n'
    )
    BuildpackDescriptor.parse(text, directory / "buildpack.toml")  # refuse a bad id or version before writing
    (directory / "bin").mkdir(parents=True)
    (directory / "buildpack.toml").write_text(text)
    written = [directory / "buildpack.toml"]
    for name, body in (("detect", _DETECT), ("build", _BUILD)):
        script = directory / "bin" / name
        script.write_text(body)
        script.chmod(0o755)
        written.append(script)
    return written
