"""A Docker engine as an image store, through docker-py (docs/design.md section 2, ``daemon``).

Images go in and out as Docker image archives (the format is :mod:`cnbplatform.oci.store.docker_archive`):

* ``write`` streams an archive to ``POST /images/load``: ``manifest.json`` (``Config``, ``RepoTags``,
  ``Layers``), the config blob, and each layer blob exactly as stored (``docker load`` accepts
  compressed layer tars). The archive is generated chunk by chunk while the layers are read through
  their verifying readers; it is never held in memory or on disk.
* ``read`` streams ``GET /images/{name}/get`` into a spool directory, then builds an OCI image from it
  (OCI image-spec "Image Manifest"): the saved config as is, and every uncompressed layer tar
  gzip-compressed with cnb's deterministic encoder, its diffID checked against the config. Docker 25+
  saves an OCI image layout whose ``manifest.json`` names ``blobs/sha256/...`` paths; both forms are read
  through ``manifest.json``.

The engine's image ID is the config digest (classic image store). Every docker-py or requests failure
becomes a :class:`~cnbplatform.errors.DaemonError` or :class:`~cnbplatform.errors.NotFoundError`.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker
import docker.errors
import requests

from cnbplatform.errors import CnbError, DaemonError, NotFoundError, UsageError
from cnbplatform.oci import mediatypes as mt
from cnbplatform.oci.digest import CHUNK, is_digest
from cnbplatform.oci.image import (
    Artifact,
    Image,
    is_index,
)
from cnbplatform.oci.model import Descriptor, InvalidDocumentError, Platform
from cnbplatform.oci.reference import parse_reference
from cnbplatform.oci.store.docker_archive import SpoolSource, archive, guarded, image_from_archive
from cnbplatform.oci.store.protocol import NullProgress, Progress, StoredRef, WriteResult

DEFAULT_URL = "unix:///var/run/docker.sock"


class DaemonStore:
    """Images in a Docker engine, named by Docker references (``myapp:latest``) or image IDs."""

    def __init__(
        self,
        base_url: str | None = None,
        *,
        client_factory: Callable[[], Any] | None = None,
        environment: Mapping[str, str] | None = None,
        spool_dir: Path | None = None,
        timeout: int = 600,
    ) -> None:
        self._factory = client_factory
        self._kwargs: dict[str, Any] = {}
        if base_url is not None:
            self._kwargs["base_url"] = base_url
        elif client_factory is None and environment is None:
            self._kwargs = dict(docker.utils.kwargs_from_env())
        elif client_factory is None and environment:
            self._kwargs = dict(docker.utils.kwargs_from_env(environment=environment))
        self.url = str(self._kwargs.get("base_url") or ("the configured address" if client_factory else DEFAULT_URL))
        self._spool_dir = spool_dir
        self._timeout = timeout
        self._client: Any = None

    @property
    def description(self) -> str:
        return f"Docker engine at {self.url}"

    def close(self) -> None:
        """Close the connection (images already read keep their spool until they are released)."""
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None

    # -- plumbing --------------------------------------------------------------------------------------

    def _api(self) -> Any:
        if self._client is None:
            try:
                if self._factory is not None:
                    self._client = self._factory()
                else:
                    self._client = docker.DockerClient(version="auto", timeout=self._timeout, **self._kwargs)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                raise self._unreachable(exc) from exc
        return self._client.api

    def _unreachable(self, exc: BaseException) -> DaemonError:
        return DaemonError(
            f"cannot reach the Docker engine at {self.url}: {_reason(exc)} "
            "(is it running? set DOCKER_HOST to its address)"
        )

    @contextlib.contextmanager
    def _calling(self, action: str, name: str | None = None) -> Iterator[None]:
        """Turn docker-py / requests failures during *action* into one-line cnb errors."""
        try:
            yield
        except CnbError:
            raise
        except docker.errors.NotFound as exc:
            what = f"image {name!r}" if name else "the image"
            raise NotFoundError(f"{what} not found in the Docker engine at {self.url}") from exc
        except docker.errors.APIError as exc:
            detail = " ".join(str(exc.explanation or exc).split())
            raise DaemonError(f"the Docker engine refused to {action}: {detail}") from exc
        except requests.exceptions.ConnectionError as exc:
            raise self._unreachable(exc) from exc
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            raise DaemonError(f"cannot {action} in the Docker engine at {self.url}: {_reason(exc)}") from exc

    def _name(self, ref: str | None) -> str:
        if ref is None:
            raise UsageError(f"{self.description}: name the image (docker-daemon:NAME[:TAG])")
        if is_digest(ref):
            return ref
        return parse_reference(ref).familiar()

    def engine_platform(self) -> Platform:
        """The os/arch the engine runs images for (``GET /version``)."""
        with self._calling("report its version"):
            version = self._api().version()
        return Platform(os=str(version.get("Os", "linux")), architecture=str(version.get("Arch", "")))

    # -- queries ---------------------------------------------------------------------------------------

    def image_id(self, ref: str) -> str:
        """The engine's ID of *ref* (``sha256:<config digest>`` on the classic image store)."""
        name = self._name(ref)
        with self._calling(f"inspect {name}", name):
            return str(self._api().inspect_image(name)["Id"])

    def inspect(self, ref: str) -> dict[str, Any]:
        """``docker image inspect`` of *ref*, as the engine returns it."""
        name = self._name(ref)
        with self._calling(f"inspect {name}", name):
            return dict(self._api().inspect_image(name))

    def _has(self, image_id: str) -> bool:
        with self._calling(f"inspect {image_id}", image_id):
            try:
                self._api().inspect_image(image_id)
            except docker.errors.NotFound:
                return False
        return True

    def list(self) -> Sequence[StoredRef]:
        """Every tag the engine holds; the descriptor names the image ID (size unknown, so 0)."""
        with self._calling("list images"):
            images = self._api().images()
        out: list[StoredRef] = []
        for image in images:
            desc = Descriptor(mt.DOCKER_CONFIG, str(image["Id"]), 0)
            out.extend(StoredRef(str(tag), desc) for tag in image.get("RepoTags") or () if tag != "<none>:<none>")
        return sorted(out, key=lambda s: s.name)

    # -- changes ---------------------------------------------------------------------------------------

    def tag(self, ref: str, new_ref: str) -> None:
        name, new = self._name(ref), parse_reference(_tag_name(new_ref))
        with self._calling(f"tag {name} as {new.familiar()}", name):
            self._api().tag(name, replace(new, tag=None).familiar(), new.tag)

    def delete(self, ref: str) -> None:
        """Untag *ref* (the image goes when its last tag does); never forced."""
        name = self._name(ref)
        with self._calling(f"remove {name}", name):
            self._api().remove_image(name, force=False)

    def write(self, artifact: Artifact, ref: str | None, progress: Progress | None = None) -> WriteResult:
        """Load *artifact* into the engine and tag it *ref*; an index gives the entry for the engine's platform."""
        progress = progress or NullProgress()
        image = self._select(artifact)
        tags = [] if ref is None else [_tag_name(ref)]
        result = WriteResult(descriptor=image.descriptor)
        config = image.manifest.config
        layers = image.layers()
        if self._has(config.digest):
            result.existing = [config.digest, *(layer.descriptor.digest for layer in layers)]
            for digest in result.existing:
                progress.finish(digest, "exists")
            for name in tags:
                self.tag(config.digest, name)
            return result
        failure: list[BaseException] = []
        chunks = guarded(archive(image, tags, progress, result), failure)
        try:
            with self._calling(f"load {tags[0] if tags else config.digest}", None):
                for message in self._api().load_image(chunks, quiet=True) or ():
                    if isinstance(message, dict) and (message.get("error") or message.get("errorDetail")):
                        detail = message.get("error") or message["errorDetail"].get("message", "")
                        raise DaemonError(f"the Docker engine refused to load the image: {detail}")
        except CnbError:
            if failure:
                raise failure[0] from None
            raise
        if failure:
            raise failure[0]
        return result

    def _select(self, artifact: Artifact) -> Image:
        current = artifact
        platform: Platform | None = None
        while is_index(current):
            platform = platform or self.engine_platform()
            try:
                current = current.child(current.index.select(platform))
            except InvalidDocumentError as exc:
                raise DaemonError(f"cannot load {artifact.descriptor.digest} into the Docker engine: {exc}") from exc
        return current  # type: ignore[return-value]

    # -- reading ---------------------------------------------------------------------------------------

    def read(self, ref: str | None) -> Artifact:
        """``docker save`` *ref*, spooled to disk, as an OCI image with gzip layers."""
        name = self._name(ref)
        if self._spool_dir is not None:
            self._spool_dir.mkdir(parents=True, exist_ok=True)
        spool = SpoolSource(Path(tempfile.mkdtemp(prefix="cnb-docker-save-", dir=self._spool_dir)))
        try:
            with self._calling(f"save {name}", name):
                image_id = str(self._api().inspect_image(name)["Id"])
                files = spool.receive(self._api().get_image(name, chunk_size=CHUNK))
            return image_from_archive(spool, files, image_id, name)
        except BaseException:
            spool.close()
            raise


def _tag_name(ref: str) -> str:
    """The familiar ``NAME:TAG`` a Docker tag takes; a digest cannot be one."""
    parsed = None if is_digest(ref) else parse_reference(ref)
    if parsed is None or parsed.digest is not None:
        raise UsageError(f"cannot tag an image as {ref!r} in the Docker engine: name it NAME[:TAG]")
    return parsed.familiar()


def _reason(exc: BaseException) -> str:
    """The most telling one-line cause of *exc* (the innermost OS error, when there is one)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.strerror:
            return current.strerror
        stack.extend(a for a in current.args if isinstance(a, BaseException))
        stack.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return " ".join(str(exc).split())[:300] or type(exc).__name__


# -- docker load: the archive, generated ---------------------------------------------------------------
