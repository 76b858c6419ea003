"""Run a buildpack executable directly on this machine: the explicit opt-in ``--sandbox host``.

This is no isolation at all (docs/design.md section 3, decision 1 keeps it as an opt-in): the executable runs
as the current user (``uid``/``gid`` are ignored), sees the host filesystem, has the host network whatever
``network`` says, and read-only mounts are not enforced. What it keeps from the other sandboxes is the
contract: exactly the request's environment (docs/spec-notes.md section 3.9, plus ``PWD``), its working directory,
streaming, output limit and timeout.

There are no mounts, so sandbox paths are translated to host paths instead: every mount's ``target`` prefix
is replaced by its ``source`` in each argv element, in the working directory, and in each environment value
and each ``:``-separated element of it (``CNB_LAYERS_DIR=/layers/x`` becomes ``<host layers dir>/x``;
``PATH=/layers/x/bin:/usr/bin`` becomes ``<host layers dir>/x/bin:/usr/bin``). Only whole values and
whole path-list elements are translated, the longest matching target first; anything else is left as is.
"""

from __future__ import annotations

from collections.abc import Sequence

from cnbplatform.sandbox.protocol import Mount, RunRequest, RunResult, run_process, validate_request


class HostSandbox:
    """Runs executables as the current user on the host, with sandbox paths rewritten to host paths."""

    def run(self, request: RunRequest) -> RunResult:
        validate_request(request)
        argv = [rewrite_path(arg, request.mounts) for arg in request.argv]
        env = {name: rewrite_value(value, request.mounts) for name, value in request.env.items()}
        cwd = rewrite_path(request.cwd, request.mounts)
        env["PWD"] = cwd
        return run_process(argv, env=env, cwd=cwd, request=request)

    def close(self) -> None:
        """Nothing to release."""


def rewrite_path(value: str, mounts: Sequence[Mount]) -> str:
    """*value* with the longest mount target it starts with (as whole path components) replaced by the source."""
    for mount in sorted(mounts, key=lambda m: len(m.target), reverse=True):
        if value == mount.target:
            return str(mount.source)
        prefix = mount.target.rstrip("/") + "/"
        if value.startswith(prefix):
            return f"{str(mount.source).rstrip('/')}/{value[len(prefix) :]}"
    return value


def rewrite_value(value: str, mounts: Sequence[Mount]) -> str:
    """An environment value with each ``:``-separated element rewritten by :func:`rewrite_path`."""
    return ":".join(rewrite_path(part, mounts) for part in value.split(":"))
