"""close() fails the waiting clients with PoolClosed first, then closes
connections (psycopg_pool's order): a client never waits on the pool's own
shutdown I/O to learn that nothing is coming.

A queued waiter and an idle connection never coexist (a returned connection
goes straight to the oldest waiter), so the connection close() closes here is
one nobody can return: checked out by a thread that ended without returning it
(close() reclaims such orphans itself)."""

from __future__ import annotations

import gc
import threading
from typing import Any

import psycopg
import pytest

from fastpool import ConnectionPool, NullConnectionPool, PoolClosed
from fastpool._pool_logic import PoolLogic
from tests.support.waiting import wait_until

pytestmark = pytest.mark.postgres

# How long a close() waits for the waiter's PoolClosed before it gives up:
# only a bound on a broken pool, never reached when the order is right.
GIVE_UP = 10.0


@pytest.mark.parametrize("cls", [ConnectionPool, NullConnectionPool])
def test_close_fails_waiters_before_closing_connections(pg_dsn, monkeypatch, cls) -> None:
    monkeypatch.setattr(PoolLogic, "_orphan_scan_period", 3600.0)  # only close() reclaims it
    events: list[Any] = []
    waiter_failed = threading.Event()

    class RecordingConnection(psycopg.Connection[Any]):
        def close(self) -> None:
            if not self.closed:
                # Was the waiter told before this close began?
                events.append(("close", waiter_failed.wait(GIVE_UP)))
            super().close()

    p = cls(
        pg_dsn,
        min_size=int(cls is ConnectionPool),
        max_size=1,
        connection_class=RecordingConnection,
        open=True,
        timeout=30,
    )
    try:
        orphan = threading.Thread(target=lambda: p.getconn().execute("SELECT 1"))
        orphan.start()
        orphan.join()
        gc.collect()

        def wait_for_a_connection() -> None:
            try:
                p.getconn()
            except PoolClosed:
                events.append("waiter got PoolClosed")
                waiter_failed.set()

        waiter = threading.Thread(target=wait_for_a_connection)
        waiter.start()
        wait_until(lambda: p.get_stats()["requests_waiting"] == 1, "the client queued")
        p.close()
        waiter.join()
    finally:
        p.close()
    assert events == ["waiter got PoolClosed", ("close", True)]
