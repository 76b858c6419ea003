"""``cnb lifecycle <phase>``: the phases one by one, with the spec's inputs as flags or ``CNB_*`` variables
(CNB-SPEC §2), for CI systems and Kubernetes jobs that drive them inside a build-image container."""

from __future__ import annotations

import typer

from cnbplatform.cli.commands import phase_command

app = typer.Typer(
    help="Run lifecycle phases one by one (analyze, detect, restore, build, export, create, rebase).",
    no_args_is_help=True,
)

HELP = {
    "analyze": "Read the previous image and the run image; write analyzed.toml.",
    "detect": "Find the first passing group of buildpacks; write group.toml and plan.toml.",
    "restore": "Restore store.toml, layer metadata and cached layers.",
    "build": "Run bin/build of each buildpack in the group; write metadata.toml.",
    "export": "Assemble the app image on the run image, write it to every tag, and write the cache.",
    "create": "analyze, detect, restore, build and export in one go.",
    "rebase": "Put the app image on a new run image (from --run-image or its label) and save every tag.",
    "launch": "The launcher's logic on this machine: run --process-type (else the default process, else the "
    "given command) of the app in --layers/--app; CNB_PROCESS_TYPE is ignored, as by the launcher.",
}


def _make(phase: str):  # type: ignore[no-untyped-def]
    def command(
        images: list[str] = typer.Argument(None, help="Output image and extra tags (analyze, export, create, rebase)."),
        platform_api: str | None = typer.Option(None, "--platform-api", help="CNB_PLATFORM_API"),
        layers: str | None = typer.Option(None, "--layers", help="CNB_LAYERS_DIR (default /layers)"),
        app_dir: str | None = typer.Option(None, "--app", help="CNB_APP_DIR (default /workspace)"),
        platform: str | None = typer.Option(None, "--platform", help="CNB_PLATFORM_DIR (default /platform)"),
        buildpacks: str | None = typer.Option(None, "--buildpacks", help="CNB_BUILDPACKS_DIR"),
        build_config: str | None = typer.Option(None, "--build-config", help="CNB_BUILD_CONFIG_DIR"),
        analyzed: str | None = typer.Option(None, "--analyzed", help="CNB_ANALYZED_PATH"),
        group: str | None = typer.Option(None, "--group", help="CNB_GROUP_PATH"),
        plan: str | None = typer.Option(None, "--plan", help="CNB_PLAN_PATH"),
        order: str | None = typer.Option(None, "--order", help="CNB_ORDER_PATH"),
        run: str | None = typer.Option(None, "--run", help="CNB_RUN_PATH (default /cnb/run.toml)"),
        stack: str | None = typer.Option(None, "--stack", help="CNB_STACK_PATH (Platform API < 0.12: /cnb/stack.toml)"),
        system: str | None = typer.Option(None, "--system", help="CNB_SYSTEM_PATH"),
        report: str | None = typer.Option(None, "--report", help="CNB_REPORT_PATH"),
        project_metadata: str | None = typer.Option(None, "--project-metadata", help="CNB_PROJECT_METADATA_PATH"),
        cache_dir: str | None = typer.Option(None, "--cache-dir", help="CNB_CACHE_DIR"),
        cache_image: str | None = typer.Option(None, "--cache-image", help="CNB_CACHE_IMAGE"),
        previous_image: str | None = typer.Option(None, "--previous-image", help="CNB_PREVIOUS_IMAGE"),
        run_image: str | None = typer.Option(None, "--run-image", help="CNB_RUN_IMAGE"),
        uid: int | None = typer.Option(None, "--uid", help="CNB_USER_ID"),
        gid: int | None = typer.Option(None, "--gid", help="CNB_GROUP_ID"),
        skip_layers: bool | None = typer.Option(None, "--skip-layers/--no-skip-layers", help="CNB_SKIP_LAYERS"),
        skip_restore: bool | None = typer.Option(None, "--skip-restore", help="CNB_SKIP_RESTORE"),
        process_type: str | None = typer.Option(None, "--process-type", help="CNB_PROCESS_TYPE"),
        launcher: str | None = typer.Option(None, "--launcher", help="launcher (/cnb/lifecycle/launcher)"),
        daemon: bool | None = typer.Option(None, "--daemon", help="CNB_USE_DAEMON: images in the Docker engine"),
        parallel: bool | None = typer.Option(None, "--parallel", help="CNB_PARALLEL_EXPORT"),
        tag: list[str] = typer.Option([], "--tag", help="Extra tags for the output image."),
        sandbox: str | None = typer.Option(None, "--sandbox", help="host (in a build container) or bwrap"),
        build_image: str | None = typer.Option(None, "--build-image", help="Build image for --sandbox bwrap"),
        detect_timeout: float | None = typer.Option(None, "--detect-timeout", help="bin/detect timeout (600 s)"),
        build_timeout: float | None = typer.Option(None, "--build-timeout", help="Seconds per bin/build"),
        network: bool | None = typer.Option(
            None, "--network/--no-network", help="Buildpacks get a network (CNB_NETWORK: private, host or none)"
        ),
        log_level: str | None = typer.Option(None, "--log-level", help="CNB_LOG_LEVEL"),
        force: bool | None = typer.Option(None, "--force", help="CNB_FORCE_REBASE: rebase despite failed checks"),
        insecure_registry: list[str] = typer.Option([], "--insecure-registry", help="CNB_INSECURE_REGISTRIES"),
    ) -> None:
        flags = {
            "platform_api": platform_api, "layers": layers, "app": app_dir, "platform": platform,
            "buildpacks": buildpacks, "build_config": build_config, "analyzed": analyzed, "group": group,
            "plan": plan, "order": order, "run": run, "stack": stack, "system": system, "report": report,
            "project_metadata": project_metadata, "cache_dir": cache_dir, "cache_image": cache_image,
            "previous_image": previous_image, "run_image": run_image, "uid": uid, "gid": gid,
            "skip_layers": skip_layers, "skip_restore": skip_restore, "process_type": process_type,
            "launcher": launcher, "daemon": daemon, "parallel": parallel, "sandbox": sandbox,
            "build_image": build_image, "detect_timeout": detect_timeout, "build_timeout": build_timeout,
            "network": network, "log_level": log_level, "force": force,
        }  # fmt: skip
        code = phase_command(phase, flags, images, tag, insecure_registry)
        raise typer.Exit(code)

    command.__doc__ = HELP[phase]
    return command


for _phase in HELP:
    app.command(_phase, help=HELP[_phase])(_make(_phase))
