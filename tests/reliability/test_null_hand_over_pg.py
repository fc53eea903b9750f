"""The null pool's hand-over of a returned connection to a waiting thread:
an exception landing just after it (as a signal would, at the check CPython
makes as soon as a call returns) finds the connection in the waiter's hands,
not the return's to close. The hand-over lets go of the return's holder in the
same step as it gives the slot to the waiter."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from fastpool import NullConnectionPool

pytestmark = pytest.mark.postgres


def test_interrupt_just_after_the_hand_over_leaves_the_waiter_its_connection(
    pg_dsn: str, closing_pools: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = NullConnectionPool(pg_dsn, max_size=1, open=True, timeout=10)
    closing_pools.append(pool)
    held = pool.getconn()
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pool.getconn(timeout=30)))
    waiter.start()
    while pool.get_stats()["requests_waiting"] == 0:
        time.sleep(0.001)
    real = pool._hand_over

    def hand_over_then_interrupt(holder: Any) -> bool:
        monkeypatch.setattr(pool, "_hand_over", real)
        assert real(holder)
        raise KeyboardInterrupt("just after the hand-over")

    monkeypatch.setattr(pool, "_hand_over", hand_over_then_interrupt)
    with pytest.raises(KeyboardInterrupt, match="just after the hand-over"):
        pool.putconn(held)
    waiter.join(30)
    assert not waiter.is_alive(), "the waiter was never served"
    assert got == [held]
    assert not held.closed
    held.execute("SELECT 1")
    pool.putconn(held)  # nobody waits: closed, its place freed
    assert held.closed
    stats = pool.get_stats()
    assert stats["pool_size"] == 0 and stats.get("requests_waiting", 0) == 0
    with pool.connection(timeout=5) as conn:
        conn.execute("SELECT 1")
