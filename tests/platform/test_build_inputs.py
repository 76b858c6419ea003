"""The inputs of ``cnb build``: app copy with include/exclude, env flags, volumes, destinations, config."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnbplatform.errors import UsageError
from cnbplatform.files.project_toml import ProjectDescriptor
from cnbplatform.platform.build import BuildRequest, destination, parse_volume
from cnbplatform.platform.build_workspace import copy_app, parse_env, write_platform_env
from cnbplatform.platform.config import CnbConfig, load_config, save_config
from cnbplatform.platform.context import creation_epoch


def make_app(root: Path) -> Path:
    app = root / "app"
    for rel in ("main.py", "static/logo.svg", "tests/test_x.py", "debug.log", ".git/HEAD"):
        (app / rel).parent.mkdir(parents=True, exist_ok=True)
        (app / rel).write_text(rel)
    (app / "link").symlink_to("main.py")
    (app / "main.py").chmod(0o755)
    return app


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_exclude_removes_files_before_the_build(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    project = tmp_path / "project.toml"
    project.write_text('[_]\nschema-version = "0.2"\n[io.buildpacks]\nexclude = ["tests/", "*.log", ".git"]\n')
    out = tmp_path / "out"
    copy_app(app, out, ProjectDescriptor.load(project))
    assert files(out) == {"main.py", "static/logo.svg", "link"}
    assert (out / "link").is_symlink() and (out / "main.py").stat().st_mode & 0o777 == 0o755


def test_include_keeps_only_matches(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    project = tmp_path / "project.toml"
    project.write_text('[_]\nschema-version = "0.2"\n[io.buildpacks]\ninclude = ["*.py"]\n')
    out = tmp_path / "out"
    copy_app(app, out, ProjectDescriptor.load(project))
    assert files(out) == {"main.py", "tests/test_x.py"}


def test_without_descriptor_everything_is_copied(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    out = tmp_path / "out"
    assert copy_app(app, out, None) == 6  # five files and a symlink
    assert files(out) == files(app)


def test_env_flags_and_files(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nA=1\nB=from-file\n\nC=x=y\n")
    env = parse_env(["B=from-flag", "HOME_VAR", "MISSING"], [env_file], {"HOME_VAR": "host"})
    assert env == {"A": "1", "B": "from-flag", "C": "x=y", "HOME_VAR": "host"}
    platform = tmp_path / "platform"
    (platform / "env").mkdir(parents=True)
    write_platform_env(platform, {"A": "exact\n bytes"})
    assert (platform / "env" / "A").read_text() == "exact\n bytes"
    with pytest.raises(UsageError):
        write_platform_env(platform, {"BAD/NAME": "x"})
    with pytest.raises(UsageError):
        parse_env(["=x"], [], {})


def test_destinations_and_flags(tmp_path: Path) -> None:
    assert destination(BuildRequest(image="app"), "app") == "local:app"
    assert destination(BuildRequest(image="r.io/a", publish=True), "r.io/a") == "docker://r.io/a"
    assert destination(BuildRequest(image="a", daemon=True), "a") == "docker-daemon:a"
    assert destination(BuildRequest(image="x"), "oci:/tmp/l:t") == "oci:/tmp/l:t"
    assert creation_epoch("1700000000") == 1700000000 and creation_epoch(None) is None
    assert creation_epoch("now") is not None
    with pytest.raises(UsageError):
        creation_epoch("yesterday")
    mount = parse_volume(f"{tmp_path}:/data:ro")
    assert mount.target == "/data" and mount.read_only
    for bad in ("nocolon", f"{tmp_path}:relative", f"{tmp_path}:/x:rx", "/does/not/exist:/x"):
        with pytest.raises(UsageError):
            parse_volume(bad)


def test_config_round_trip(tmp_path: Path) -> None:
    assert load_config(tmp_path) == CnbConfig()
    config = CnbConfig(default_builder="cnb/tiny", insecure_registries=["r:5000"], registry_mirrors={"docker.io": "m"})
    save_config(tmp_path, config)
    assert load_config(tmp_path) == config


def test_host_ca_certs_mount_and_env(tmp_path: Path) -> None:
    from cnbplatform.platform.build import HOST_CA_PATH, host_ca_mount

    bundle = tmp_path / "ca.crt"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    mount, env = host_ca_mount(bundle)
    assert mount.read_only and mount.target == HOST_CA_PATH and mount.source == bundle.resolve()
    assert env["PIP_CERT"] == env["NODE_EXTRA_CA_CERTS"] == env["SSL_CERT_FILE"] == HOST_CA_PATH
    with pytest.raises(UsageError):
        host_ca_mount(tmp_path / "missing.crt")


def test_the_lifecycle_inputs_of_a_build_are_typed_from_the_request(tmp_path: Path) -> None:
    """run_build hands the phases typed inputs: the creation time as a number, time limits as seconds (none for 0),
    where the image goes as addresses decided once, the cache image and run image named as the request says."""
    from cnbplatform.errors import InvalidReferenceError
    from cnbplatform.oci.address import StoreKind
    from cnbplatform.platform.build import decide_outputs, phase_settings
    from cnbplatform.platform.build_workspace import Workspace

    request = BuildRequest(
        image="registry.example:5000/app:1", publish=True, tags=("registry.example:5000/app:latest",),
        creation_time="1700000000", detect_timeout=0, build_timeout=30.0, clear_cache=True,
        cache_image="registry.example:5000/app-cache", run_image="run:1", default_process="", network="none",
    )  # fmt: skip
    outputs = decide_outputs(request)
    assert outputs.names == ("docker://registry.example:5000/app:1", "docker://registry.example:5000/app:latest")
    assert [a.kind for a in outputs.addresses] == [StoreKind.REGISTRY, StoreKind.REGISTRY]
    ws = Workspace.in_dir(tmp_path / "ws")
    root = tmp_path / "builder"
    settings = phase_settings(
        request, ws, root, "builder-image", root / "cnb" / "buildpacks", root / "cnb" / "order.toml",
        root / "cnb" / "run.toml", tmp_path / "launcher", tmp_path / "cache", outputs,
    )  # fmt: skip
    assert settings.source_date_epoch == 1700000000
    assert settings.outputs == outputs.addresses and settings.images == ("docker://registry.example:5000/app:1",)
    assert settings.tags == ("docker://registry.example:5000/app:latest",)
    assert settings.detect_timeout is None and settings.build_timeout == 30.0
    assert settings.skip_layers is True and settings.process_type is None and settings.network == "none"
    assert settings.cache_image == "docker://registry.example:5000/app-cache" and settings.cache_dir is None
    assert settings.run_image == "run:1" and settings.build_image == "builder-image"
    assert settings.platform_api == "0.15" and settings.layers == tmp_path / "ws" / "layers"
    assert settings.analyzed == tmp_path / "ws" / "layers" / "analyzed.toml"
    assert settings.build_config == root / "cnb" / "build-config"
    local = decide_outputs(BuildRequest(image="app", tags=("app:v2",)))
    assert local.names == ("local:app", "local:app:v2")
    assert [a.kind for a in local.addresses] == [StoreKind.LOCAL, StoreKind.LOCAL]
    with pytest.raises(InvalidReferenceError, match="digest"):
        decide_outputs(BuildRequest(image="app", tags=("app@sha256:" + "a" * 64,)))
