"""Fixtures for the sandbox tests: a busybox build-image root, a request factory, a local HTTP server, and a
busybox image loaded into the session's Docker engine (``dockerd`` from ``tests/conftest.py``, which starts
it with ``tests/support/dockerd.py``)."""

from __future__ import annotations

import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cnbplatform.oci.image import as_image
from cnbplatform.oci.store.daemon import DaemonStore
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.sandbox import RunRequest
from tests.support.dockerd import RunningDockerd
from tests.support.images import make_busybox_image

HOST_BUSYBOX = Path("/bin/busybox")
APPLETS = ("cat", "env", "echo", "head", "id", "ls", "mkdir", "pwd", "sh", "sleep", "test", "touch", "true", "wget")
ROOTFS_ROOT_MARKER = "this /root belongs to the build image\n"
DOCKER_IMAGE = "cnb-test/sandbox-busybox:1"

RequestFactory = Callable[..., RunRequest]


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny unpacked build image: static busybox with applet symlinks, users root and cnb (1000), /root."""
    root = tmp_path_factory.mktemp("rootfs")
    (root / "bin").mkdir()
    shutil.copy2(HOST_BUSYBOX, root / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("/bin/busybox", root / "bin" / applet)
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\ncnb:x:1000:1000:cnb:/home/cnb:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\ncnb:x:1000:\n")
    (root / "root").mkdir(mode=0o700)
    (root / "root" / "marker").write_text(ROOTFS_ROOT_MARKER)
    (root / "home" / "cnb").mkdir(parents=True)
    (root / "tmp").mkdir(mode=0o1777)
    (root / "workspace").mkdir()  # present in the image; a mount at /workspace must hide it
    return root


@pytest.fixture
def make_request() -> RequestFactory:
    """``make_request(argv, **fields)``: a RunRequest with PATH=/bin, cwd /, no mounts, user 1000:1000."""

    def factory(argv: list[str], **fields: Any) -> RunRequest:
        values: dict[str, Any] = {"env": {"PATH": "/bin"}, "cwd": "/", "mounts": [], "uid": 1000, "gid": 1000}
        values.update(fields)
        return RunRequest(argv=argv, **values)

    return factory


@pytest.fixture(scope="session")
def http_server() -> Iterator[str]:
    """A plain HTTP server on 127.0.0.1 answering every GET with ``hello from the host``; its base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"hello from the host\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def docker_image(dockerd: RunningDockerd, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The busybox test image, loaded into the session's Docker engine; its reference."""
    layout = tmp_path_factory.mktemp("sandbox-busybox-layout")
    make_busybox_image(layout, "busybox")
    store = DaemonStore(dockerd.base_url)
    try:
        store.write(as_image(LayoutStore(layout).read("busybox")), DOCKER_IMAGE)
    finally:
        store.close()
    return DOCKER_IMAGE
