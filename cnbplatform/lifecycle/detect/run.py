"""One ``bin/detect`` run: its environment, arguments, plan file and outcome (docs/spec-notes.md §3.2, §3.9).

The plan file (``CNB_BUILD_PLAN_PATH``) is a fresh empty file per buildpack in a private directory the detect phase
creates under the layers dir and removes afterwards. The layers dir is mounted read-write in every sandbox kind,
so no extra mount is needed (a ``docker`` sandbox would otherwise recreate its container for every buildpack). The
file is mode 0666 because the sandbox may map ``CNB_USER_ID`` to another host uid than the lifecycle's.

Outcome (§3.2): exit 0 passes, 100 fails, anything else is an error, and so is a run that timed out, could not be
started, or passed with a plan that cannot be read or has a top-level ``requires.version`` (LC: code -1). The plan
is read only on exit 0. Output (stdout and stderr interleaved) is kept up to the execution's output limit plus the
last few KiB, so a buildpack that prints without end costs bounded memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cnbplatform.buildpack.env import invocation_env
from cnbplatform.errors import CnbError, SandboxUnavailableError
from cnbplatform.files.apis import ApiVersion
from cnbplatform.files.buildpack_toml import BuildpackDescriptor, escape_id
from cnbplatform.files.plan import DetectOutput
from cnbplatform.lifecycle.context import Execution

CODE_PASS = 0
CODE_FAIL = 100
CODE_ERROR = -1  # the lifecycle itself turned the run into an error (LC)
TAIL_BYTES = 4096
TAIL_LINES = 5


@dataclass(frozen=True)
class DetectRun:
    """How one buildpack's detection ended."""

    code: int
    output: bytes = b""
    error: str = ""
    plan: DetectOutput | None = None
    timed_out: bool = False

    @property
    def passed(self) -> bool:
        return self.code == CODE_PASS and not self.error

    @property
    def failed(self) -> bool:
        return self.code == CODE_FAIL and not self.error

    @property
    def errored(self) -> bool:
        return not self.passed and not self.failed

    def describe(self) -> str:
        """One line: how it ended and, for an error, the last lines of its output."""
        if self.passed:
            return "passed"
        if self.failed:
            return "failed (exit 100)"
        what = self.error or f"exited with code {self.code}"
        tail = last_lines(self.output)
        return f"{what}; last output: {tail}" if tail else what


def last_lines(output: bytes, count: int = TAIL_LINES) -> str:
    """The last *count* non-empty lines of *output*, joined with `` | ``."""
    lines = [line.strip() for line in output.decode(errors="replace").splitlines() if line.strip()]
    return " | ".join(lines[-count:])


class _Collector:
    """Interleaved stdout/stderr: the first *limit* bytes and the last TAIL_BYTES."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def __call__(self, _source: str, data: bytes) -> None:
        self.total += len(data)
        room = self.limit - len(self.head)
        if room > 0:
            self.head += data[:room]
        self.tail += data
        if len(self.tail) > TAIL_BYTES:
            del self.tail[: len(self.tail) - TAIL_BYTES]

    def output(self) -> bytes:
        if self.total <= len(self.head):
            return bytes(self.head)
        omitted = self.total - len(self.head) - len(self.tail)
        if omitted <= 0:  # the tail overlaps the head by -omitted bytes
            return bytes(self.head) + bytes(self.tail[-omitted:])
        return bytes(self.head) + f"\n[... {omitted} bytes of output omitted ...]\n".encode() + bytes(self.tail)


@dataclass(frozen=True)
class DetectEnv:
    """What every ``bin/detect`` of one detect phase shares (docs/spec-notes.md §3.2)."""

    base_env: Mapping[str, str]  # already filtered (§3.9 step 1)
    target_env: Mapping[str, str]  # CNB_TARGET_* (§3.2, Buildpack API >= 0.10)
    exec_env: str | None  # CNB_EXEC_ENV when the Platform API has it (0.15), for Buildpack API >= 0.12


def run_detect(execution: Execution, descriptor: BuildpackDescriptor, shared: DetectEnv, plan_file: Path) -> DetectRun:
    """Run *descriptor*'s ``bin/detect`` with cwd = app dir; *plan_file* is a host path under the layers dir."""
    bp_dir = f"{execution.paths.buildpacks}/{escape_id(descriptor.id)}/{descriptor.version}"
    host_dir = descriptor.path or (execution.dirs.buildpacks / escape_id(descriptor.id) / descriptor.version)
    if not (host_dir / "bin" / "detect").is_file():
        return DetectRun(CODE_ERROR, error=f"{descriptor} has no bin/detect ({host_dir / 'bin' / 'detect'})")
    try:
        plan_file.write_bytes(b"")
        os.chmod(plan_file, 0o666)
        env = invocation_env(
            shared.base_env,
            platform_dir=execution.dirs.platform,
            build_config_dir=execution.dirs.build_config,
            clear_env=descriptor.info.clear_env,
        )
    except (OSError, CnbError) as exc:
        return DetectRun(CODE_ERROR, error=f"cannot prepare the detect environment: {exc}")
    plan_path = execution.layers_path(plan_file)
    api = ApiVersion.parse(descriptor.api)
    env["CNB_BUILDPACK_DIR"] = bp_dir
    if api.at_least("0.8"):
        env["CNB_PLATFORM_DIR"] = execution.paths.platform
        env["CNB_BUILD_PLAN_PATH"] = plan_path
    if api.at_least("0.10"):
        env.update(shared.target_env)
    if api.at_least("0.12") and shared.exec_env:
        env["CNB_EXEC_ENV"] = shared.exec_env
    collector = _Collector(execution.output_limit)
    argv = [f"{bp_dir}/bin/detect", execution.paths.platform, plan_path]
    try:
        result = execution.run(argv, env, source=f"{descriptor} detect", sink=collector)
    except SandboxUnavailableError:
        raise  # not this buildpack's failure: no buildpack can run here
    except CnbError as exc:
        return DetectRun(CODE_ERROR, collector.output(), error=f"could not run bin/detect: {exc.message}")
    output = collector.output()
    if result.timed_out:
        limit = f" after {execution.timeout:g}s" if execution.timeout is not None else ""
        return DetectRun(result.exit_code, output, error=f"timed out{limit}", timed_out=True)
    if result.exit_code != CODE_PASS:
        return DetectRun(result.exit_code, output)
    try:
        plan = DetectOutput.load(plan_file)
    except CnbError as exc:
        return DetectRun(CODE_ERROR, output, error=f"invalid build plan: {exc.message}")
    return DetectRun(CODE_PASS, output, plan=plan)
