"""License names as SBOM formats want them: SPDX ids and expressions where possible, free names otherwise.

Debian's short names (``GPL-2+``, ``Expat``, ``BSD-3-clause``) are mapped to SPDX ids (``GPL-2.0-or-later``,
``MIT``, ``BSD-3-Clause``); a name that is not on the SPDX license list stays as it is, and each writer decides
how to carry it (CycloneDX ``license.name``, SPDX ``LicenseRef-``).
"""

from __future__ import annotations

import functools
import re
from typing import Any

_GNU = re.compile(r"^(AGPL|LGPL|GPL|GFDL)-?(\d+(?:\.\d+)?)(\+)?$", re.IGNORECASE)
_DEBIAN_ALIASES = {
    "expat": "MIT",
    "mit/x11": "MIT",
    "zlib": "Zlib",
    "psf-2": "PSF-2.0",
    "apache-2": "Apache-2.0",
    "mpl-2": "MPL-2.0",
    "cc0": "CC0-1.0",
    "artistic-2": "Artistic-2.0",
}
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+_-]*$")


@functools.cache
def _licensing() -> Any:
    from license_expression import get_spdx_licensing  # type: ignore[import-untyped]  # no type information

    return get_spdx_licensing()


@functools.cache
def _known_ids() -> dict[str, str]:
    """SPDX license and exception ids by lower-cased id."""
    out: dict[str, str] = {}
    for symbol in _licensing().known_symbols.values():
        out[str(symbol.key).lower()] = str(symbol.key)
    return out


def spdx_id(name: str) -> str | None:
    """*name* as an SPDX license id (case fixed), or ``None`` when it is not on the SPDX license list."""
    return _known_ids().get(name.strip().lower())


def is_spdx_expression(text: str) -> bool:
    """Whether *text* parses as an SPDX license expression using only listed ids (``MIT OR Apache-2.0``)."""
    try:
        info = _licensing().validate(text, strict=True)
    except Exception:  # license_expression raises several unrelated exception types
        return False
    return not info.errors and not info.invalid_symbols


def normalize_expression(text: str) -> str:
    """An SPDX expression in the library's normalised spelling (ids case-fixed); *text* unchanged if it does not
    parse."""
    try:
        return str(_licensing().parse(text, validate=True, strict=True))
    except Exception:
        return text


def parse_expression(text: str) -> Any:
    """*text* as a ``license_expression`` object (``LicenseRef-`` symbols allowed), as spdx-tools models want."""
    return _licensing().parse(text)


def debian_license(name: str) -> str:
    """A Debian copyright short name as an SPDX id when there is one (``GPL-2+`` -> ``GPL-2.0-or-later``)."""
    name = name.strip()
    match = _GNU.match(name)
    if match:
        family, version, plus = match.group(1).upper(), match.group(2), match.group(3)
        if "." not in version:
            version += ".0"
        candidate = f"{family}-{version}-{'or-later' if plus else 'only'}"
        return spdx_id(candidate) or name
    alias = _DEBIAN_ALIASES.get(name.lower())
    if alias:
        return alias
    return spdx_id(name) or name


_COMMON_LICENSES = re.compile(r"/usr/share/common-licenses/([A-Za-z0-9][A-Za-z0-9.+_-]*)")
_SPLIT = re.compile(r"\s+(?:or|and)\s+|\s*[,|&]\s*", re.IGNORECASE)


def copyright_licenses(text: str) -> tuple[str, ...]:
    """The licenses a Debian ``copyright`` file names, mapped with :func:`debian_license`, sorted.

    Reads the ``License:`` fields of machine-readable (DEP-5) files; in other files, references to
    ``/usr/share/common-licenses/<name>`` (as Syft does). License texts are not interpreted.
    """
    names: set[str] = set()
    machine_readable = text.lstrip().startswith("Format:")
    for line in text.splitlines():
        if machine_readable and line.startswith("License:"):
            value = line[len("License:") :].strip()
            value = re.split(r"\s+with\s+", value, maxsplit=1, flags=re.IGNORECASE)[0]
            for token in _SPLIT.split(value):
                token = token.strip().strip("()")
                if token and _TOKEN.match(token):
                    names.add(debian_license(token))
        for match in () if machine_readable else _COMMON_LICENSES.finditer(line):
            names.add(debian_license(match.group(1).rstrip(".")))
    return tuple(sorted(names))
