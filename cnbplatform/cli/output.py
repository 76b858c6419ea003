"""Rendering shared by commands: the console, progress bars, and errors as one line.

Plain text is written straight to the stream: importing rich costs about 40 ms, which is a tenth of a no-op
build, so it is only imported for what needs it (tables, markup, progress bars on a terminal).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from cnbplatform.errors import CnbError

_STYLES = {"bold red": "1;31", "yellow": "33", "dim": "2", "bold": "1"}


class Console:
    """A console on stdout or stderr (looked up at each call, so redirections and test runners work).

    ``print`` of a plain string needs nothing but the stream; rich renderables and markup go through a rich
    Console made on first use.
    """

    def __init__(self, *, stderr: bool = False) -> None:
        self.stderr = stderr
        self._rich: Any = None

    @property
    def file(self) -> IO[str]:
        return sys.stderr if self.stderr else sys.stdout

    @property
    def is_terminal(self) -> bool:
        try:
            return self.file.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def color(self) -> bool:
        return self.is_terminal and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"

    def print(
        self, obj: object = "", *, markup: bool = False, highlight: bool = False, style: str | None = None
    ) -> None:
        if isinstance(obj, str) and not markup:
            code = _STYLES.get(style or "")
            text = f"\x1b[{code}m{obj}\x1b[0m" if code and self.color else obj
            stream = self.file
            stream.write(text + "\n")
            stream.flush()
            return
        self.rich().print(obj, markup=markup, highlight=highlight, style=style)

    def rich(self) -> Any:
        """The rich Console over the same stream (imported on first use)."""
        if self._rich is None or self._rich.file is not self.file:
            from rich.console import Console as RichConsole

            self._rich = RichConsole(file=self.file, highlight=False, soft_wrap=True, markup=False)
        return self._rich

    def styled(self, prefix: str, style: str, message: str) -> None:
        """One line whose *prefix* is coloured on a terminal (``error:``, ``warning:``)."""
        code = _STYLES[style]
        head = f"\x1b[{code}m{prefix}\x1b[0m" if self.color else prefix
        stream = self.file
        stream.write(f"{head} {message}\n")
        stream.flush()


err_console = Console(stderr=True)
out_console = Console()


@dataclass
class Options:
    verbose: int = 0
    quiet: bool = False


OPTIONS = Options()


def setup_logging(verbose: int) -> None:
    OPTIONS.verbose = verbose
    if verbose:
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
        root = logging.getLogger("cnbplatform")
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)


class TransferProgress:
    """A Progress sink (``cnbplatform.oci.store.protocol.Progress``) drawing rich bars; silent when not a TTY."""

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
                console=err_console.rich(),
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


def one_line(text: str) -> str:
    """*text* with every character that is not printable (line breaks, other control characters, the surrogates
    of a name that is not UTF-8) shown as its Python escape: messages quote names from untrusted files and buildpack
    outputs, and each message must stay one line on a terminal (and not forge the next one)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\t" else repr(c)[1:-1] for c in text)


def render_error(exc: BaseException) -> None:
    """One line for the user; with -v, the chain of causes as well."""
    message = exc.message if isinstance(exc, CnbError) else f"{type(exc).__name__}: {exc}"
    err_console.styled("error:", "bold red", one_line(message))
    if OPTIONS.verbose:
        seen = {id(exc)}
        cause = exc.__cause__ or exc.__context__
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            err_console.print(f"  caused by: {type(cause).__name__}: {cause}", markup=False)
            cause = cause.__cause__ or cause.__context__


def render_internal_error(exc: BaseException) -> None:
    """An exception no layer turned into a CnbError: a bug. One line (and with -v, the traceback); every input
    a user can give should end in :func:`render_error` instead (tests fuzz for this line)."""
    message = one_line(" ".join(str(exc).split()))
    err_console.styled(
        "error:", "bold red", f"internal error: {type(exc).__name__}: {message} (cnb -v … shows the traceback)"
    )
    if OPTIONS.verbose:
        import traceback

        err_console.file.write("".join(traceback.format_exception(exc)))
        err_console.file.flush()


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
                err_console.print(one_line(message))

    def warn(self, message: str) -> None:
        if self.level != "error":
            with self._lock:
                err_console.styled("warning:", "yellow", one_line(message))

    def debug(self, message: str) -> None:
        if self.level == "debug" or OPTIONS.verbose:
            with self._lock:
                err_console.print(message, style="dim")

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
