"""``cnb rebase`` and ``cnb lifecycle rebase``: resolve where the images live and run the rebase phase
(docs/spec-notes.md §2.7, §8; docs/design.md §3 decision 6).

Where images live: a name with an explicit store prefix (``oci:``, ``local:``, ``docker-daemon:``, ``docker://``,
``registry:``) is read and written there. Otherwise ``cnb rebase`` uses the local store, a registry with
``--publish`` and the Docker engine with ``--daemon``; a run image name without a prefix follows ``--publish`` /
``--daemon`` too, and otherwise the usual rule (a registry host first means a registry). ``cnb lifecycle rebase``
(``auto``) reads names as the other phases do: the Docker engine with ``-daemon``, else the usual rule.

The app image is read from ``--previous-image`` when given, else from IMAGE; the rebased image goes to IMAGE and
every ``--tag``. On a registry only the app's manifest and config are read, and the write finds every app layer
already present (or mounts it, for a tag in another repository of the same registry): no app layer moves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cnbplatform.errors import CnbError, NotFoundError, PhaseError, UsageError
from cnbplatform.files.apis import LATEST_PLATFORM_API
from cnbplatform.lifecycle.common import EXIT_REBASE, Reporter
from cnbplatform.lifecycle.rebase import RebaseInputs, RebaseResult, app_metadata, choose_run_image, rebase
from cnbplatform.oci.address import ImageAddress, StoreKind, check_destination, parse_address
from cnbplatform.oci.image import Image, as_image, is_index, resolve_platform
from cnbplatform.oci.model import NORMALIZED_CREATED, Platform, created_time
from cnbplatform.oci.store.protocol import ImageStore, Progress
from cnbplatform.oci.store.pull import record_reference
from cnbplatform.oci.store.stores import Stores
from cnbplatform.platform.context import PlatformContext, creation_epoch

if TYPE_CHECKING:
    import datetime

_PREFIXES = ("oci:", "local:", "docker-daemon:", "docker://", "registry:")


@dataclass(frozen=True)
class RebaseRequest:
    """What the user asked for (§2.7 flags; pack's ``rebase`` flags)."""

    image: str
    tags: tuple[str, ...] = ()
    run_image: str | None = None
    previous_image: str | None = None
    publish: bool = False
    daemon: bool = False
    force: bool = False
    report_path: Path | None = None
    created: str = NORMALIZED_CREATED
    platform_api: str = str(LATEST_PLATFORM_API)
    auto: bool = False  # cnb lifecycle rebase: names resolve as in the other phases


def creation_time(value: str | None, now: Callable[[], datetime.datetime] | None = None) -> str:
    """``--creation-time``: ``now`` or Unix seconds (pack's flag); none gives the normalised date (§6.2)."""
    if value == "now" and now is not None:
        return created_time(int(now().timestamp()))
    return created_time(creation_epoch(value))


class _Names:
    """Turns the names on the command line into store addresses (module docstring)."""

    def __init__(self, request: RebaseRequest) -> None:
        if request.publish and request.daemon:
            raise UsageError("--publish and --daemon exclude each other")
        self.request = request

    def _implicit(self, text: str, *, fallback: str) -> ImageAddress:
        if text.startswith(_PREFIXES):
            return parse_address(text)
        if self.request.daemon:
            return parse_address(f"docker-daemon:{text}")
        if self.request.publish:
            return parse_address(f"docker://{text}")
        return parse_address(f"{fallback}{text}")

    def target(self, text: str) -> ImageAddress:
        """The app image and its tags: where the rebased image is written (so named by a tag, not a digest)."""
        return check_destination(self.app(text))

    def app(self, text: str) -> ImageAddress:
        """The app image as it is read (``--previous-image`` may name it by digest)."""
        address = self._implicit(text, fallback="" if self.request.auto else "local:")
        if self.request.publish and address.kind is not StoreKind.REGISTRY:
            raise UsageError(f"--publish writes to a registry, but {text} names the {address.kind} store")
        if self.request.daemon and address.kind is not StoreKind.DAEMON and not self.request.auto:
            raise UsageError(f"--daemon writes to the Docker engine, but {text} names the {address.kind} store")
        return address

    def run_image(self, text: str) -> ImageAddress:
        return self._implicit(text, fallback="")


def _open(stores: Stores, address: ImageAddress, platform: Platform | None) -> tuple[Image, str]:
    """The image at *address*; an index gives its entry for *platform* (None: an index is refused)."""
    store, ref = stores.open(address)
    artifact = store.read(ref)
    if is_index(artifact):
        if platform is None:
            raise UsageError(
                f"{address} is an image index (several platforms): rebase each platform's image by digest, "
                "then assemble the index again"
            )
        artifact = resolve_platform(artifact, platform)
    image = as_image(artifact)
    _ = image.config  # read the config while the store is open (a registry reads nothing else)
    return image, record_reference(address, image.descriptor.digest)


def _read_failed(what: str, text: str, exc: CnbError) -> PhaseError:
    reason = exc.message
    return PhaseError("rebase", EXIT_REBASE, f"read {what} {text}", reason)


def run_rebase(
    ctx: PlatformContext, request: RebaseRequest, reporter: Reporter, progress: Progress | None = None
) -> RebaseResult:
    """Rebase *request.image* (docs/spec-notes.md §8): read the app, pick the run image, swap, save every tag,
    report."""
    names = _Names(request)
    targets = [names.target(text) for text in (request.image, *request.tags)]
    source_text = request.previous_image or request.image
    source = names.app(source_text) if request.previous_image else targets[0]
    with Stores(ctx) as stores:
        try:
            app, _ = _open(stores, source, None)
        except CnbError as exc:
            raise _read_failed("the app image", source_text, exc) from exc
        wanted = app.config.platform
        run_text = request.run_image
        opened: dict[str, tuple[Image, str]] = {}
        if not run_text:
            metadata = app_metadata(app, source_text)
            app_registry = source.reference.registry if source.kind is StoreKind.REGISTRY and source.reference else ""

            def readable(candidate: str) -> bool:
                try:
                    opened[candidate] = _open(stores, names.run_image(candidate), wanted)
                except NotFoundError:
                    return False
                except CnbError as exc:
                    reporter.debug(f"run image {candidate} is not readable: {exc.message}")
                    return False
                return True

            run_text = choose_run_image(metadata, app_registry, readable)
        try:
            run_image, identifier = opened.get(run_text) or _open(stores, names.run_image(run_text), wanted)
        except CnbError as exc:
            raise _read_failed("the run image", run_text, exc) from exc
        destinations: list[tuple[ImageStore, str]] = []
        for address in targets:
            store, ref = stores.open(address)
            destinations.append((store, ref or "latest"))
        return rebase(
            RebaseInputs(
                app_image=app,
                app_name=source_text,
                new_run_image=run_image,
                new_run_image_name=run_text,
                new_run_image_reference=identifier,
                destinations=destinations,
                report_tags=[request.image, *request.tags],
                force=request.force,
                platform_api=request.platform_api,
                created=request.created,
                report_path=request.report_path,
                progress=progress,
            ),
            reporter,
        )
