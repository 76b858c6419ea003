"""``platform.rebase``: where the names on the command line point, ``--creation-time``, and what is refused
before any phase runs."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from cnbplatform.errors import PhaseError, UsageError
from cnbplatform.lifecycle.common import NullReporter
from cnbplatform.oci.address import StoreKind
from cnbplatform.oci.model import NORMALIZED_CREATED
from cnbplatform.platform.context import PlatformContext
from cnbplatform.platform.rebase import RebaseRequest, _Names, creation_time, run_rebase
from tests.support.images import make_multiplatform_index


def test_creation_time() -> None:
    assert creation_time(None) == NORMALIZED_CREATED
    assert creation_time("0") == "1970-01-01T00:00:00Z"
    assert creation_time("1641013200") == "2022-01-01T05:00:00Z"
    fixed = datetime.datetime(2030, 5, 6, 7, 8, 9, tzinfo=datetime.UTC)
    assert creation_time("now", now=lambda: fixed) == "2030-05-06T07:08:09Z"
    with pytest.raises(UsageError, match="--creation-time"):
        creation_time("yesterday")


def test_names_local_by_default_registry_with_publish_engine_with_daemon() -> None:
    plain = _Names(RebaseRequest("127.0.0.1:5000/app"))
    assert plain.target("127.0.0.1:5000/app").kind is StoreKind.LOCAL
    assert plain.target("oci:/tmp/x:app").kind is StoreKind.LAYOUT
    assert plain.run_image("127.0.0.1:5000/run").kind is StoreKind.REGISTRY
    assert plain.run_image("tiny-run").kind is StoreKind.LOCAL
    publish = _Names(RebaseRequest("app", publish=True))
    assert publish.target("127.0.0.1:5000/app").kind is StoreKind.REGISTRY
    assert publish.run_image("127.0.0.1:5000/run").kind is StoreKind.REGISTRY
    assert publish.run_image("local:tiny-run").kind is StoreKind.LOCAL
    with pytest.raises(UsageError, match="--publish"):
        publish.target("oci:/tmp/x:app")
    daemon = _Names(RebaseRequest("app", daemon=True))
    assert daemon.target("app").kind is StoreKind.DAEMON
    assert daemon.run_image("tiny-run").kind is StoreKind.DAEMON
    with pytest.raises(UsageError, match="exclude"):
        _Names(RebaseRequest("app", publish=True, daemon=True))
    auto = _Names(RebaseRequest("app", auto=True))
    assert auto.target("127.0.0.1:5000/app").kind is StoreKind.REGISTRY
    assert auto.target("app").kind is StoreKind.LOCAL


def test_an_index_is_refused_rather_than_replaced_by_one_platform(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    make_multiplatform_index(layout, "app")
    ctx = PlatformContext(home=tmp_path / "home")
    with pytest.raises(PhaseError, match="image index") as caught:
        run_rebase(ctx, RebaseRequest(f"oci:{layout}:app", run_image=f"oci:{layout}:app"), NullReporter())
    assert caught.value.exit_code == 72


def test_a_missing_app_is_exit_72(tmp_path: Path) -> None:
    ctx = PlatformContext(home=tmp_path / "home")
    with pytest.raises(PhaseError, match="no-such-app") as caught:
        run_rebase(ctx, RebaseRequest("no-such-app", run_image="run"), NullReporter())
    assert caught.value.exit_code == 72
