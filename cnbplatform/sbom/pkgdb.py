"""OS package databases and ``os-release``, parsed from their bytes (no tool of the image is run).

- dpkg: ``/var/lib/dpkg/status`` and the one-file-per-package ``/var/lib/dpkg/status.d/<name>`` of distroless
  images, deb822 stanzas (Debian Policy §5.1). A package counts when its ``Status`` ends in ``installed``
  (``status.d`` stanzas have no ``Status``: they are installed by construction). ``Source: name (version)`` is
  kept. Licenses are not in the status file; they are read from ``/usr/share/doc/<pkg>/copyright`` elsewhere.
- apk: ``/lib/apk/db/installed``, ``K:value`` lines, one blank-line separated block per package (``P`` name,
  ``V`` version, ``A`` arch, ``L`` license, ``o`` origin, ``T`` description, ``U`` url, ``m`` maintainer).
- ``os-release`` (``ID``, ``VERSION_ID``, ``VERSION_CODENAME``, ``PRETTY_NAME``), shell-quoted values.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Literal

from cnbplatform.sbom.model import Distro

Manager = Literal["deb", "apk"]


@dataclass(frozen=True)
class OsPackage:
    manager: Manager
    name: str
    version: str
    arch: str = ""
    source: str = ""
    source_version: str = ""
    licenses: tuple[str, ...] = ()
    description: str = ""
    maintainer: str = ""
    homepage: str = ""
    database: str = ""  # the file it was listed in, absolute (``/var/lib/dpkg/status``)


def deb822_stanzas(text: str) -> list[dict[str, str]]:
    """Stanzas of ``Field: value`` lines (continuation lines start with a space or tab), keys as written."""
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    last = ""
    for line in text.splitlines():
        if not line.strip():
            if current:
                stanzas.append(current)
            current, last = {}, ""
        elif line[0] in " \t":
            if last:
                current[last] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            current[last] = value.strip()
    if current:
        stanzas.append(current)
    return stanzas


def _first_line(value: str) -> str:
    return value.split("\n", 1)[0].strip()


def parse_dpkg_status(text: str, database: str) -> list[OsPackage]:
    """The installed packages of a dpkg status file (or one ``status.d`` entry)."""
    packages: list[OsPackage] = []
    for stanza in deb822_stanzas(text):
        name, version = stanza.get("Package", ""), stanza.get("Version", "")
        status = stanza.get("Status")
        if not name or not version or (status is not None and status.split()[-1:] != ["installed"]):
            continue
        source, _, rest = stanza.get("Source", "").partition(" ")
        packages.append(
            OsPackage(
                manager="deb",
                name=name,
                version=version,
                arch=stanza.get("Architecture", ""),
                source=source,
                source_version=rest.strip().strip("()") if source else "",
                description=_first_line(stanza.get("Description", "")),
                maintainer=stanza.get("Maintainer", ""),
                homepage=stanza.get("Homepage", ""),
                database=database,
            )
        )
    return packages


def parse_apk_installed(text: str, database: str) -> list[OsPackage]:
    """The packages of an apk ``installed`` database."""
    packages: list[OsPackage] = []
    fields: dict[str, str] = {}

    def flush() -> None:
        if fields.get("P") and fields.get("V"):
            origin = fields.get("o", "")
            packages.append(
                OsPackage(
                    manager="apk",
                    name=fields["P"],
                    version=fields["V"],
                    arch=fields.get("A", ""),
                    source=origin if origin != fields["P"] else "",
                    licenses=(fields["L"],) if fields.get("L") else (),
                    description=fields.get("T", ""),
                    maintainer=fields.get("m", ""),
                    homepage=fields.get("U", ""),
                    database=database,
                )
            )
        fields.clear()

    for line in text.splitlines():
        if not line.strip():
            flush()
        elif len(line) > 1 and line[1] == ":" and line[0] not in fields:
            fields[line[0]] = line[2:].strip()
    flush()
    return packages


def parse_os_release(text: str) -> Distro | None:
    """The distribution an ``os-release`` file names; ``None`` without an ``ID``."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            words = shlex.split(raw)
        except ValueError:
            words = [raw.strip("\"'")]
        values[key.strip()] = " ".join(words)
    if not values.get("ID"):
        return None
    return Distro(
        id=values["ID"].lower(),
        version_id=values.get("VERSION_ID", ""),
        codename=values.get("VERSION_CODENAME", ""),
        pretty_name=values.get("PRETTY_NAME", ""),
    )
