"""Input images come from where their name says (docs/design.md §3 decision 11): a builder or run image named by a
registry reference is pulled (under --pull-policy, through `cnb config registry-mirrors`) into the local store and
read from there; the run image the app records is the one it was built on, so a later rebase onto a newer one of
that name needs no --force."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, Cnb
from tests.support.builders import make_tiny_builder
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CNB_HOME with the tiny base images and builder (cnb/tiny-builder), shared by the module."""
    home = tmp_path_factory.mktemp("tiny-sources")
    make_tiny_builder(home)
    yield home


@pytest.fixture
def app(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    subprocess.run(["cp", "-a", str(REPO / "examples" / "shell"), str(path)], check=True)
    return path


def copied_home(cnb: Cnb, tiny_home: Path) -> Cnb:
    """*cnb* with a copy of the tiny home (its base images and builder) as its $CNB_HOME."""
    subprocess.run(["cp", "-a", str(tiny_home), str(cnb.home)], check=True)
    return cnb


def labels(cnb: Cnb, image: str) -> dict[str, str]:
    details = json.loads(cnb("image", "inspect", "--json", image).stdout)
    return dict(details["image"]["labels"] or {})


def run_image_of(cnb: Cnb, image: str) -> dict[str, str]:
    return dict(json.loads(labels(cnb, image)["io.buildpacks.lifecycle.metadata"])["runImage"])


def local_names(cnb: Cnb) -> list[str]:
    return [entry["name"] for entry in json.loads(cnb("image", "ls", "--json").stdout)]


def layer_digests(cnb: Cnb, image: str) -> list[str]:
    details = json.loads(cnb("image", "inspect", "--json", image).stdout)
    return [layer["digest"] for layer in details["image"]["layers"]]


@pytest.mark.parametrize("policy", ["always", "if-not-present"])
def test_a_builder_from_a_registry_builds_on_the_first_try(
    cnb: Cnb, tiny_home: Path, app: Path, registry: RunningRegistry, policy: str
) -> None:
    """The first build with a registry builder used to crash (its image was read after the client was closed)."""
    source = Cnb(tiny_home, {**cnb.env, "CNB_HOME": str(tiny_home)})
    builder = f"{registry.host}/sources/tiny-builder-{policy}:1"
    source("image", "copy", "local:cnb/tiny-builder", f"docker://{builder}")
    home = tiny_home.parent / f"bases-only-{policy}"
    subprocess.run(["cp", "-a", str(tiny_home), str(home)], check=True)
    subprocess.run(["rm", "-rf", str(home / "rootfs")], check=True)
    user = Cnb(home, {**cnb.env, "CNB_HOME": str(home)})
    user("image", "rm", "cnb/tiny-builder")
    assert builder not in local_names(user)

    # the builder's run image cnb/tiny-run exists only here: `always` would pull docker.io/cnb/tiny-run
    args = ("--builder", builder, "--path", str(app), "--pull-policy", policy, "--run-image", "local:cnb/tiny-run")
    first = user("build", "first-app", *args)
    assert f"pulling {builder}" in first.stderr + first.stdout
    assert "Successfully built first-app" in first.stdout, first.stderr
    assert "Traceback" not in first.stderr
    assert builder in local_names(user)  # the builder was copied into the local store
    second = user("build", "first-app", *args)
    assert (f"pulling {builder}" in second.stderr + second.stdout) == (policy == "always")
    assert "Successfully built first-app" in second.stdout
    assert "Hello from a cnb-built image!" in user("run", "first-app").stdout
    assert run_image_of(user, "first-app")["image"] == "cnb/tiny-run"  # a name, without the store prefix


def test_pull_policy_never_refuses_a_builder_that_is_not_local(cnb: Cnb, app: Path, registry: RunningRegistry) -> None:
    done = cnb("build", "x", "--builder", f"{registry.host}/sources/nowhere:1", "--path", str(app),
               "--pull-policy", "never", check=False)  # fmt: skip
    assert done.returncode != 0
    assert "--pull-policy is never" in done.stderr and "Traceback" not in done.stderr


def test_run_image_named_by_a_registry_reference_is_the_registrys(
    cnb: Cnb, tiny_home: Path, app: Path, registry: RunningRegistry
) -> None:
    user = copied_home(cnb, tiny_home)
    run_ref = f"{registry.host}/sources/other-run:1"
    user("image", "copy", "local:cnb/tiny-run", f"docker://{run_ref}")
    # a different image under the same name in the local store must not be the one used: the name has a host,
    # and `always` pulls it again
    user("image", "copy", "local:cnb/tiny-build", f"local:{run_ref}")
    user("build", "app-on-other", "--builder", "local:cnb/tiny-builder", "--path", str(app),
         "--run-image", run_ref, "--pull-policy", "always")  # fmt: skip
    remote_layers = skopeo_inspect(f"docker://{run_ref}")["Layers"]
    app_layers = layer_digests(user, "app-on-other")
    assert app_layers[: len(remote_layers)] == remote_layers
    recorded = run_image_of(user, "app-on-other")
    assert recorded["image"] == run_ref
    assert recorded["reference"] == f"{run_ref.rsplit(':', 1)[0]}@{skopeo_inspect(f'docker://{run_ref}')['Digest']}"


def test_a_docker_hub_name_is_pulled_through_the_configured_mirror(
    cnb: Cnb, tiny_home: Path, app: Path, registry: RunningRegistry
) -> None:
    user = copied_home(cnb, tiny_home)
    # only the test registry has it: docker.io/cnbtest/mirrored-run:1 lives there as cnbtest/mirrored-run:1
    user("image", "copy", "local:cnb/tiny-run", f"docker://{registry.host}/cnbtest/mirrored-run:1")
    user("config", "registry-mirrors", "add", "docker.io", "--mirror", registry.host)
    assert f"docker.io -> {registry.host}" in user("config", "registry-mirrors", "list").stdout
    user("build", "app-mirrored", "--builder", "cnb/tiny-builder", "--path", str(app),
         "--run-image", "cnbtest/mirrored-run:1")  # fmt: skip
    assert "GET /v2/cnbtest/mirrored-run/manifests/1" in registry.log_text()
    assert "cnbtest/mirrored-run:1" in local_names(user)  # kept under its own (Docker Hub) name
    recorded = run_image_of(user, "app-mirrored")
    assert recorded["image"] == "cnbtest/mirrored-run:1"
    assert recorded["reference"].startswith("docker.io/cnbtest/mirrored-run@sha256:")


def _push_newer(user: Cnb, tiny_home: Path, name: str, content: bytes) -> None:
    """A newer run image under *name* in the registry: tiny-run plus a layer with *content*."""
    from tests.support.rebase import write_updated_run_image

    write_updated_run_image(user.home, "cnb/tiny-run", "cnb/tiny-run-updated", content)
    user("image", "copy", "local:cnb/tiny-run-updated", f"docker://{name}")


@pytest.mark.parametrize("publish", [False, True])
def test_build_on_a_run_image_then_rebase_onto_a_newer_one_needs_no_force(
    cnb: Cnb, tiny_home: Path, app: Path, registry: RunningRegistry, publish: bool
) -> None:
    user = copied_home(cnb, tiny_home)
    run_ref = f"{registry.host}/sources/rebase-run-{int(publish)}:1"
    user("image", "copy", "local:cnb/tiny-run", f"docker://{run_ref}")
    image = f"{registry.host}/sources/rebase-app-{int(publish)}:1" if publish else "rebase-app"
    where = ["--publish"] if publish else []
    user("build", image, "--builder", "cnb/tiny-builder", "--path", str(app), "--run-image", run_ref, *where)
    inspect_as = f"docker://{image}" if publish else image
    assert run_image_of(user, inspect_as)["image"] == run_ref
    before = layer_digests(user, inspect_as)

    _push_newer(user, tiny_home, run_ref, b"newer\n")
    newer_layers = skopeo_inspect(f"docker://{run_ref}")["Layers"]
    done = user("rebase", image, "--run-image", run_ref, *where)
    assert "--force" not in done.stderr
    after = layer_digests(user, inspect_as)
    assert after[: len(newer_layers)] == newer_layers
    assert after != before
    assert after[len(newer_layers) :] == before[len(newer_layers) - 1 :]  # the app's layers, unchanged


def _semver(text: str) -> tuple[int, int, int]:
    core = text.split("+", 1)[0].split("-", 1)[0]
    major, minor, patch = (int(part) for part in core.split("."))
    return major, minor, patch


def test_builder_and_app_labels_read_as_pack_and_the_go_lifecycle_write_them(
    cnb: Cnb, tiny_home: Path, app: Path
) -> None:
    user = copied_home(cnb, tiny_home)
    builder = labels(user, "cnb/tiny-builder")
    assert builder["io.buildpacks.extension.layers"] == "{}"  # pack: always there, {} without extensions
    assert json.loads(builder["io.buildpacks.buildpack.order-extensions"]) is None  # pack: a nil order
    lifecycle = json.loads(builder["io.buildpacks.builder.metadata"])["lifecycle"]
    assert lifecycle["apis"]["platform"]["supported"] == [f"0.{n}" for n in range(7, 16)]
    assert lifecycle["apis"]["buildpack"]["supported"] == [f"0.{n}" for n in range(7, 13)]
    assert lifecycle["api"] == {"buildpack": "0.7", "platform": "0.7"}
    assert _semver(lifecycle["version"]) >= (0, 7, 4)  # pack runs the creator from lifecycle 0.7.4 on
    assert builder["io.buildpacks.lifecycle.version"] == lifecycle["version"]
    lifecycle_apis = json.loads(builder["io.buildpacks.lifecycle.apis"])  # the Go lifecycle image's label
    assert lifecycle_apis["platform"] == {"deprecated": [], "supported": [f"0.{n}" for n in range(7, 16)]}

    user("build", "labelled-app", "--builder", "cnb/tiny-builder", "--path", str(app))
    app_labels = labels(user, "labelled-app")
    run_image = json.loads(app_labels["io.buildpacks.lifecycle.metadata"])["runImage"]
    tiny_run = json.loads(user("image", "inspect", "--json", "cnb/tiny-run").stdout)["digest"]
    assert run_image["image"] == "cnb/tiny-run"
    assert run_image["reference"] == f"docker.io/cnb/tiny-run@{tiny_run}"
    launcher = json.loads(app_labels["io.buildpacks.build.metadata"])["launcher"]
    assert _semver(launcher["version"]) >= (0, 5, 0)  # pack inspect shows the run image reference from 0.5.0


def test_cache_and_previous_images_named_by_a_registry_reference_are_the_registrys(
    cnb: Cnb, tiny_home: Path, app: Path, registry: RunningRegistry
) -> None:
    user = copied_home(cnb, tiny_home)
    cache = f"{registry.host}/sources/cache:1"
    previous = f"{registry.host}/sources/previous-app:1"
    user("build", "previous-app", "--builder", "cnb/tiny-builder", "--path", str(app))
    user("image", "copy", "local:previous-app", f"docker://{previous}")
    done = user("build", "cached-app", "--builder", "cnb/tiny-builder", "--path", str(app),
                "--cache-image", cache, "--previous-image", previous)  # fmt: skip
    assert "Successfully built cached-app" in done.stdout
    assert skopeo_inspect(f"docker://{cache}")["Layers"]  # the cache went to the registry, as its name says
    assert "GET /v2/sources/previous-app/manifests/1" in registry.log_text()
