"""The sample apps with the real bookworm builder, end to end (issues 4 and 5 "must show"; docs/design.md §1).

``builders/bookworm`` is used unchanged: a module-wide ``$CNB_HOME`` holds the bookworm language images
(:func:`tests.support.bookworm.language_images`) under the names the builder expects. Each example is built once per module
(pip and npm reach PyPI and the npm registry through this machine's TLS-intercepting proxy, hence
``--host-ca-certs``), then served with ``cnb run`` and by the Docker engine (``cnb build --daemon``), rebuilt after
code and requirement edits (dependency layers reused, offline), rebased onto a run image with one more Debian
package (docs/spec-notes.md §8) in the local store and in a registry, and exported as CycloneDX and SPDX SBOMs.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from packageurl import PackageURL

from tests.conftest import REPO, Cnb
from tests.support.bookworm import PATCH_PACKAGE, STATUS, language_images, layer_member
from tests.support.dockerd import RunningDockerd
from tests.support.registry import RunningRegistry, free_port
from tests.support.sbom import cdx_purls, check_cyclonedx, check_spdx, deb_purl_ok, spdx_purls

pytestmark = pytest.mark.integration
BUILDER = REPO / "builders" / "bookworm"
HOST_CA = "/etc/ssl/certs/ca-certificates.crt"
PATCHED = "cnb/bookworm-run-patched"
METADATA = "io.buildpacks.lifecycle.metadata"
_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1, never through a proxy


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Cnb:
    """A ``cnb`` runner whose ``$CNB_HOME`` has the images builders/bookworm names, and the patched run image."""
    images = language_images()
    root = tmp_path_factory.mktemp("bookworm-home")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CNB_", "DOCKER_")) and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")
    }
    env.update(CNB_HOME=str(root / "home"), DOCKER_CONFIG=str(root), PYTHONPATH=str(REPO))
    cnb = Cnb(root / "home", env)
    for source, name in (
        (images.build, "cnb/bookworm-build"),
        (images.run, "cnb/bookworm-run"),
        (images.patched_run, PATCHED),
    ):
        cnb("image", "copy", source, f"local:{name}")
    return cnb


def build(cnb: Cnb, image: str, app: Path, *extra: str, env: dict[str, str] | None = None) -> str:
    done = cnb(
        "build", image, "--builder", str(BUILDER), "--path", str(app), "--host-ca-certs", HOST_CA, *extra,
        timeout=900, extra_env=env,
    )  # fmt: skip
    assert f"Successfully built {image}" in done.stdout, done.stdout
    return done.stdout


@dataclass(frozen=True)
class App:
    """One example built once: ``image`` (named as the example) stays as built; ``work`` (the same image under the
    name whose cache holds its layers) and ``app`` (a copy of the example) are for the rebuild tests to change."""

    image: str
    work: str
    app: Path
    page: str


def _built(cnb: Cnb, tmp: Path, example: str, page: str) -> App:
    app = tmp / example
    shutil.copytree(REPO / "examples" / example, app)
    work = f"{example}-work"
    build(cnb, work, app)
    cnb("image", "copy", work, example)
    return App(example, work, app, page)


@pytest.fixture(scope="module")
def flask(home: Cnb, tmp_path_factory: pytest.TempPathFactory) -> App:
    return _built(home, tmp_path_factory.mktemp("flask"), "python-flask", "Hello from cnb! (python-flask)")


@pytest.fixture(scope="module")
def node(home: Cnb, tmp_path_factory: pytest.TempPathFactory) -> App:
    return _built(home, tmp_path_factory.mktemp("node"), "node-express", "Hello from cnb! (node-express)")


# -- helpers -----------------------------------------------------------------------------------------------------


def inspect(cnb: Cnb, image: str) -> dict[str, Any]:
    details: dict[str, Any] = json.loads(cnb("image", "inspect", "--json", image).stdout)["image"]
    return details


def digests(details: dict[str, Any]) -> list[str]:
    return [layer["digest"] for layer in details["layers"]]


def lifecycle(details: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = json.loads(details["labels"][METADATA])
    return metadata


def _get(port: int) -> str | None:
    try:
        with _LOOPBACK.open(f"http://127.0.0.1:{port}/", timeout=5) as response:
            return str(response.read().decode())
    except (OSError, http.client.HTTPException):  # not up yet, or killed in the middle of an answer
        return None


def _wait_page(port: int, alive: Any, what: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise AssertionError(f"{what} stopped before it served a page")
        page = _get(port)
        if page is not None:
            return page
        time.sleep(0.2)
    raise AssertionError(f"{what} did not answer on 127.0.0.1:{port} within {timeout} s")


def page_via_cnb_run(cnb: Cnb, image: str) -> str:
    """``cnb run IMAGE -e PORT=N`` (host network), GET / on 127.0.0.1:N, then stop it: it must exit and free N."""
    port = free_port()
    process = cnb.popen("run", image, "-e", f"PORT={port}")
    try:
        page = _wait_page(port, lambda: process.poll() is None, f"cnb run {image}")
    finally:
        process.terminate()
        try:
            _, err = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise AssertionError(f"cnb run {image} did not exit within 30 s of SIGTERM") from None
    # The sandboxed server dies with bwrap (--die-with-parent), a moment after cnb run itself.
    deadline = time.monotonic() + 10
    while _get(port) is not None:
        assert time.monotonic() < deadline, f"127.0.0.1:{port} still answers 10 s after cnb run exited: {err}"
        time.sleep(0.1)
    return page


def page_via_docker(engine: RunningDockerd, image: str) -> str:
    port = free_port()
    started = subprocess.run(
        ["docker", "run", "--rm", "-d", "--network", "host", "-e", f"PORT={port}", image],
        env=engine.env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    container = started.stdout.strip()
    try:
        return _wait_page(port, lambda: True, f"docker run {image}")
    finally:
        removed = subprocess.run(["docker", "rm", "-f", container], env=engine.env, capture_output=True, timeout=60)
        assert removed.returncode == 0, removed.stderr


def changed_layers(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """The diffIDs of *after* at the positions where the two images' layer digests differ."""
    assert len(before["layers"]) == len(after["layers"])
    return {b["diffID"] for a, b in zip(before["layers"], after["layers"], strict=True) if a["digest"] != b["digest"]}


def bp_layer(details: dict[str, Any], buildpack: str, layer: str) -> str:
    (entry,) = [bp for bp in lifecycle(details)["buildpacks"] if bp["key"] == buildpack]
    return str(entry["layers"][layer]["sha"])


def base_labels(details: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in details["labels"].items() if k.startswith("io.buildpacks.base.")}


def deb_version(status: str, package: str) -> str:
    """The version of *package* in a dpkg status file (read independently of cnb's SBOM code)."""
    found = re.search(rf"^Package: {re.escape(package)}\n(?:[^\n]+\n)*?Version: (\S+)", status, re.M)
    assert found is not None, f"{package} is not in the dpkg status file"
    return found.group(1)


def pypi_purls(purls: dict[str, PackageURL]) -> dict[str, str]:
    return {purl.name: purl.to_string() for purl in purls.values() if purl.type == "pypi"}


def sbom_export(cnb: Cnb, image: str, fmt: str, path: Path) -> str:
    cnb("sbom", "export", image, "--format", fmt, "-o", str(path))
    return path.read_text()


# -- 1. build and serve --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["flask", "node"])
def test_examples_build_and_serve(which: str, request: pytest.FixtureRequest, home: Cnb) -> None:
    built: App = request.getfixturevalue(which)
    assert built.page in page_via_cnb_run(home, built.image)


@pytest.mark.parametrize("which", ["flask", "node"])
def test_examples_build_into_docker_engine(
    which: str, request: pytest.FixtureRequest, home: Cnb, dockerd: RunningDockerd
) -> None:
    built: App = request.getfixturevalue(which)
    image = f"bookworm-{built.image}:daemon"
    build(home, image, REPO / "examples" / built.image, "--daemon", env={"DOCKER_HOST": dockerd.base_url})
    assert built.page in page_via_docker(dockerd, image)


# -- 2. rebuilds reuse the dependency layers ---------------------------------------------------------------------


def test_node_code_edit_reuses_node_modules(home: Cnb, node: App) -> None:
    before = inspect(home, node.work)
    server = node.app / "server.js"
    server.write_text(server.read_text().replace("Hello from cnb!", "Hello again from cnb!"))
    output = build(home, node.work, node.app)
    assert "reusing node_modules" in output
    after = inspect(home, node.work)
    assert bp_layer(after, "cnb/node", "modules") == bp_layer(before, "cnb/node", "modules")
    assert changed_layers(before, after) == {entry["sha"] for entry in lifecycle(after)["app"]} != set()


def test_python_code_edit_and_requirement_removal(home: Cnb, flask: App) -> None:
    before = inspect(home, flask.work)
    code = flask.app / "app.py"
    code.write_text(code.read_text().replace("<h1>Hello from cnb!", "<h1>Hello again from cnb!"))
    output = build(home, flask.work, flask.app)
    assert "reusing venv" in output
    after = inspect(home, flask.work)
    assert bp_layer(after, "cnb/python", "venv") == bp_layer(before, "cnb/python", "venv")
    assert changed_layers(before, after) == {entry["sha"] for entry in lifecycle(after)["app"]} != set()

    requirements = flask.app / "requirements.txt"
    pristine = requirements.read_text()
    requirements.write_text(pristine + "six==1.17.0\n")
    assert "reusing venv" not in build(home, flask.work, flask.app)
    assert pypi_purls(cdx_purls(json.loads(home("sbom", "export", flask.work).stdout)))["six"] == "pkg:pypi/six@1.17.0"
    requirements.write_text(pristine)
    build(home, flask.work, flask.app, "--network", "none")  # the wheels come from the cache layer
    pypi = pypi_purls(cdx_purls(json.loads(home("sbom", "export", flask.work).stdout)))
    assert "six" not in pypi and pypi["flask"] == "pkg:pypi/flask@3.1.3"
    assert "Hello again from cnb! (python-flask)" in page_via_cnb_run(home, flask.work)


# -- 3. rebase onto a run image with one more Debian package (docs/spec-notes.md §8) -----------------------------------


def check_rebased(cnb: Cnb, before_ref: str, after_ref: str, new_run_name: str) -> None:
    """*after_ref* is *before_ref* on the patched run image: app layers kept, base layers and labels new, one
    more Debian package in the SBOM and nothing else changed but the run image."""
    before, after, patched = inspect(cnb, before_ref), inspect(cnb, after_ref), inspect(cnb, PATCHED)
    top = lifecycle(before)["runImage"]["topLayer"]
    base_count = [layer["diffID"] for layer in before["layers"]].index(top) + 1
    assert digests(after) == digests(patched) + digests(before)[base_count:]
    assert digests(patched) != digests(before)[:base_count]
    run_image = lifecycle(after)["runImage"]
    assert run_image["topLayer"] == patched["layers"][-1]["diffID"]
    assert run_image["reference"].endswith(patched["digest"])
    assert run_image["image"] == new_run_name
    # §8 step 6: the base labels are the new run image's (here equal to the old ones: same recipe, same distro).
    assert base_labels(after) == base_labels(patched) != {}
    diff = json.loads(cnb("sbom", "diff", before_ref, after_ref, "--json").stdout)
    assert (diff["before"]["digest"], diff["after"]["digest"]) == (before["digest"], after["digest"])
    assert diff["removed"] == []
    (added,) = diff["added"]
    status = layer_member(language_images().layout, "run-patched", STATUS).decode()
    assert deb_purl_ok(PackageURL.from_string(added["purl"]), PATCH_PACKAGE, deb_version(status, PATCH_PACKAGE), "all")
    (changed,) = diff["changed"]  # the run image entry: new name, new digest
    assert changed["identity"] == "cnb:run-image"
    assert (changed["after"]["name"], changed["after"]["version"]) == (new_run_name, patched["digest"])


def test_rebase_local(home: Cnb, flask: App) -> None:
    home("image", "copy", flask.image, "flask-rebased")
    recorded = lifecycle(inspect(home, "flask-rebased"))["runImage"]["image"]
    assert recorded == "cnb/bookworm-run"  # run.toml's name; the patched image has another one
    # docs/spec-notes.md §8 step 5 (Platform >= 0.12): a run image whose name is neither runImage.image nor a mirror is
    # refused unless forced; forced, its name becomes runImage.image. (Publishing the patched image under the old
    # name would need no --force, but the module's builds still use that name.)
    refused = home("rebase", "flask-rebased", "--run-image", PATCHED, check=False)
    assert refused.returncode != 0 and "--force" in refused.stderr and "Traceback" not in refused.stderr
    home("rebase", "flask-rebased", "--run-image", PATCHED, "--force")
    check_rebased(home, flask.image, "flask-rebased", PATCHED)
    assert flask.page in page_via_cnb_run(home, "flask-rebased")


_REQUEST = re.compile(r'"(GET|HEAD|PUT|PATCH|POST|DELETE) (\S+) HTTP/')


def test_rebase_in_registry_moves_no_app_layer(home: Cnb, flask: App, registry: RunningRegistry) -> None:
    app_ref, run_ref = f"{registry.host}/bookworm/flask:1", f"{registry.host}/bookworm/run-patched:1"
    home("image", "copy", flask.image, app_ref)
    home("image", "copy", PATCHED, run_ref)
    before = inspect(home, app_ref)
    base_count = [layer["diffID"] for layer in before["layers"]].index(lifecycle(before)["runImage"]["topLayer"]) + 1
    app_layers = set(digests(before)[base_count:])

    mark = len(registry.log_text())
    home("rebase", app_ref, "--publish", "--run-image", run_ref, "--force")  # --force: see test_rebase_local
    requests = _REQUEST.findall(registry.log_text()[mark:])
    assert requests, "the registry saw no request during the rebase"
    for method, path in requests:  # an upload's final PUT names its blob in the (percent-encoded) query
        if method in ("GET", "PUT", "PATCH"):
            assert not any(digest in unquote(path) for digest in app_layers), f"{method} {path} moved an app layer"
    uploads = [path for method, path in requests if method == "PUT" and "/blobs/uploads/" in path]
    patches = [path for method, path in requests if method == "PATCH"]
    assert len(patches) <= len(uploads)  # every chunk belongs to an upload that ends in a PUT naming its digest

    check_rebased(home, f"{registry.host}/bookworm/flask@{before['digest']}", app_ref, run_ref)
    assert flask.page in page_via_cnb_run(home, app_ref)


# -- 4. SBOM --------------------------------------------------------------------------------------------------------


def test_sbom_export_of_flask(home: Cnb, flask: App, tmp_path: Path) -> None:
    python3 = deb_version(layer_member(language_images().layout, "run", STATUS).decode(), "python3")

    cdx_text = sbom_export(home, flask.image, "cyclonedx", tmp_path / "a.cdx.json")
    assert sbom_export(home, flask.image, "cyclonedx", tmp_path / "b.cdx.json") == cdx_text
    spdx_text = sbom_export(home, flask.image, "spdx", tmp_path / "a.spdx.json")
    assert sbom_export(home, flask.image, "spdx", tmp_path / "b.spdx.json") == spdx_text

    for purls in (cdx_purls(check_cyclonedx(cdx_text)), spdx_purls(check_spdx(tmp_path / "a.spdx.json"))):
        assert deb_purl_ok(purls["python3"], "python3", python3, "amd64"), purls["python3"]
        assert "nodejs" in purls and PATCH_PACKAGE not in purls
        pypi = pypi_purls(purls)  # keyed by the purl's (normalised) name; the components keep "Flask"
        assert pypi["flask"] == "pkg:pypi/flask@3.1.3" and pypi["gunicorn"] == "pkg:pypi/gunicorn@23.0.0"
