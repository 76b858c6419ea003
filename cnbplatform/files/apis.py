"""API versions and the checks every phase makes before it reads anything else (docs/spec-notes.md §1.2, §1.3).

A version is ``<major>.<minor>`` or ``<major>`` (= ``<major>.0``); like the Go lifecycle we also accept a leading
``v``. For major 0 a supported version must match exactly; for major > 0 a supported ``X.m`` also supports every
``X.n`` with ``n <= m`` (minor bumps are additive).

Exit codes: an unset, blank or unsupported ``CNB_PLATFORM_API`` is 11; an unsupported buildpack ``api`` is 12.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from cnbplatform import __version__
from cnbplatform.errors import CnbError

PLATFORM_API_EXIT = 11
BUILDPACK_API_EXIT = 12

_VERSION_RE = re.compile(r"^v?(\d+)(?:\.(\d+))?$")


class ApiVersionError(CnbError, ValueError):
    """A string that is not an API version (``0.12``, ``1``)."""


class UnsupportedApiError(CnbError):
    """A Platform API or Buildpack API this lifecycle does not implement (exit 11 or 12)."""


@dataclass(frozen=True, order=True)
class ApiVersion:
    """A ``<major>.<minor>`` API version; ``ApiVersion.parse("1") == ApiVersion(1, 0)``."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str | ApiVersion) -> ApiVersion:
        if isinstance(text, ApiVersion):
            return text
        match = _VERSION_RE.match(text.strip()) if isinstance(text, str) else None
        if not match:
            raise ApiVersionError(f"invalid API version {text!r}: expected <major>.<minor> or <major>")
        return cls(int(match.group(1)), int(match.group(2) or 0))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, other: str | ApiVersion) -> bool:
        return self >= ApiVersion.parse(other)

    def less_than(self, other: str | ApiVersion) -> bool:
        return self < ApiVersion.parse(other)

    def supports(self, requested: ApiVersion) -> bool:
        """True when an implementation of *self* can serve something written against *requested*."""
        if self.major == 0:
            return self == requested
        return self.major == requested.major and self.minor >= requested.minor


def _versions(*texts: str) -> tuple[ApiVersion, ...]:
    return tuple(ApiVersion.parse(t) for t in texts)


SUPPORTED_PLATFORM_APIS = _versions("0.7", "0.8", "0.9", "0.10", "0.11", "0.12", "0.13", "0.14", "0.15")
SUPPORTED_BUILDPACK_APIS = _versions("0.7", "0.8", "0.9", "0.10", "0.11", "0.12")
DEPRECATED_PLATFORM_APIS: tuple[ApiVersion, ...] = ()
DEPRECATED_BUILDPACK_APIS: tuple[ApiVersion, ...] = ()
LATEST_PLATFORM_API = max(SUPPORTED_PLATFORM_APIS)
LATEST_BUILDPACK_API = max(SUPPORTED_BUILDPACK_APIS)

#: The version cnb's lifecycle and launcher give themselves in labels (a builder's ``lifecycle.version``, an app's
#: ``launcher.version``): the release of the Go lifecycle that implements the same APIs (Platform 0.7 to 0.15,
#: Buildpack 0.7 to 0.12), with cnb's own version as semver build metadata. Tools compare it with Go lifecycle
#: releases: pack runs the creator from 0.7.4 on and hides an app's run image reference below 0.5.0.
LIFECYCLE_VERSION = "0.21.0+cnb." + __version__

DEPRECATION_MODES = ("quiet", "warn", "error")


def is_supported(version: ApiVersion, supported: Iterable[ApiVersion]) -> bool:
    return any(s.supports(version) for s in supported)


def _listing(versions: Iterable[ApiVersion]) -> str:
    return ", ".join(str(v) for v in versions)


def _check(
    value: str | None,
    *,
    what: str,
    exit_code: int,
    supported: tuple[ApiVersion, ...],
    deprecated: tuple[ApiVersion, ...],
    deprecation_mode: str,
    unset_hint: str,
) -> ApiVersion:
    if value is None or not value.strip():
        raise UnsupportedApiError(
            f"{what}: {unset_hint}; supported: {_listing(supported)}",
            exit_code=exit_code,
        )
    try:
        version = ApiVersion.parse(value)
    except ApiVersionError as exc:
        raise UnsupportedApiError(
            f"{what}: {value!r} is not an API version; supported: {_listing(supported)}",
            exit_code=exit_code,
        ) from exc
    if not is_supported(version, supported):
        raise UnsupportedApiError(
            f"{what}: API {value!r} is not supported; supported: {_listing(supported)}",
            exit_code=exit_code,
        )
    if deprecation_mode == "error" and is_supported(version, deprecated):
        raise UnsupportedApiError(
            f"{what}: API {value!r} is deprecated and CNB_DEPRECATION_MODE is 'error'",
            exit_code=exit_code,
        )
    return version


def check_platform_api(
    value: str | None,
    *,
    deprecation_mode: str = "warn",
    supported: tuple[ApiVersion, ...] = SUPPORTED_PLATFORM_APIS,
    deprecated: tuple[ApiVersion, ...] = DEPRECATED_PLATFORM_APIS,
) -> ApiVersion:
    """Check ``CNB_PLATFORM_API`` (§1.2): unset/blank, malformed or unsupported raises exit 11.

    A deprecated version raises only with ``deprecation_mode="error"``; callers warn for ``"warn"`` using
    :func:`is_deprecated_platform_api`.
    """
    return _check(
        value,
        what="Platform API (CNB_PLATFORM_API)",
        exit_code=PLATFORM_API_EXIT,
        supported=supported,
        deprecated=deprecated,
        deprecation_mode=deprecation_mode,
        unset_hint="not set; please set 'CNB_PLATFORM_API'",
    )


def check_buildpack_api(
    value: str | None,
    what: str,
    *,
    deprecation_mode: str = "warn",
    supported: tuple[ApiVersion, ...] = SUPPORTED_BUILDPACK_APIS,
    deprecated: tuple[ApiVersion, ...] = DEPRECATED_BUILDPACK_APIS,
) -> ApiVersion:
    """Check a buildpack's or extension's ``api`` (§1.2); *what* names it (``"buildpack example/node@1.2.3"``).

    Missing, malformed or unsupported raises exit 12.
    """
    return _check(
        value,
        what=f"{what}: Buildpack API",
        exit_code=BUILDPACK_API_EXIT,
        supported=supported,
        deprecated=deprecated,
        deprecation_mode=deprecation_mode,
        unset_hint="no 'api' set",
    )


def is_deprecated_platform_api(version: ApiVersion) -> bool:
    return is_supported(version, DEPRECATED_PLATFORM_APIS)


def is_deprecated_buildpack_api(version: ApiVersion) -> bool:
    return is_supported(version, DEPRECATED_BUILDPACK_APIS)
