"""``cnb build IMAGE --builder B [--path DIR]``: source to image with buildpacks, no daemon (pack's flags)."""

from __future__ import annotations

from pathlib import Path

import typer

from cnbplatform.cli.commands import build_command


def build(
    image: str = typer.Argument(..., help="Image to write: a local name, or a registry reference with --publish."),
    builder: str | None = typer.Option(None, "--builder", "-B", help="Builder image, or a dir with builder.toml."),
    path: Path = typer.Option(Path("."), "--path", "-p", help="The app directory."),
    publish: bool = typer.Option(False, "--publish", help="Write the image to its registry."),
    daemon: bool = typer.Option(False, "--daemon", help="Write the image to the Docker engine (DOCKER_HOST)."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="More names for the image."),
    run_image: str | None = typer.Option(None, "--run-image", help="Run image instead of the builder's."),
    env: list[str] = typer.Option([], "--env", "-e", help="Build-time env: KEY=VALUE, or KEY from this shell."),
    env_file: list[Path] = typer.Option([], "--env-file", help="File of KEY=VALUE lines."),
    buildpack: list[str] = typer.Option([], "--buildpack", "-b", help="Buildpack dir, id@version, .cnb, image."),
    descriptor: Path | None = typer.Option(None, "--descriptor", "-d", help="project.toml (default: <path>)."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Directory cache (default per image)."),
    cache_image: str | None = typer.Option(None, "--cache-image", help="Cache kept as an image."),
    clear_cache: bool = typer.Option(False, "--clear-cache", help="Start without cached layers."),
    previous_image: str | None = typer.Option(None, "--previous-image", help="Reuse layers of this image."),
    default_process: str | None = typer.Option(None, "--default-process", help="Process type to start by default."),
    sbom_output_dir: Path | None = typer.Option(None, "--sbom-output-dir", help="Copy the SBOMs here."),
    report_output_dir: Path | None = typer.Option(None, "--report-output-dir", help="Copy report.toml here."),
    creation_time: str | None = typer.Option(None, "--creation-time", help="now, or seconds since the epoch."),
    pull_policy: str = typer.Option("if-not-present", "--pull-policy", help="always, if-not-present or never."),
    network: str = typer.Option(
        "private", "--network", help="private (outside world, not this machine's loopback), host or none."
    ),
    volume: list[str] = typer.Option([], "--volume", help="HOST:/path[:ro] mounted for buildpacks."),
    insecure_registry: list[str] = typer.Option([], "--insecure-registry", help="Registry over plain HTTP."),
    sandbox: str = typer.Option("bwrap", "--sandbox", help="bwrap (default), docker or host."),
    detect_timeout: float = typer.Option(600.0, "--detect-timeout", help="Seconds one bin/detect may take."),
    host_ca_certs: Path | None = typer.Option(
        None, "--host-ca-certs", help="CA bundle of this machine for buildpacks (TLS-intercepting proxies)."
    ),
    dockerfile: Path | None = typer.Option(
        None, "--dockerfile", help="Build this Dockerfile (BuildKit through DOCKER_HOST, else buildah) instead."
    ),
    using: str | None = typer.Option(
        None, "--using", help="Image builder: buildpacks (default), dockerfile, go, or an installed plug-in."
    ),
    keep_workspace: bool = typer.Option(
        False, "--keep-workspace", help="Keep the build's work dir when the build fails (to look into)."
    ),
) -> None:
    """Build IMAGE from the app in --path with the buildpacks of --builder."""
    build_command(
        image=image, builder=builder, path=path, publish=publish, daemon=daemon, tag=tag, run_image=run_image,
        env=env, env_file=env_file, buildpack=buildpack, descriptor=descriptor, cache_dir=cache_dir,
        cache_image=cache_image, clear_cache=clear_cache, previous_image=previous_image,
        default_process=default_process, sbom_output_dir=sbom_output_dir, report_output_dir=report_output_dir,
        creation_time=creation_time, pull_policy=pull_policy, network=network, volume=volume,
        insecure_registry=insecure_registry, sandbox=sandbox, detect_timeout=detect_timeout,
        host_ca_certs=host_ca_certs, dockerfile=dockerfile, using=using, keep_workspace=keep_workspace,
    )  # fmt: skip
