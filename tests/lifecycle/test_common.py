"""The small helpers every phase shares."""

from __future__ import annotations

import threading
from collections.abc import Callable

from cnbplatform.lifecycle.common import run_concurrently


def test_run_concurrently_runs_calls_side_by_side_and_returns_each_outcome_in_order() -> None:
    barrier = threading.Barrier(2, timeout=30)  # both calls must be running at once to pass it
    seen: list[int] = []

    def meet(n: int) -> Callable[[], int]:
        def call() -> int:
            barrier.wait()
            seen.append(threading.get_ident())
            return n

        return call

    def fail() -> int:
        raise ValueError("no")

    outcomes = run_concurrently([meet(1), meet(2), fail], 2, name="test")
    assert [result for result, _ in outcomes] == [1, 2, None]
    assert [type(error) for _, error in outcomes] == [type(None), type(None), ValueError]
    assert threading.get_ident() not in seen and len(set(seen)) == 2


def test_run_concurrently_with_one_worker_runs_in_the_calling_thread() -> None:
    idents: list[int] = []
    outcomes = run_concurrently([lambda: idents.append(threading.get_ident()) or 7] * 3, 1, name="test")
    assert outcomes == [(7, None)] * 3
    assert idents == [threading.get_ident()] * 3
