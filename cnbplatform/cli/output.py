"""Rendering shared by commands: the console, progress bars, and errors as one line."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TransferSpeedColumn

from cnbplatform.errors import CnbError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True)


@dataclass
class Options:
    verbose: int = 0
    quiet: bool = False


OPTIONS = Options()


def setup_logging(verbose: int) -> None:
    OPTIONS.verbose = verbose
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root = logging.getLogger("cnbplatform")
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)


class TransferProgress:
    """A Progress sink (``cnbplatform.oci.store.Progress``) drawing rich bars; silent when not a TTY."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and err_console.is_terminal
        self._bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[status]}"),
            console=err_console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> TransferProgress:
        if self.enabled:
            self._bars.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self.enabled:
            self._bars.stop()

    def start(self, key: str, description: str, total: int) -> None:
        if self.enabled and key not in self._tasks:
            self._tasks[key] = self._bars.add_task(description, total=max(total, 1), status="")

    def advance(self, key: str, amount: int) -> None:
        if self.enabled and key in self._tasks:
            self._bars.advance(self._tasks[key], amount)

    def finish(self, key: str, status: str) -> None:
        if not self.enabled:
            return
        if key not in self._tasks:
            self.start(key, f"blob {key[7:19]}", 1)
        task = self._tasks[key]
        total = next((t.total for t in self._bars.tasks if t.id == task), None) or 1
        self._bars.update(task, completed=total, status=status)


def render_error(exc: BaseException) -> None:
    """One line for the user; with -v, the chain of causes as well."""
    message = exc.message if isinstance(exc, CnbError) else f"{type(exc).__name__}: {exc}"
    err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    if OPTIONS.verbose:
        seen = {id(exc)}
        cause = exc.__cause__ or exc.__context__
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            err_console.print(f"  caused by: {type(cause).__name__}: {cause}", markup=False)
            cause = cause.__cause__ or cause.__context__
