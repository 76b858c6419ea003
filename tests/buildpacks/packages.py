"""Package registries on 127.0.0.1 for the buildpack tests: a PyPI "simple" index and an npm registry.

The packages are made here (tiny, with the metadata the SBOM tests look for), so builds need no traffic beyond
loopback and no CA beyond the image's. Each server counts the requests it answers: a build that must not run pip
or npm shows up as zero requests.

- :func:`make_wheel` writes a valid pure-Python wheel (``METADATA``, ``WHEEL``, ``RECORD`` with sha256 hashes).
- :class:`PackageServer` serves a directory over HTTP in a thread; ``PyIndex`` lays out ``simple/<name>/`` pages,
  ``NpmRegistry`` answers ``GET /<name>`` with a packument and ``GET /<name>/-/<file>.tgz`` with the tarball.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import re
import tarfile
import threading
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

MTIME = (1980, 1, 1, 0, 0, 2)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    headers: Sequence[tuple[str, str]] = (),
    code: str = "",
) -> Path:
    """A ``py3-none-any`` wheel of module ``<name>`` (its ``__init__`` is *code*, default ``VERSION = …``)."""
    dist = re.sub(r"[-_.]+", "_", name)
    meta_lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta_lines += [f"{key}: {value}" for key, value in headers]
    meta_lines += [f"Requires-Dist: {req}" for req in requires]
    files = {
        f"{dist}/__init__.py": (code or f"VERSION = {version!r}\n").encode(),
        f"{dist}-{version}.dist-info/METADATA": ("\n".join(meta_lines) + "\n").encode(),
        f"{dist}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: cnb-tests\nRoot-Is-Purelib: true\n"
        b"Tag: py3-none-any\n",
    }
    record = f"{dist}-{version}.dist-info/RECORD"
    lines = [f"{path},{_record_hash(data)},{len(data)}" for path, data in files.items()] + [f"{record},,"]
    files[record] = ("\n".join(lines) + "\n").encode()
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        for member, data in files.items():
            wheel.writestr(zipfile.ZipInfo(member, MTIME), data)
    return path


def make_npm_tarball(manifest: dict[str, Any], code: str) -> bytes:
    """An npm package tarball: ``package/package.json`` and ``package/index.js``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for member, data in (
            ("package/package.json", json.dumps(manifest).encode()),
            ("package/index.js", code.encode()),
        ):
            info = tarfile.TarInfo(member)
            info.size, info.mtime, info.mode = len(data), 315532800, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class _Handler(SimpleHTTPRequestHandler):
    server_ref: PackageServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        self.server_ref.requests.append(self.path)
        override = self.server_ref.respond(self.path)
        if override is None:
            super().do_GET()
            return
        status, content_type, body = override
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@dataclass
class PackageServer:
    """Serves *root* on 127.0.0.1 (a free port) from a daemon thread; ``requests`` lists the paths asked for."""

    root: Path
    requests: list[str] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def respond(self, path: str) -> tuple[int, str, bytes] | None:
        """A response of our own for *path*, or None to serve the file."""
        return None

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handler = type("Handler", (_Handler,), {"server_ref": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(self.root)))
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class PyIndex(PackageServer):
    """A PEP 503 simple index: ``/simple/<name>/`` links to ``/files/<wheel>#sha256=…``."""

    def add(self, wheel: Path) -> None:
        files = self.root / "files"
        files.mkdir(parents=True, exist_ok=True)
        (files / wheel.name).write_bytes(wheel.read_bytes())
        self._reindex()

    def _reindex(self) -> None:
        by_name: dict[str, list[Path]] = {}
        for wheel in sorted((self.root / "files").glob("*.whl")):
            by_name.setdefault(canonical(wheel.name.split("-")[0]), []).append(wheel)
        for name, wheels in by_name.items():
            page = self.root / "simple" / name / "index.html"
            page.parent.mkdir(parents=True, exist_ok=True)
            links = "".join(
                f'<a href="/files/{html.escape(w.name)}#sha256={hashlib.sha256(w.read_bytes()).hexdigest()}">'
                f"{html.escape(w.name)}</a>\n"
                for w in wheels
            )
            page.write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")

    @property
    def index_url(self) -> str:
        return f"{self.url}/simple/"


@dataclass
class NpmPackage:
    name: str
    version: str
    tarball: bytes
    manifest: dict[str, Any]

    @property
    def integrity(self) -> str:
        return "sha512-" + base64.b64encode(hashlib.sha512(self.tarball).digest()).decode()

    @property
    def file_name(self) -> str:
        return f"{self.name.split('/')[-1]}-{self.version}.tgz"


@dataclass
class NpmRegistry(PackageServer):
    """Packuments at ``/<name>`` (scoped: ``/@scope%2fname``) and tarballs at ``/<name>/-/<file>``."""

    packages: dict[str, dict[str, NpmPackage]] = field(default_factory=dict)

    def add(self, name: str, version: str, *, dependencies: dict[str, str] | None = None, license: str = "MIT",
            code: str = "") -> NpmPackage:  # fmt: skip
        manifest = {"name": name, "version": version, "license": license, "main": "index.js",
                    "dependencies": dependencies or {}}  # fmt: skip
        body = code or f"module.exports = {json.dumps(f'{name}@{version}')};\n"
        package = NpmPackage(name, version, make_npm_tarball(manifest, body), manifest)
        self.packages.setdefault(name, {})[version] = package
        return package

    def tarball_url(self, package: NpmPackage) -> str:
        return f"{self.url}/{package.name}/-/{package.file_name}"

    def respond(self, path: str) -> tuple[int, str, bytes] | None:
        path = unquote(path.split("?", 1)[0]).lstrip("/")
        name, sep, rest = path.partition("/-/")
        versions = self.packages.get(name)
        if versions is None:
            return 404, "application/json", b'{"error":"not found"}'
        if sep:
            for package in versions.values():
                if package.file_name == rest:
                    return 200, "application/octet-stream", package.tarball
            return 404, "application/json", b'{"error":"not found"}'
        packument = {
            "name": name,
            "dist-tags": {"latest": sorted(versions)[-1]},
            "versions": {
                v: {**p.manifest, "dist": {"tarball": self.tarball_url(p), "integrity": p.integrity}}
                for v, p in versions.items()
            },
        }
        return 200, "application/json", json.dumps(packument).encode()

    def lockfile(self, app_name: str, dependencies: dict[str, str], installed: Sequence[NpmPackage]) -> str:
        """A ``package-lock.json`` (lockfileVersion 3) installing *installed* flat under ``node_modules``."""
        packages: dict[str, Any] = {"": {"name": app_name, "version": "1.0.0", "dependencies": dependencies}}
        for package in installed:
            entry: dict[str, Any] = {
                "version": package.version,
                "resolved": self.tarball_url(package),
                "integrity": package.integrity,
                "license": package.manifest["license"],
            }
            if package.manifest["dependencies"]:
                entry["dependencies"] = package.manifest["dependencies"]
            packages[f"node_modules/{package.name}"] = entry
        lock = {"name": app_name, "version": "1.0.0", "lockfileVersion": 3, "requires": True, "packages": packages}
        return json.dumps(lock, indent=2) + "\n"


@contextmanager
def serving(server: PackageServer) -> Iterator[PackageServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
