"""Rendering shared by commands: the console, progress bars, and errors as one line."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.markup import escape

from cnbplatform.errors import CnbError

err_console = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
out_console = Console(highlight=False, soft_wrap=True, markup=False)


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
        self._tasks: dict[str, Any] = {}
        self._bars: Any = None
        if self.enabled:  # rich.progress is only imported when bars will be drawn
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self._bars = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TextColumn("{task.fields[status]}"),
                console=err_console,
                transient=False,
            )

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
    err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    if OPTIONS.verbose:
        seen = {id(exc)}
        cause = exc.__cause__ or exc.__context__
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            err_console.print(f"  caused by: {type(cause).__name__}: {cause}", markup=False)
            cause = cause.__cause__ or cause.__context__


class ConsoleReporter:
    """A lifecycle Reporter for the terminal: buildpack output to stdout as it comes, messages to stderr."""

    def __init__(self, level: str = "info", prefix_output: bool = False) -> None:
        self.level = level
        self.prefix_output = prefix_output
        self._lock = threading.Lock()
        self._at_line_start: dict[str, bool] = {}

    def info(self, message: str) -> None:
        if self.level != "warn" and self.level != "error":
            with self._lock:
                err_console.print(message, markup=False, highlight=False)

    def warn(self, message: str) -> None:
        if self.level != "error":
            with self._lock:
                err_console.print(f"[yellow]warning:[/] {escape(message)}", markup=True, highlight=False)

    def debug(self, message: str) -> None:
        if self.level == "debug" or OPTIONS.verbose:
            with self._lock:
                err_console.print(message, markup=False, highlight=False, style="dim")

    def output(self, source: str, data: bytes) -> None:
        with self._lock:
            if self.prefix_output:
                out = bytearray()
                for line in data.splitlines(keepends=True):
                    if self._at_line_start.get(source, True):
                        out += f"[{source}] ".encode()
                    out += line
                    self._at_line_start[source] = line.endswith(b"\n")
                data = bytes(out)
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()


@contextlib.contextmanager
def reporter_for(level: str | None, *, prefix_output: bool = False) -> Iterator[ConsoleReporter]:
    yield ConsoleReporter((level or "info").lower(), prefix_output)
