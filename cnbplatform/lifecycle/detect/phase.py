"""The detect phase: pick the first group of buildpacks that passes detection and write ``group.toml`` and
``plan.toml`` (docs/spec-notes.md §2.2, §4; docs/design.md §4 "a phase is a function of explicit inputs").

Steps:

1. Check the Platform API (exit 11). Image extensions (``[[order-extensions]]``) are not supported: exit 22.
2. Add ``system.toml`` buildpacks to every top-level group (Platform API >= 0.15, §4.1), then look up every
   buildpack the order can reach and check its Buildpack API before any ``bin/detect`` runs (exit 12 / 22,
   :mod:`.order`).
3. Try the candidate groups in order (:func:`.order.candidate_groups`). Per group: a non-optional buildpack
   whose targets do not match the run image (Platform API >= 0.12) is an error result without running; the others'
   ``bin/detect`` run concurrently (``parallel`` threads), memoised per ``id@version`` across groups; results are
   evaluated in group order, so the outcome never depends on which run finished first. The group passes when
   every non-optional buildpack passed, at least one buildpack passed, and a plan trial resolves (§4.3, §4.4).
4. Write group.toml (passing buildpacks in order: id, version, api, homepage) and plan.toml. If no group passes:
   exit 21 when any ``bin/detect`` in a tried group errored (exit code not 0/100, timed out, unusable plan, target
   mismatch), else 20.

What the buildpacks printed, and the per-buildpack pass/fail lines, are reported at debug level when detection
succeeds and at info level when it fails (LC); an erroring buildpack's output is always info.

The run image target must be complete when given (the caller fills a missing distro from the build image's
``/etc/os-release``, §3.2); without one, ``linux`` and this machine's architecture are assumed (LC does the same).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cnbplatform.buildpack.env import cnb_target_env
from cnbplatform.errors import CnbError, PhaseError
from cnbplatform.files.analyzed import TargetInfo
from cnbplatform.files.apis import ApiVersion, UnsupportedApiError, check_platform_api
from cnbplatform.files.buildpack_toml import BaseTarget, BuildpackDescriptor, Distro
from cnbplatform.files.group import GroupFile, GroupMember
from cnbplatform.files.order import GroupEntry, Order, OrderGroup
from cnbplatform.files.plan import Plan
from cnbplatform.lifecycle.common import (
    EXIT_DETECT_ERROR,
    EXIT_DETECT_FAIL,
    EXIT_DETECT_OTHER,
    EXIT_PLATFORM_API,
    Reporter,
    run_concurrently,
)
from cnbplatform.lifecycle.context import Execution, filter_base_env
from cnbplatform.lifecycle.detect.order import Element, ModuleKey, Modules, candidate_groups, is_reduction
from cnbplatform.lifecycle.detect.order import load_order_modules as load_modules
from cnbplatform.lifecycle.detect.plan import Passed, Resolution, resolve_plan
from cnbplatform.lifecycle.detect.run import CODE_ERROR, DetectEnv, DetectRun, run_detect

if TYPE_CHECKING:
    from cnbplatform.files.system import SystemConfig

PHASE = "detect"
MAX_GROUPS_IN_MESSAGE = 5  # also the most buildpack errors a failure message lists
_GO_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "i386": "386", "i686": "386"}


@dataclass(frozen=True, kw_only=True)
class DetectInputs:
    """Everything the detect phase reads (docs/spec-notes.md §2.2)."""

    execution: Execution
    order: Order
    system: SystemConfig | None
    run_target: TargetInfo | None
    platform_api: str
    exec_env: str = "production"
    group_path: Path
    plan_path: Path
    parallel: int = 2


@dataclass(frozen=True)
class DetectResult:
    """The selected group and its plan (also written to ``group_path`` / ``plan_path``)."""

    group: GroupFile
    plan: Plan
    tried_groups: int


def detect(inputs: DetectInputs, reporter: Reporter) -> DetectResult:
    """Run detection (docs/spec-notes.md §4) and write group.toml and plan.toml; raise PhaseError 11, 12, 20, 21
    or 22."""
    platform_api = _platform_api(inputs.platform_api)
    if inputs.order.order_extensions:
        raise PhaseError(
            PHASE, EXIT_DETECT_OTHER, "read order", "image extensions ([[order-extensions]]) are not supported"
        )
    groups = inputs.order.groups
    if inputs.system is not None and not inputs.system.is_empty:
        if platform_api.at_least("0.15"):
            groups = _with_system_buildpacks(inputs.system, groups, reporter)
        else:
            reporter.debug(f"system buildpacks ignored: Platform API {platform_api} < 0.15")
    dirs = inputs.execution.dirs
    if not dirs.app.is_dir():
        raise PhaseError(PHASE, EXIT_DETECT_OTHER, "read the app dir", f"{dirs.app} is not a directory")
    modules = load_modules(groups, dirs.buildpacks, extensions_dir=dirs.extensions)
    return _Detection(inputs, reporter, platform_api, modules).run(groups)


def _with_system_buildpacks(
    system: SystemConfig, groups: tuple[OrderGroup, ...], reporter: Reporter
) -> tuple[OrderGroup, ...]:
    """Every group with system.toml's buildpacks around it (§4.1), logged at debug level as the Go lifecycle does."""
    out = []
    for number, group in enumerate(groups, start=1):
        present = {entry.id for entry in group}
        pre = sum(entry.id not in present for entry in system.pre)
        post = sum(entry.id not in present for entry in system.post)
        if pre:
            reporter.debug(f"Prepending {pre} system buildpack(s) to group {number}")
        if post:
            reporter.debug(f"Appending {post} system buildpack(s) to group {number}")
        out.append(system.apply_to_group(group))
    return tuple(out)


def _platform_api(value: str) -> ApiVersion:
    try:
        return check_platform_api(value)
    except UnsupportedApiError as exc:
        raise PhaseError(PHASE, EXIT_PLATFORM_API, "check the Platform API", exc.message) from exc


def _host_target() -> TargetInfo:
    machine = os.uname().machine.lower()
    return TargetInfo(os="linux", arch=_GO_ARCH.get(machine, machine))


def _base_target(target: TargetInfo) -> BaseTarget:
    distro = Distro(target.distro_name, target.distro_version)
    has_distro = bool(target.distro_name or target.distro_version)
    return BaseTarget(target.os, target.arch, target.arch_variant, distro if has_distro else None)


def _describe_target(target: TargetInfo) -> str:
    parts = [f"os={target.os}", f"arch={target.arch}"]
    if target.arch_variant:
        parts.append(f"variant={target.arch_variant}")
    if target.distro_name or target.distro_version:
        parts.append(f"distro={target.distro_name} {target.distro_version}".rstrip())
    return " ".join(parts)


class _Detection:
    """State of one detect phase: memoised runs, tried groups, log buffer."""

    def __init__(self, inputs: DetectInputs, reporter: Reporter, platform_api: ApiVersion, modules: Modules) -> None:
        self.inputs = inputs
        self.execution: Execution = inputs.execution
        self.reporter = reporter
        self.platform_api = platform_api
        self.modules = modules
        self.target = inputs.run_target or _host_target()
        self.base_target = _base_target(self.target)
        with_exec_env = platform_api.at_least("0.15") and bool(inputs.exec_env)
        self.exec_env = inputs.exec_env if with_exec_env else None
        self.shared = DetectEnv(
            base_env=filter_base_env(self.execution.base_env),
            target_env=cnb_target_env(self.target),
            exec_env=self.exec_env,
        )
        self.runs: dict[ModuleKey, DetectRun] = {}
        self.tried: list[tuple[Element, ...]] = []
        self.failures: list[str] = []
        self.errors: dict[ModuleKey, str] = {}
        self.log: list[tuple[bool, str]] = []  # (important, message), flushed at the end
        self.plan_dir: Path | None = None
        self.plan_files = 0

    # -- driver ---------------------------------------------------------------------------------------------

    def run(self, groups: tuple[OrderGroup, ...]) -> DetectResult:
        try:
            for candidate in candidate_groups(groups, self._lookup, include=self._include):
                if any(is_reduction(candidate, tried) for tried in self.tried):
                    continue
                self.tried.append(candidate)
                found = self._try(candidate)
                if found is not None:
                    self._flush(succeeded=True)
                    return self._finish(candidate, found)
            self._flush(succeeded=False)
            raise self._no_group_passed()
        finally:
            if self.plan_dir is not None:
                shutil.rmtree(self.plan_dir, ignore_errors=True)
            self._flush(succeeded=False)

    def _flush(self, *, succeeded: bool) -> None:
        """Report the buffered lines: all at info level when detection failed (LC), else only the important ones."""
        for important, message in self.log:
            (self.reporter.info if important or not succeeded else self.reporter.debug)(message)
        self.log.clear()

    def _lookup(self, entry: GroupEntry) -> BuildpackDescriptor:
        return self.modules[(entry.id, entry.version)]

    def _include(self, descriptor: BuildpackDescriptor) -> bool:
        if self.exec_env is None or descriptor.supports_exec_env(self.exec_env):
            return True
        supported = ", ".join(descriptor.info.exec_env)
        self.log.append((False, f"skip: {descriptor} (exec-env [{supported}] does not include {self.exec_env})"))
        return False

    # -- one candidate group -------------------------------------------------------------------------------

    def _try(self, candidate: tuple[Element, ...]) -> Resolution | None:
        number = len(self.tried)
        label = f"group {number} [{', '.join(str(e) for e in candidate)}]"
        self.log.append((False, f"======== Trying {label} ========"))
        self._run_missing(candidate)
        passed: list[Passed] = []
        failed: list[str] = []
        for element in candidate:
            run = self._target_error(element) or self.runs[element.key]
            if run.errored:
                self.errors.setdefault(element.key, f"{element} {run.describe()}")
                code = "" if run.code == CODE_ERROR else f" ({run.code})"
                self.log.append((True, f"err:  {element}{code}"))
            elif run.passed:
                self.log.append((False, f"pass: {element}"))
            else:
                self.log.append((False, f"{'skip' if element.optional else 'fail'}: {element}"))
            if run.passed and run.plan is not None:
                passed.append(Passed(element, run.plan))
            elif not element.optional:
                failed.append(f"{element} {run.describe()}")
        if failed:
            return self._group_failed(label, "; ".join(failed))
        if not passed:
            return self._group_failed(label, "no buildpack passed detection")
        resolved = resolve_plan(passed, lambda line: self.log.append((False, line)))
        if not isinstance(resolved, Resolution):
            tries = f" ({resolved.trials} trials)" if resolved.trials > 1 else ""
            return self._group_failed(label, f"no build plan resolved{tries}: {resolved.reason}")
        return resolved

    def _group_failed(self, label: str, reason: str) -> Resolution | None:
        self.failures.append(f"{label}: {reason}")
        self.log.append((False, f"fail: {label}: {reason}"))
        return None

    def _target_error(self, element: Element) -> DetectRun | None:
        """A non-optional buildpack whose targets do not match the run image (Platform API >= 0.12, §4.3)."""
        if element.optional or self.platform_api.less_than("0.12"):
            return None
        descriptor = element.descriptor
        if descriptor.supports_target(self.base_target):
            return None
        wanted = [t.to_dict() for t in descriptor.inferred_targets()]
        return DetectRun(
            CODE_ERROR,
            error=f"unable to satisfy target constraints; run image: {_describe_target(self.target)}, "
            f"buildpack targets: {wanted}",
        )

    def _run_missing(self, candidate: tuple[Element, ...]) -> None:
        """Run every ``bin/detect`` of *candidate* not run yet, concurrently; record results in group order."""
        todo = [e for e in candidate if e.key not in self.runs and self._target_error(e) is None]
        calls = [self._detect_call(e) for e in todo]
        outcomes = run_concurrently(calls, max(1, self.inputs.parallel), name="cnb-detect")
        for element, (run, error) in zip(todo, outcomes, strict=True):
            if error is not None:
                raise error
            assert run is not None
            self.runs[element.key] = run
            self._log_output(element, run)

    def _detect_call(self, element: Element) -> Callable[[], DetectRun]:
        plan_file = self._plan_file(element)
        return lambda: run_detect(self.execution, element.descriptor, self.shared, plan_file)

    def _plan_file(self, element: Element) -> Path:
        if self.plan_dir is None:
            layers = self.execution.dirs.layers
            try:
                self.plan_dir = Path(tempfile.mkdtemp(prefix=".cnb-detect-", dir=layers))
                self.plan_dir.chmod(0o755)  # the sandbox user must reach the plan files (0666, see detect_run)
            except OSError as exc:
                raise PhaseError(PHASE, EXIT_DETECT_OTHER, f"create a build plan dir in {layers}", str(exc)) from exc
        self.plan_files += 1
        return self.plan_dir / f"{self.plan_files}-{element.descriptor.escaped_id}.toml"

    def _log_output(self, element: Element, run: DetectRun) -> None:
        if run.output:
            self.log.append((run.errored, f"======== Output: {element} ========"))
            self.log.append((run.errored, run.output.decode(errors="replace").rstrip("\n")))
        if run.error:
            self.log.append((True, f"======== Error: {element} ========"))
            self.log.append((True, run.error))

    # -- outcome --------------------------------------------------------------------------------------------

    def _finish(self, candidate: tuple[Element, ...], found: Resolution) -> DetectResult:
        members = tuple(
            GroupMember(e.id, e.version, e.descriptor.api, e.descriptor.info.homepage) for e in found.elements
        )
        result = DetectResult(GroupFile(group=members), Plan(found.entries), len(self.tried))
        try:
            result.group.dump(self.inputs.group_path)
            result.plan.dump(self.inputs.plan_path)
        except (OSError, CnbError) as exc:
            raise PhaseError(PHASE, EXIT_DETECT_OTHER, "write group.toml and plan.toml", str(exc)) from exc
        if len(found.elements) != len(candidate):
            self.reporter.info(f"{len(found.elements)} of {len(candidate)} buildpacks participating")
        width = max(len(e.id) for e in found.elements)
        for element in found.elements:
            self.reporter.info(f"{element.id:<{width}} {element.version}")
        return result

    def _no_group_passed(self) -> PhaseError:
        tried = f"tried {len(self.tried)} group{'s' if len(self.tried) != 1 else ''}"
        if self.errors:
            errors = list(self.errors.values())
            more = f"; and {len(errors) - MAX_GROUPS_IN_MESSAGE} more" if len(errors) > MAX_GROUPS_IN_MESSAGE else ""
            reason = f"buildpack errors: {'; '.join(errors[:MAX_GROUPS_IN_MESSAGE])}{more} ({tried})"
            return PhaseError(PHASE, EXIT_DETECT_ERROR, "no buildpack group passed detection", reason)
        if not self.tried:
            return PhaseError(PHASE, EXIT_DETECT_FAIL, "no buildpack group passed detection", "the order is empty")
        shown = self.failures[:MAX_GROUPS_IN_MESSAGE]
        rest = len(self.failures) - len(shown)
        reason = f"{tried}: {'; '.join(shown)}" + (f"; and {rest} more" if rest else "")
        return PhaseError(PHASE, EXIT_DETECT_FAIL, "no buildpack group passed detection", reason)
