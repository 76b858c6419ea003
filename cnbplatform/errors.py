"""Errors shared by every layer.

Every error a user can meet derives from :class:`CnbError`; it carries the exit code the CLI turns it
into. The CLI is the only place that catches these and exits (docs/design.md section 2).
"""

from __future__ import annotations


class CnbError(Exception):
    """A failure with a one-line message meant for a user and the exit code it maps to."""

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class UsageError(CnbError):
    """Bad arguments or a malformed input given by the user."""

    exit_code = 2


class NotFoundError(CnbError):
    """An image, tag, blob or file that was asked for does not exist."""


class InvalidReferenceError(UsageError):
    """An image reference that does not parse."""


class DigestMismatchError(CnbError):
    """Content whose sha256 differs from the digest that names it (a corrupt blob)."""


class UnsafeArchiveError(CnbError):
    """A tar entry that would land outside the directory it is unpacked into."""


class RegistryError(CnbError):
    """A registry request failed (after retries, where retrying made sense)."""


class UnauthorizedError(RegistryError):
    """The registry refused the credentials (or their absence)."""


class DaemonError(CnbError):
    """The Docker engine could not be reached or refused a request."""


class SandboxUnavailableError(CnbError):
    """No sandbox of the chosen kind can be made on this machine at all (not one buildpack's failure)."""


class PhaseError(CnbError):
    """A lifecycle phase failed; ``code`` is the spec's exit code (docs/spec-notes.md §1.3), ``action`` what was
    being done."""

    def __init__(self, phase: str, code: int, action: str, reason: str = "") -> None:
        message = f"{phase}: {action}" + (f": {reason}" if reason else "")
        super().__init__(message, exit_code=code)
        self.phase = phase
        self.code = code
        self.action = action
