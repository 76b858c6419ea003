"""A tiny build-image root filesystem for sandboxed tests (docs/design.md §3 decision 8: a busybox base).

``make_busybox_rootfs(dir)`` makes ``dir`` look like an unpacked build image: ``/bin/busybox`` copied from the host's
``busybox-static`` with a symlink for every applet, users ``root`` and ``cnb`` (1000:1000), ``/tmp`` (1777) and the
CNB dirs ``/layers``, ``/workspace``, ``/platform``, ``/cnb``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HOST_BUSYBOX = Path("/bin/busybox")
PASSWD = "root:x:0:0:root:/root:/bin/sh\ncnb:x:1000:1000:cnb:/home/cnb:/bin/sh\n"
GROUP = "root:x:0:\ncnb:x:1000:\n"


def busybox_applets() -> list[str]:
    """The applets the host's busybox provides (``busybox --list``)."""
    done = subprocess.run([str(HOST_BUSYBOX), "--list"], capture_output=True, text=True, check=True)
    return sorted({name for name in done.stdout.split() if name and "/" not in name})


def make_busybox_rootfs(directory: Path) -> Path:
    """Populate *directory* as a busybox build image root and return it."""
    root = Path(directory)
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy2(HOST_BUSYBOX, root / "bin" / "busybox")
    for applet in busybox_applets():
        link = root / "bin" / applet
        if applet != "busybox" and not os.path.lexists(link):
            os.symlink("busybox", link)
    (root / "usr").mkdir(exist_ok=True)
    if not os.path.lexists(root / "usr" / "bin"):
        os.symlink("../bin", root / "usr" / "bin")
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "etc" / "os-release").write_text('ID=busybox\nVERSION_ID="1.35"\n')
    (root / "home" / "cnb").mkdir(parents=True, exist_ok=True)
    (root / "root").mkdir(mode=0o700, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    for name in ("layers", "workspace", "platform", "cnb"):
        (root / name).mkdir(exist_ok=True)
    return root
