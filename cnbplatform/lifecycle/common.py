"""What every phase shares: how it reports progress without printing (docs/design.md §2: the lifecycle never prints,
never exits, never reads the environment), and the spec's exit codes (docs/spec-notes.md §1.3)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar

from cnbplatform.errors import PhaseError
from cnbplatform.files.apis import UnsupportedApiError, check_buildpack_api

if TYPE_CHECKING:
    from cnbplatform.files.group import GroupFile

T = TypeVar("T")

# docs/spec-notes.md §1.3
EXIT_PLATFORM_API = 11
EXIT_BUILDPACK_API = 12
EXIT_DETECT_FAIL = 20
EXIT_DETECT_ERROR = 21
EXIT_DETECT_OTHER = 22
EXIT_ANALYZE = 32
EXIT_RESTORE = 42
EXIT_BUILDPACK_BUILD = 51
EXIT_BUILD_OTHER = 52
EXIT_EXPORT = 62
EXIT_REBASE = 72
EXIT_LAUNCH = 82


def check_group_apis(group: GroupFile, phase: str) -> None:
    """Every buildpack of group.toml names a supported Buildpack API, or exit 12, as the Go lifecycle's restorer,
    builder and exporter check before anything else (a malformed ``api`` included)."""
    for member in group.group:
        try:
            check_buildpack_api(member.api, f"buildpack {member} in group.toml")
        except UnsupportedApiError as exc:
            raise PhaseError(phase, EXIT_BUILDPACK_API, "check the Buildpack APIs of the group", exc.message) from exc


class Reporter(Protocol):
    """Receives what a phase has to say. Implementations must be thread-safe (detect runs concurrently)."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def debug(self, message: str) -> None: ...

    def output(self, source: str, data: bytes) -> None:
        """A chunk of a buildpack's stdout/stderr; *source* is e.g. ``example/node@1.0.0 build``."""
        ...


class NullReporter:
    def info(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def debug(self, message: str) -> None:
        pass

    def output(self, source: str, data: bytes) -> None:
        pass


@dataclass
class RecordingReporter:
    """Keeps everything it is told; for tests and for summaries."""

    infos: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    debugs: list[str] = field(default_factory=list)
    outputs: list[tuple[str, bytes]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def info(self, message: str) -> None:
        with self._lock:
            self.infos.append(message)

    def warn(self, message: str) -> None:
        with self._lock:
            self.warnings.append(message)

    def debug(self, message: str) -> None:
        with self._lock:
            self.debugs.append(message)

    def output(self, source: str, data: bytes) -> None:
        with self._lock:
            self.outputs.append((source, data))

    def text_of(self, source_prefix: str = "") -> str:
        with self._lock:
            return b"".join(d for s, d in self.outputs if s.startswith(source_prefix)).decode(errors="replace")


def run_concurrently(
    calls: Sequence[Callable[[], T]], workers: int, *, name: str
) -> list[tuple[T | None, BaseException | None]]:
    """Run *calls* on at most *workers* threads (in this thread when one is enough) and wait for all of them.

    Returns ``(result, None)`` or ``(None, exception)`` per call, in the order of *calls*, whichever finished
    first. (A plain pool of threads: ``concurrent.futures`` and the ``logging`` it imports are not needed here.)
    """
    outcomes: list[tuple[T | None, BaseException | None]] = [(None, None)] * len(calls)

    def run(index: int) -> None:
        try:
            outcomes[index] = (calls[index](), None)
        except BaseException as exc:  # handed to the caller, who decides
            outcomes[index] = (None, exc)

    if workers <= 1 or len(calls) <= 1:
        for index in range(len(calls)):
            run(index)
        return outcomes
    pending = iter(range(len(calls)))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next(pending, None)
            if index is None:
                return
            run(index)

    threads = [threading.Thread(target=worker, name=f"{name}-{n}") for n in range(min(workers, len(calls)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
