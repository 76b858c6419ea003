"""cnb resolve against what kbld itself wrote for the same input and images (``kbld/``, see its README): the same
documents, byte-identical ``kbld.k14s.io/images`` annotations, a byte-identical imgpkg ImagesLock, and the same
Config lock (cnb's overrides also carry their origins, a field kbld ignores)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.conftest import Cnb
from tests.resolve.conftest import Pushed
from tests.resolve.test_resolve import ANNOTATION, app_yaml
from tests.support.registry import RunningRegistry

KBLD = Path(__file__).resolve().parent / "kbld"


def golden(name: str, host: str) -> str:
    return (KBLD / name).read_text().replace("REGISTRY", host)


def test_same_output_as_kbld(cnb: Cnb, registry: RunningRegistry, pushed: Pushed, tmp_path: Path) -> None:
    source = tmp_path / "app.yml"
    source.write_text(app_yaml(registry.host))
    ours = cnb("resolve", "-f", str(source), "--imgpkg-lock-output", str(tmp_path / "images.yml")).stdout
    theirs = [d for d in yaml.safe_load_all(golden("app.out.yml", registry.host)) if d]
    mine = [d for d in yaml.safe_load_all(ours) if d]
    assert len(mine) == len(theirs) == 3
    for a, b in zip(mine, theirs, strict=True):
        assert a["metadata"]["annotations"].pop(ANNOTATION) == b["metadata"]["annotations"].pop(ANNOTATION)
        assert a == b
    assert (tmp_path / "images.yml").read_text() == golden("app.images-lock.yml", registry.host)
    cnb("resolve", "-f", str(source), "--lock-output", str(tmp_path / "lock.yml"))
    lock: dict[str, Any] = yaml.safe_load((tmp_path / "lock.yml").read_text())
    kbld_lock = yaml.safe_load(golden("app.lock.yml", registry.host))
    for override in lock["overrides"]:
        assert override.pop("origins")  # cnb's addition
    for doc in (lock, kbld_lock):
        doc.pop("minimumRequiredVersion")  # kbld writes its own version ("develop" for a source build)
    assert lock == kbld_lock
