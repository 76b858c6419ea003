"""``cnb resolve`` against a real registry: digests checked with skopeo, HEAD-only in the registry's access log,
kbld's search rules, annotations, both lock formats fed back in, and one-line failures that write nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO, Cnb
from tests.resolve.conftest import Pushed
from tests.support.registry import RunningRegistry
from tests.support.tools import skopeo_inspect

ANNOTATION = "kbld.k14s.io/images"


def app_yaml(host: str) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      initContainers:
      - name: init
        image: {host}/rs/sidecar
      containers:
      - name: web
        image: {host}/rs/web:1.0
        env:
        - name: WORKER_IMAGE_JSON
          value: '{{"image": "{host}/rs/worker:2", "n": 1}}'
      - name: again
        image: {host}/rs/web:1.0
---
apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      containers:
      - name: m
        image: {host}/rs/worker:2
        args: ["--image", "{host}/rs/web:1.0"]
      restartPolicy: Never
---
apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
spec:
  appImage: {host}/rs/crd-app:v3
  multi:
    ref: {host}/rs/multi:1
  notes:
    image: not-an-image-but-left-alone
---
apiVersion: kbld.k14s.io/v1alpha1
kind: Config
searchRules:
- keyMatcher:
    name: appImage
- keyMatcher:
    path: [spec, multi, ref]
- keyMatcher:
    path: [spec, notes, image]
  updateStrategy:
    none: {{}}
- keyMatcher:
    name: value
  valueMatcher:
    imageRepo: {host}/rs/json-app
- keyMatcher:
    name: value
  updateStrategy:
    json:
      searchRules:
      - keyMatcher:
          name: image
"""


def resolve(cnb: Cnb, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return cnb("resolve", *args, check=check)


def docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def manifest_requests(registry: RunningRegistry, repo: str) -> list[str]:
    """Methods of the access-log lines for manifests of *repo* (distribution logs one line per request)."""
    pattern = re.compile(rf'"(GET|HEAD|PUT) /v2/{re.escape(repo)}/manifests/[^ ]+ HTTP')
    return [m.group(1) for m in pattern.finditer(registry.log_text())]


def test_resolves_every_reference_with_head_only(
    cnb: Cnb, registry: RunningRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    source = tmp_path / "app.yml"
    source.write_text(app_yaml(registry.host))
    before = {
        repo: len(manifest_requests(registry, repo))
        for repo in ("rs/web", "rs/worker", "rs/sidecar", "rs/crd-app", "rs/multi")
    }
    out = tmp_path / "out.yml"
    done = resolve(cnb, "-f", str(source), "-o", str(out))
    assert done.stdout == ""
    for repo, count in before.items():
        methods = manifest_requests(registry, repo)[count:]
        assert methods == ["HEAD"], (repo, methods)  # one HEAD per unique image, however often it is used
    deployment, job, widget = docs(out.read_text())  # the Config is consumed, order is kept
    host = registry.host

    def pinned(key: str) -> str:
        return f"{host}/{key.split(':')[0]}@{skopeo_inspect(f'docker://{host}/{key}')['Digest']}"

    assert pushed.digests["rs/web:1.0"] in pinned("rs/web:1.0")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert containers[0]["image"] == pinned("rs/web:1.0") == containers[1]["image"]
    assert deployment["spec"]["template"]["spec"]["initContainers"][0]["image"] == pinned("rs/sidecar:latest")
    inner = containers[0]["env"][0]["value"]
    assert '"image":"' + pinned("rs/worker:2") + '"' in inner and '"n":1' in inner  # the json strategy
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == pinned("rs/worker:2")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][1] == f"{host}/rs/web:1.0"  # not an image key
    assert widget["spec"]["appImage"] == pinned("rs/crd-app:v3")
    assert widget["spec"]["multi"]["ref"] == f"{host}/rs/multi@{pushed.digests['rs/multi:1']}"  # an index stays one
    assert widget["spec"]["notes"]["image"] == "not-an-image-but-left-alone"  # updateStrategy none
    annotation = yaml.safe_load(deployment["metadata"]["annotations"][ANNOTATION])
    assert annotation == sorted(annotation, key=lambda item: item["url"])
    by_url = {item["url"]: item["origins"] for item in annotation}
    assert by_url[pinned("rs/web:1.0")] == [{"resolved": {"url": f"{host}/rs/web:1.0", "tag": "1.0"}}]
    assert by_url[pinned("rs/sidecar:latest")] == [{"resolved": {"url": f"{host}/rs/sidecar", "tag": "latest"}}]
    assert by_url[pinned("rs/worker:2")] == [{"resolved": {"url": f"{host}/rs/worker:2", "tag": "2"}}]


def test_locks_round_trip_to_identical_output(
    cnb: Cnb, registry: RunningRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    source = tmp_path / "app.yml"
    source.write_text(app_yaml(registry.host))
    first = resolve(cnb, "-f", str(source), "--lock-output", str(tmp_path / "kbld.lock.yml")).stdout
    lock = docs((tmp_path / "kbld.lock.yml").read_text())[0]
    assert lock["apiVersion"] == "kbld.k14s.io/v1alpha1" and lock["kind"] == "Config"
    assert all(o["preresolved"] is True and "@sha256:" in o["newImage"] for o in lock["overrides"])
    assert {o["image"] for o in lock["overrides"]} >= {f"{registry.host}/rs/web:1.0", f"{registry.host}/rs/crd-app:v3"}
    resolve(cnb, "-f", str(source), "--imgpkg-lock-output", str(tmp_path / "images.yml"))
    images = docs((tmp_path / "images.yml").read_text())[0]
    assert images["apiVersion"] == "imgpkg.carvel.dev/v1alpha1" and images["kind"] == "ImagesLock"
    entry = next(
        i for i in images["images"] if i["annotations"]["kbld.carvel.dev/id"] == f"{registry.host}/rs/worker:2"
    )
    assert yaml.safe_load(entry["annotations"]["kbld.carvel.dev/origins"]) == [
        {"resolved": {"tag": "2", "url": f"{registry.host}/rs/worker:2"}}
    ]
    heads = len(manifest_requests(registry, "rs/web"))
    for lock_file, flag in (
        (tmp_path / "kbld.lock.yml", "--lock-output"),
        (tmp_path / "images.yml", "--imgpkg-lock-output"),
    ):
        again = tmp_path / f"again-{lock_file.name}"
        second = resolve(cnb, "-f", str(source), "-f", str(lock_file), flag, str(again)).stdout
        assert second == first
        assert again.read_text() == lock_file.read_text()  # fed back in, no origin is added twice
    assert len(manifest_requests(registry, "rs/web")) == heads  # preresolved: no request at all
    # the output itself fed back in keeps its origins as they are
    (tmp_path / "first.yml").write_text(first)
    (tmp_path / "config.yml").write_text("apiVersion: kbld" + app_yaml(registry.host).split("apiVersion: kbld", 1)[1])
    assert resolve(cnb, "-f", str(tmp_path / "first.yml"), "-f", str(tmp_path / "config.yml")).stdout == first


def test_failures_are_one_line_and_write_nothing(
    cnb: Cnb, registry: RunningRegistry, pushed: Pushed, tmp_path: Path
) -> None:
    out = tmp_path / "out.yml"
    unknown = tmp_path / "unknown.yml"
    unknown.write_text(
        f"kind: Pod\nspec:\n  containers:\n  - image: {registry.host}/rs/web:nope\n  - image: {registry.host}/rs/web:1.0\n"
    )
    malformed = tmp_path / "bad.yml"
    malformed.write_text("kind: Pod\nspec:\n  containers: [\n    image: x\n")
    down = tmp_path / "down.yml"
    down.write_text("kind: Pod\nspec:\n  containers:\n  - image: 127.0.0.1:9/rs/web:1.0\n")
    for case, words in ((unknown, "rs/web:nope"), (malformed, "malformed YAML"), (down, "127.0.0.1:9")):
        done = resolve(cnb, "-f", str(case), "-o", str(out), check=False)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], done.stderr
        assert "Traceback" not in done.stderr
        assert not out.exists()
    both = resolve(cnb, "-f", str(unknown), "--lock-output", "a", "--imgpkg-lock-output", "b", check=False)
    assert both.returncode == 2 and "cannot be used together" in both.stderr


def test_stdin_and_directories(cnb: Cnb, registry: RunningRegistry, pushed: Pushed, tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "b.yaml").write_text(
        f"kind: Pod\nmetadata: {{name: b}}\nspec: {{containers: [{{image: '{registry.host}/rs/worker:2'}}]}}\n"
    )
    (tmp_path / "d" / "sub" / "a.yml").write_text(
        f"kind: Pod\nmetadata: {{name: a}}\nspec: {{containers: [{{image: '{registry.host}/rs/web:1.0'}}]}}\n"
    )
    (tmp_path / "d" / "ignored.txt").write_text("image: nope\n")
    done = subprocess.run(
        [sys.executable, "-m", "cnbplatform", "resolve", "-f", str(tmp_path / "d"), "-f", "-"],
        input=f"kind: Pod\nmetadata: {{name: c}}\nspec: {{containers: [{{image: '{registry.host}/rs/sidecar'}}]}}\n",
        capture_output=True, text=True, env=cnb.env, cwd=REPO, timeout=120, check=True,
    )  # fmt: skip
    names = [d["metadata"]["name"] for d in docs(done.stdout)]
    assert names == ["b", "a", "c"]  # files of a dir in sorted path order, then stdin


def test_overrides_and_a_ko_source(cnb: Cnb, registry: RunningRegistry, pushed: Pushed, tmp_path: Path) -> None:
    host = registry.host
    source = tmp_path / "app.yml"
    source.write_text(f"""\
kind: Pod
metadata: {{name: p}}
spec:
  containers:
  - image: example.com/upstream/web:latest
  - image: example.com/pinned/thing:9
---
apiVersion: kbld.k14s.io/v1alpha1
kind: Config
overrides:
- image: example.com/upstream/web:latest
  newImage: {host}/rs/web:1.0
- imageRepo: example.com/pinned/thing
  newImage: {host}/rs/worker@{pushed.digests["rs/worker:2"]}
  preresolved: true
""")
    (pod,) = docs(resolve(cnb, "-f", str(source)).stdout)
    web = f"{host}/rs/web@{pushed.digests['rs/web:1.0']}"
    worker = f"{host}/rs/worker@{pushed.digests['rs/worker:2']}"
    assert [c["image"] for c in pod["spec"]["containers"]] == [web, worker]
    by_url = {i["url"]: i["origins"] for i in yaml.safe_load(pod["metadata"]["annotations"][ANNOTATION])}
    assert by_url == {
        web: [{"resolved": {"tag": "1.0", "url": f"{host}/rs/web:1.0"}}],
        worker: [{"preresolved": {"url": worker}}],
    }
    ko = tmp_path / "ko.yml"
    (tmp_path / "cmd").mkdir()
    ko.write_text(f"""\
kind: Pod
spec: {{containers: [{{image: go-app}}]}}
---
apiVersion: kbld.k14s.io/v1alpha1
kind: Config
sources: [{{image: go-app, path: {tmp_path / "cmd"}, ko: {{build: {{rawOptions: []}}}}}}]
destinations: [{{image: go-app, newImage: {host}/rs/go-app}}]
""")
    done = resolve(cnb, "-f", str(ko), "-o", str(tmp_path / "out.yml"), check=False)
    assert done.returncode == 2 and not (tmp_path / "out.yml").exists()
    *progress, last = done.stderr.strip().splitlines()
    assert last.startswith("error:") and "cnb/go buildpack" in last and not any("error" in p for p in progress)
