"""cnb's lifecycle inside a cnb builder image, driven the way Tekton and kpack drive the Go lifecycle.

Each replay runs the task's or the build pod's steps as containers of the builder image on a real Docker engine,
with the volumes as bind mounts and a registry with Basic auth (``--network host``: the engine here has no bridge).
The command lines are those of tektoncd/catalog ``task/buildpacks/0.6/buildpacks.yaml`` and
``task/buildpacks-phases/0.3`` and of kpack's ``pkg/apis/build/v1alpha2/build_pod.go``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.dockerd import RunningDockerd
from tests.support.registry import RunningRegistry, free_port, start_registry

REPO = Path(__file__).resolve().parent.parent.parent
AUTH = ("k8s-user", "k8s-secret-pw")
BUILDER = "cnb-test/k8s-tiny-builder:1"

# a buildpack with a cached layer (counts builds) and a launch layer kept from the previous image
COUNTER_TOML = """api = "0.10"
[buildpack]
id = "cnb-test/counter"
version = "1.0.0"
[[stacks]]
id = "*"
"""
COUNTER_DETECT = "#!/bin/sh\nexit 0\n"
COUNTER_BUILD = r"""#!/bin/sh
set -e
layers="$CNB_LAYERS_DIR"
if [ -f "$layers/counter/count" ]; then
  n=$(cat "$layers/counter/count"); echo "counter restored from cache: $n"
else
  n=0; echo "counter starts"
fi
mkdir -p "$layers/counter"
echo $((n + 1)) > "$layers/counter/count"
printf '[types]\ncache = true\n' > "$layers/counter.toml"
if [ -f "$layers/site.toml" ] && [ ! -d "$layers/site" ]; then
  echo "site layer kept from the previous image"
else
  mkdir -p "$layers/site/public"
  echo "served by a cnb lifecycle in a builder image" > "$layers/site/public/index.html"
fi
printf '[types]\nlaunch = true\n' > "$layers/site.toml"
"""


@dataclass
class K8s:
    registry: RunningRegistry
    docker_env: dict[str, str]
    docker_config: Path
    work: Path
    cnb_env: dict[str, str]

    def bookworm(self) -> str:
        """The same builder on the bookworm test images (mmdebstrap, cached per machine by tests/support)."""
        name = "cnb-test/k8s-bookworm-builder"
        if not (self.work / f"{name.replace('/', '_')}.toml").exists():
            from tests.support.bookworm import EXTRA_PACKAGE, bookworm_images

            images = bookworm_images((EXTRA_PACKAGE,))
            build, run = f"oci:{images.layout}:build", f"oci:{images.layout}:run"
            _make_builder(self.cnb_env, self.work, self.registry, build, run, name)
        return f"{name}:1"

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["docker", "--config", str(self.docker_config), *args], env=self.docker_env,
                              capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(
                f"docker {' '.join(args[:3])}… failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )
        return done

    def digest(self, repository: str, tag: str = "latest") -> str:
        accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
        response = httpx.head(f"{self.registry.url}/v2/{repository}/manifests/{tag}", auth=AUTH,
                              headers={"Accept": accept})  # fmt: skip
        response.raise_for_status()
        return response.headers["Docker-Content-Digest"]

    def manifest_layers(self, repository: str) -> list[str]:
        accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
        response = httpx.get(f"{self.registry.url}/v2/{repository}/manifests/latest", auth=AUTH,
                             headers={"Accept": accept})  # fmt: skip
        response.raise_for_status()
        return [layer["digest"] for layer in response.json()["layers"]]


def _cnb(env: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "cnbplatform", "-q", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert done.returncode == 0, f"cnb {' '.join(args)}: {done.stderr}"


def _make_builder(env: dict[str, str], work: Path, registry: RunningRegistry, build: str, run: str, name: str) -> None:
    """A builder (the counter buildpack, then Procfile) on *build*, its run image *run* pushed to the registry,
    loaded into the Docker engine as *name*."""
    _cnb(env, "image", "copy", run, f"{registry.host}/{name}-run")
    counter = work / "counter"
    if not counter.exists():
        (counter / "bin").mkdir(parents=True)
        (counter / "buildpack.toml").write_text(COUNTER_TOML)
        for script, text in (("detect", COUNTER_DETECT), ("build", COUNTER_BUILD)):
            (counter / "bin" / script).write_text(text)
            (counter / "bin" / script).chmod(0o755)
    (work / f"{name.replace('/', '_')}.toml").write_text(
        f'[[buildpacks]]\nuri = "{counter}"\n[[buildpacks]]\nuri = "{REPO / "buildpacks" / "procfile"}"\n'
        '[[order]]\n[[order.group]]\nid = "cnb-test/counter"\n[[order.group]]\nid = "cnb/procfile"\n'
        f'[build]\nimage = "{build}"\n[[run.images]]\nimage = "{registry.host}/{name}-run"\n'
    )
    _cnb(env, "builder", "create", name, "--config", str(work / f"{name.replace('/', '_')}.toml"))
    _cnb(env, "image", "copy", name, f"docker-daemon:{name}:1")


@pytest.fixture(scope="module")
def k8s(tmp_path_factory: pytest.TempPathFactory, dockerd: RunningDockerd) -> Iterator[K8s]:
    """A registry with Basic auth, and the tiny builder (with the counter buildpack) whose run image is in that
    registry, loaded into the Docker engine; ``k8s.bookworm()`` adds the same builder on bookworm."""
    work = tmp_path_factory.mktemp("k8s-life")
    registry = start_registry(work / "registry", htpasswd=AUTH)
    config = work / "dockerconfig"
    config.mkdir()
    token = base64.b64encode(":".join(AUTH).encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    env = {"CNB_HOME": str(work / "home"), "DOCKER_CONFIG": str(config), "PATH": os.environ["PATH"],
           "PYTHONPATH": str(REPO), "HOME": os.environ.get("HOME", "/root"), "DOCKER_HOST": dockerd.base_url}  # fmt: skip
    tiny = REPO / "builders" / "tiny"
    _cnb(env, "base", "create", "--config", str(tiny / "base.toml"), "--build-image", "cnb/tiny-build",
         "--run-image", "cnb/tiny-run")  # fmt: skip
    _make_builder(env, work, registry, "cnb/tiny-build", "cnb/tiny-run", "cnb-test/k8s-tiny-builder")
    try:
        yield K8s(registry, {**os.environ, "DOCKER_HOST": dockerd.base_url}, config, work, env)
    finally:
        registry.stop()


SITE = "/layers/cnb-test_counter/site/public"


def _app(root: Path, port: int, bookworm: bool = False) -> Path:
    app = root / "source"
    app.mkdir(parents=True)
    if bookworm:  # no busybox there: Python's web server
        web = f"python3 -m http.server {port} --bind 127.0.0.1 --directory {SITE}"
    else:
        web = f"httpd -f -p 127.0.0.1:{port} -h {SITE}"
    (app / "Procfile").write_text(f"web: {web}\n")
    return app


def _volumes(root: Path, mounts: dict[str, str]) -> list[str]:
    args = []
    for name, target in mounts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        args += ["-v", f"{root / name}:{target}"]
    return args


def _serves(k8s: K8s, image: str, port: int) -> str:
    name = f"k8s-app-{port}"
    k8s.docker("run", "-d", "--name", name, "--network", "host", image)
    try:
        deadline = time.monotonic() + 90  # generous: the machine may be busy
        while True:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/index.html", timeout=5).text
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    logs = k8s.docker("logs", name, check=False)
                    raise AssertionError(f"the app never answered: {logs.stdout}{logs.stderr}") from None
                time.sleep(0.3)
    finally:
        k8s.docker("rm", "-f", name, check=False)


# task/buildpacks/0.6 `prepare`, in POSIX sh (the task's script is bash; the builder image has busybox sh):
# chown the cache, /tekton/home, /layers and the source to USER_ID:GROUP_ID, and write each ENV_VARS entry K=V
# as /platform/env/K without a trailing newline
TEKTON_PREPARE = r"""set -e
chown -R "1000:1000" /workspace/cache
for path in /tekton/home /layers /workspace/source; do chown -R "1000:1000" "$path"; done
chmod 775 /workspace/source
mkdir -p /platform/env
for env in "$@"; do
  key="${env%%=*}"; value="${env#*=}"
  if [ -n "$key" ] && [ -n "$value" ]; then printf '%s' "$value" > "/platform/env/$key"; fi
done
"""


@pytest.mark.parametrize("base", ["tiny", "bookworm"])
def test_tekton_buildpacks_task_0_6(k8s: K8s, tmp_path: Path, base: str) -> None:
    builder = k8s.bookworm() if base == "bookworm" else BUILDER
    port = free_port()
    _app(tmp_path, port, bookworm=base == "bookworm")
    shutil.copy(k8s.docker_config / "config.json", tmp_path / "dockerconfig.json")
    volumes = _volumes(tmp_path, {"source": "/workspace/source", "cache": "/workspace/cache",
                                  "dockerconfig": "/workspace/dockerconfig", "layers": "/layers",
                                  "platform": "/platform", "home": "/tekton/home"})  # fmt: skip
    shutil.copy(tmp_path / "dockerconfig.json", tmp_path / "dockerconfig" / "config.json")
    app_image = f"{k8s.registry.host}/apps/tekton-{base}"
    step_env = ["-e", "CNB_PLATFORM_API=0.9", "-e", "HOME=/tekton/home"]
    create_args = ["-app=/workspace/source/", "-cache-dir=/workspace/cache", "-cache-image=", "-uid=1000",
                   "-gid=1000", "-layers=/layers", "-platform=/platform", "-report=/layers/report.toml",
                   "-process-type=web", "-skip-restore=false", f"-previous-image={app_image}", "-run-image=",
                   app_image]  # fmt: skip

    def run_task() -> str:
        k8s.docker("run", "--rm", "--network", "host", "--user", "0:0", *volumes, *step_env,
                   "--entrypoint", "/bin/sh", builder, "-c", TEKTON_PREPARE, "prepare", "GREETING=hello", "EMPTY=")  # fmt: skip
        created = k8s.docker("run", "--rm", "--network", "host", "--user", "1000:1000", *volumes, *step_env,
                             "-e", "DOCKER_CONFIG=/workspace/dockerconfig", "--entrypoint", "/cnb/lifecycle/creator",
                             builder, *create_args)  # fmt: skip
        return created.stdout + created.stderr

    first = run_task()
    assert "counter starts" in first, first
    assert (tmp_path / "platform" / "env" / "GREETING").read_bytes() == b"hello"
    assert not (tmp_path / "platform" / "env" / "EMPTY").exists()
    # the task's `results` step: grep "digest" /layers/report.toml | cut -d'"' -f2
    report = (tmp_path / "layers" / "report.toml").read_text()
    digest_line = next(line for line in report.splitlines() if "digest" in line)
    assert digest_line.split('"')[1] == k8s.digest(f"apps/tekton-{base}")
    assert _serves(k8s, app_image, port).strip() == "served by a cnb lifecycle in a builder image"
    second = run_task()
    assert "counter restored from cache: 1" in second, second


@pytest.mark.parametrize("base", ["tiny", "bookworm"])
def test_tekton_buildpacks_phases_task_0_3(k8s: K8s, tmp_path: Path, base: str) -> None:
    builder = k8s.bookworm() if base == "bookworm" else BUILDER
    builder_ref = f"{k8s.registry.host}/{builder}"
    k8s.docker("tag", builder, builder_ref)
    k8s.docker("push", builder_ref)
    # get-labels-and-env: skopeo inspect of the builder, then the task's jq checks
    inspected = json.loads(subprocess.run(
        ["skopeo", "inspect", "--authfile", str(k8s.docker_config / "config.json"), "--tls-verify=false",
         f"docker://{builder_ref}"], capture_output=True, text=True, check=True, timeout=120).stdout)  # fmt: skip
    labels = inspected["Labels"]
    platforms = json.loads(labels["io.buildpacks.builder.metadata"])["lifecycle"]["apis"]["platform"]["supported"]
    assert "0.13" in platforms
    assert labels["io.buildpacks.extension.layers"] == "{}"  # "empty": the build step runs, not the extender
    env = dict(item.split("=", 1) for item in inspected["Env"])
    uid, gid = env["CNB_USER_ID"], env["CNB_GROUP_ID"]
    assert (uid, gid) == ("1000", "1000")

    port = free_port()
    _app(tmp_path, port, bookworm=base == "bookworm")
    volumes = _volumes(tmp_path, {"source": "/workspace/source", "cache": "/workspace/cache", "layers": "/layers",
                                  "platform": "/platform", "home": "/tekton/home"})  # fmt: skip
    (tmp_path / "home" / ".docker").mkdir()
    shutil.copy(k8s.docker_config / "config.json", tmp_path / "home" / ".docker" / "config.json")
    for name in ("source", "cache", "layers", "home"):  # the prepare step's chown -R $CNB_USER_ID:$CNB_GROUP_ID
        subprocess.run(["chown", "-R", f"{uid}:{gid}", str(tmp_path / name)], check=True)
    app_image = f"{k8s.registry.host}/apps/phases-{base}"
    step_env = ["-e", "CNB_PLATFORM_API=0.13", "-e", "HOME=/tekton/home", "-e", "CNB_EXPERIMENTAL_MODE=silent"]
    out = ""
    steps = (
        ("analyzer", "-log-level=info", "-layers=/layers", "-run-image=", "-cache-image=", f"-uid={uid}",
         f"-gid={gid}", "-insecure-registry=", "-tag=", "-skip-layers=false", app_image),
        ("detector", "-log-level=info", "-app=/workspace/source/", "-group=/layers/group.toml",
         "-plan=/layers/plan.toml", "-layers=/layers", "-platform=/platform"),
        # the restore step is a bash script around this command line (the tiny builder has no bash: run directly)
        ("restorer", "-log-level=info", f"-build-image={builder_ref}", "-group=/layers/group.toml",
         "-layers=/layers", "-cache-dir=/workspace/cache", "-cache-image=", f"-uid={uid}", f"-gid={gid}",
         "-insecure-registry=", "-skip-layers=false"),
        ("builder", "-log-level=info", "-app=/workspace/source/", "-layers=/layers", "-group=/layers/group.toml",
         "-plan=/layers/plan.toml", "-platform=/platform"),
        ("exporter", "-log-level=info", "-app=/workspace/source/", "-layers=/layers", "-group=/layers/group.toml",
         "-cache-dir=/workspace/cache", "-cache-image=", "-report=/layers/report.toml", "-process-type=web",
         f"-uid={uid}", f"-gid={gid}", "-insecure-registry=", app_image),
    )  # fmt: skip
    for phase, *args in steps:
        done = k8s.docker("run", "--rm", "--network", "host", "--user", f"{uid}:{gid}", *volumes, *step_env,
                          "--entrypoint", f"/cnb/lifecycle/{phase}", builder_ref, *args)  # fmt: skip
        out += done.stdout + done.stderr
    assert "counter starts" in out, out
    # the results step reads [image] of report.toml with tomllib
    image = tomllib.loads((tmp_path / "layers" / "report.toml").read_text())["image"]
    assert image["digest"] == k8s.digest(f"apps/phases-{base}")
    assert image["tags"] == [app_image]
    assert _serves(k8s, app_image, port).strip() == "served by a cnb lifecycle in a builder image"


def _phase(k8s: K8s, builder: str, volumes: list[str], env: list[str], phase: str, *args: str) -> str:
    done = k8s.docker("run", "--rm", "--network", "host", "--user", "1000:1000", "--cap-drop", "ALL", "--security-opt",
                      "no-new-privileges", *volumes, *env, "--entrypoint", f"/cnb/lifecycle/{phase}", builder,
                      *args)  # fmt: skip
    return done.stdout + done.stderr


@pytest.mark.parametrize(("platform_api", "base"), [("0.9", "tiny"), ("0.7", "tiny"), ("0.9", "bookworm")])
def test_kpack_build_pod(k8s: K8s, tmp_path: Path, platform_api: str, base: str) -> None:
    builder = k8s.bookworm() if base == "bookworm" else BUILDER
    port = free_port()
    app = _app(tmp_path / "app", port, bookworm=base == "bookworm")
    volumes = _volumes(tmp_path, {"layers": "/layers", "home": "/builder/home", "workspace": "/workspace",
                                  "platform": "/platform", "report": "/var/report", "cache": "/cache"})  # fmt: skip
    # kpack's prepare (build-init): the source into /workspace, the registry secret as a docker config under HOME
    (tmp_path / "home" / ".docker").mkdir()
    shutil.copy(k8s.docker_config / "config.json", tmp_path / "home" / ".docker" / "config.json")
    shutil.copytree(app, tmp_path / "workspace", dirs_exist_ok=True)
    for name in ("layers", "home", "workspace", "platform", "report", "cache"):
        subprocess.run(["chown", "-R", "1000:1000", str(tmp_path / name)], check=True)
    app_image = f"{k8s.registry.host}/apps/kpack-{base}-{platform_api.replace('.', '-')}"
    run_image = f"{k8s.registry.host}/{builder.split(':')[0]}-run"
    env = ["-e", f"CNB_PLATFORM_API={platform_api}", "-e", "HOME=/builder/home",
           "-e", "SERVICE_BINDING_ROOT=/platform/bindings"]  # fmt: skip

    def build_pod(previous: bool) -> str:
        out = _phase(k8s, builder, volumes, env, "analyzer", "-layers=/layers", "-analyzed=/layers/analyzed.toml",
                     f"-run-image={run_image}", *([f"-previous-image={app_image}"] if previous else []), app_image)  # fmt: skip
        out += _phase(k8s, builder, volumes, env, "detector", "-app=/workspace", "-group=/layers/group.toml",
                      "-plan=/layers/plan.toml")  # fmt: skip
        out += _phase(k8s, builder, volumes, env, "restorer", "-group=/layers/group.toml", "-layers=/layers",
                      "-cache-dir=/cache", "-analyzed=/layers/analyzed.toml")  # fmt: skip
        out += _phase(k8s, builder, volumes, env, "builder", "-layers=/layers", "-app=/workspace", "-group=/layers/group.toml",
                      "-plan=/layers/plan.toml")  # fmt: skip
        out += _phase(k8s, builder, volumes, [*env, "-e", "SOURCE_DATE_EPOCH=1700000000", "-e", f"CNB_RUN_IMAGE={run_image}"],
                      "exporter", "-layers=/layers", "-app=/workspace", "-group=/layers/group.toml",
                      "-analyzed=/layers/analyzed.toml", "-project-metadata=/layers/project-metadata.toml",
                      "-cache-dir=/cache", "-process-type=web", "-report=/var/report/report.toml", app_image)  # fmt: skip
        return out

    first = build_pod(previous=False)
    assert "counter starts" in first, first
    repository = app_image.split("/", 1)[1]
    assert f'digest = "{k8s.digest(repository)}"' in (tmp_path / "report" / "report.toml").read_text()
    layers_before = k8s.manifest_layers(repository)
    assert _serves(k8s, app_image, port).strip() == "served by a cnb lifecycle in a builder image"
    # a rebuild: each init container in a fresh pod, /layers empty again, the cache volume kept
    for name in ("layers", "report"):
        shutil.rmtree(tmp_path / name)
        (tmp_path / name).mkdir()
        subprocess.run(["chown", "1000:1000", str(tmp_path / name)], check=True)
    second = build_pod(previous=True)
    assert "counter restored from cache: 1" in second, second
    assert "site layer kept from the previous image" in second, second
    layers_after = k8s.manifest_layers(repository)
    site_layers = set(layers_before) & set(layers_after)
    assert len(site_layers) >= len(layers_before) - 2  # only the counter-free app layers may change


def test_builder_carries_the_lifecycle(k8s: K8s) -> None:
    inspected = json.loads(k8s.docker("image", "inspect", BUILDER).stdout)[0]
    labels = inspected["Config"]["Labels"]
    apis = json.loads(labels["io.buildpacks.lifecycle.apis"])
    assert "0.13" in apis["platform"]["supported"] and "0.15" in apis["platform"]["supported"]
    assert "0.12" in apis["buildpack"]["supported"]
    metadata = json.loads(labels["io.buildpacks.builder.metadata"])
    assert "0.13" in metadata["lifecycle"]["apis"]["platform"]["supported"]
    assert labels["io.buildpacks.extension.layers"] == "{}"
    listing = k8s.docker("run", "--rm", "--network", "host", "--entrypoint", "/bin/sh", BUILDER, "-c",
                         "ls /lifecycle/ && cat /cnb/lifecycle/lifecycle.toml && head -1 /cnb/lifecycle/launcher && "
                         "ls /usr/bin/python3 /usr/bin/python 2>&1; /cnb/lifecycle/detector -version").stdout  # fmt: skip
    for name in ("analyzer", "detector", "restorer", "builder", "exporter", "creator", "rebaser", "extender",
                 "launcher", "lifecycle.toml"):  # fmt: skip
        assert name in listing.split(), listing
    assert "#!/bin/sh" in listing
    assert "No such file" in listing  # the tiny build image has no Python: the bundle brings its own
    assert "[apis.platform]" in listing
