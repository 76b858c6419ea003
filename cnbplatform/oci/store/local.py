"""The local image store: one OCI image layout under ``$CNB_HOME/images`` holding every local image by name.

Names are stored normalised (``myapp`` -> ``docker.io/library/myapp:latest``) so ``myapp`` and
``docker.io/library/myapp`` are the same image, as they are for Docker. docs/design.md §3 decision 7.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cnbplatform.errors import NotFoundError, UsageError
from cnbplatform.oci.digest import is_digest
from cnbplatform.oci.image import Artifact
from cnbplatform.oci.reference import parse_reference
from cnbplatform.oci.store.layout import LayoutStore
from cnbplatform.oci.store.protocol import Progress, StoredRef, WriteResult


def normalize_name(name: str) -> str:
    """The key an image is stored under: the fully normalised reference (or a bare digest)."""
    if is_digest(name):
        return name
    return str(parse_reference(name))


class LocalStore:
    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.layout = LayoutStore(self.home / "images")

    @property
    def description(self) -> str:
        return "local store"

    def read(self, ref: str | None) -> Artifact:
        if ref is None:
            raise UsageError("the local store needs an image name")
        self._check_holds(ref)
        try:
            return self.layout.read(normalize_name(ref))
        except NotFoundError as exc:
            raise NotFoundError(f"image {_familiar(ref)!r} not found in the local store") from exc

    def _check_holds(self, ref: str) -> None:
        """Refuse a name before the store exists (a fresh ``$CNB_HOME``) as a missing image, not a bad layout."""
        if not (self.layout.root / "index.json").exists():
            raise NotFoundError(f"image {_familiar(ref)!r} not found in the local store")

    def write(self, artifact: Artifact, ref: str | None, progress: Progress | None = None) -> WriteResult:
        return self.layout.write(artifact, normalize_name(ref) if ref is not None else None, progress)

    def delete(self, ref: str) -> None:
        self._check_holds(ref)
        try:
            self.layout.delete(normalize_name(ref))
        except NotFoundError as exc:
            raise NotFoundError(f"image {_familiar(ref)!r} not found in the local store") from exc
        self.layout.gc()

    def list(self) -> Sequence[StoredRef]:
        out: list[StoredRef] = []
        if not (self.layout.root / "index.json").exists():
            return out
        for item in self.layout.list():
            name = item.name
            if name and not is_digest(name):
                name = parse_reference(name).familiar()
            out.append(StoredRef(name, item.descriptor))
        return sorted(out, key=lambda r: r.name)

    def tag(self, ref: str, new_ref: str) -> None:
        self._check_holds(ref)
        try:
            self.layout.tag(normalize_name(ref), normalize_name(new_ref))
        except NotFoundError as exc:
            raise NotFoundError(f"image {_familiar(ref)!r} not found in the local store") from exc


def _familiar(name: str) -> str:
    return name if is_digest(name) else parse_reference(name).familiar()
