"""The ``buildpacks`` builder: cnb's own daemonless build (kbld's ``pack`` source).

kbld's ``pack.build`` fields map onto ``cnb build``: ``builder`` -> ``--builder``, ``buildpacks`` ->
``--buildpack`` each, ``clearCache`` -> ``--clear-cache``, and ``rawOptions`` (pack's flags) for the flags the
two share: ``--env/-e``, ``--buildpack/-b``, ``--run-image``, ``--default-process``, ``--network``,
``--creation-time``, ``--pull-policy``, ``--clear-cache``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cnbplatform.errors import UsageError
from cnbplatform.imagebuilders import common
from cnbplatform.imagebuilders.base import BuiltImage, Pushed, SourceBuild
from cnbplatform.lifecycle.common import Reporter
from cnbplatform.oci.registry import Credential
from cnbplatform.platform.build import BuildRequest, run_build
from cnbplatform.platform.context import PlatformContext

_RAW_VALUE = {
    "--env": "env", "-e": "env", "--buildpack": "buildpacks", "-b": "buildpacks", "--run-image": "run_image",
    "--default-process": "default_process", "--network": "network", "--creation-time": "creation_time",
    "--pull-policy": "pull_policy", "--builder": "builder", "-B": "builder",
}  # fmt: skip


def request_from_options(image: str, options: Mapping[str, Any], request: BuildRequest) -> BuildRequest:
    """*request* with kbld's ``pack.build`` fields applied (see the module doc)."""
    for key in options:
        if key not in ("builder", "buildpacks", "clearCache", "rawOptions"):
            raise UsageError(f"pack.build.{key} is not a field cnb knows (builder, buildpacks, clearCache, rawOptions)")
    fields: dict[str, Any] = {"env": list(request.env), "buildpacks": list(request.buildpacks)}
    if options.get("builder") is not None:
        fields["builder"] = str(options["builder"])
    fields["buildpacks"] += [str(b) for b in _strings(options.get("buildpacks"), "pack.build.buildpacks")]
    if options.get("clearCache"):
        fields["clear_cache"] = True
    raw = list(_strings(options.get("rawOptions"), "pack.build.rawOptions"))
    while raw:
        word = raw.pop(0)
        name, eq, inline = word.partition("=")
        if name == "--clear-cache" and not eq:
            fields["clear_cache"] = True
            continue
        if name not in _RAW_VALUE:
            raise UsageError(f"pack.build.rawOptions: {word!r} has no cnb build equivalent")
        if not eq and not raw:
            raise UsageError(f"pack.build.rawOptions: {name} needs a value")
        value = inline if eq else raw.pop(0)
        dest = _RAW_VALUE[name]
        if dest in ("env", "buildpacks"):
            fields[dest].append(value)
        else:
            fields[dest] = value
    fields["env"], fields["buildpacks"] = tuple(fields["env"]), tuple(fields["buildpacks"])
    return replace(request, **fields)


def _strings(value: object, where: str) -> Sequence[str]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"{where}: expected a list of strings")
    return value


class BuildpacksBuilder:
    name = "buildpacks"

    def build(self, ctx: PlatformContext, request: SourceBuild, reporter: Reporter) -> BuiltImage:
        target = f"local:{common.scratch_name(request.name)}"
        base = BuildRequest(image=target, path=request.source)
        outcome = run_build(ctx, request_from_options(request.name, request.options, base), reporter)
        return BuiltImage(target, outcome.digest)

    def push(self, ctx: PlatformContext, image: BuiltImage, destination: str, tags: tuple[str, ...] = ()) -> Pushed:
        return common.push(ctx, image, destination, tags)

    def pull_credential(self, ctx: PlatformContext, registry: str) -> Credential | None:
        return common.pull_credential(ctx, registry)
