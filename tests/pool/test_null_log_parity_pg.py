"""Differential test for the null pools: the same misuse, run through
psycopg_pool's and fastpool's NullConnectionPool, leaves the same WARNING
records on the ``psycopg`` loggers. A null pool resets (and logs) a returned
connection only when a client is waiting for it, so every misuse is done with
one queued; with nobody waiting both close it without a word. The async twin
is tests/pool_async/test_async_null_log_parity_pg.py."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

import fastpool
from tests.support.waiting import wait_until

psycopg_pool = pytest.importorskip("psycopg_pool")

pytestmark = pytest.mark.postgres


def in_transaction(conn: Any, admin: psycopg.Connection) -> None:
    conn.execute("SELECT 1")


def in_error(conn: Any, admin: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1 / 0")


def mid_query(conn: Any, admin: psycopg.Connection) -> None:
    conn.pgconn.send_query(b"SELECT 1")


def closed(conn: Any, admin: psycopg.Connection) -> None:
    conn.close()


def rollback_fails(conn: Any, admin: psycopg.Connection) -> None:
    conn.execute("SELECT 1")
    admin.execute("SELECT pg_terminate_backend(%s, 5000)", [conn.info.backend_pid])


def untouched(conn: Any, admin: psycopg.Connection) -> None:
    pass


def failing_reset(conn: Any) -> None:
    raise RuntimeError("reset refused")


MISUSES = [
    pytest.param(in_transaction, {}, id="in-transaction"),
    pytest.param(in_error, {}, id="in-error"),
    pytest.param(mid_query, {}, id="mid-query"),
    pytest.param(closed, {}, id="closed"),
    pytest.param(rollback_fails, {}, id="rollback-fails"),
    pytest.param(untouched, {"reset": failing_reset}, id="reset-raises"),
]


def return_misused(p: Any, admin: psycopg.Connection, misuse: Any, waiter: bool) -> None:
    conn = p.getconn()
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.append(p.getconn()))
    if waiter:
        t.start()
        wait_until(lambda: p.get_stats()["requests_waiting"] == 1)
    misuse(conn, admin)
    p.putconn(conn)
    if waiter:
        t.join(10)
        assert got, "the waiter got no connection"
        p.putconn(got[0])


@pytest.mark.parametrize("misuse, pool_kwargs", MISUSES)
@pytest.mark.parametrize("waiter", [True, False], ids=["a-client-waits", "nobody-waits"])
def test_same_warning_records_as_psycopg_pool(
    pg_dsn: str, admin, caplog, psycopg_warnings, misuse, pool_kwargs, waiter: bool
) -> None:
    seen = {}
    for cls in (psycopg_pool.NullConnectionPool, fastpool.NullConnectionPool):
        caplog.clear()
        with cls(pg_dsn, name="parity", max_size=1, timeout=5, **pool_kwargs) as p:
            return_misused(p, admin, misuse, waiter)
            # psycopg_pool resets in a worker when there is a reset callback
            wait_until(lambda: p.get_stats()["pool_size"] == 0)
        seen[cls.__module__.split(".")[0]] = psycopg_warnings()
    if waiter:
        assert seen["psycopg_pool"], "the misuse provokes no warning: it tests nothing"
    assert seen["fastpool"] == seen["psycopg_pool"]


@pytest.mark.parametrize("configure_fault", ["raises", "leaves-a-transaction"])
def test_same_records_when_wait_fails_in_configure(
    pg_dsn: str, caplog, psycopg_warnings, configure_fault: str
) -> None:
    def configure(conn: Any) -> None:
        if configure_fault == "raises":
            raise RuntimeError("configure refused")
        conn.execute("SELECT 1")

    seen = {}
    for cls in (psycopg_pool.NullConnectionPool, fastpool.NullConnectionPool):
        caplog.clear()
        with cls(pg_dsn, name="parity", configure=configure) as p:
            # one attempt within the timeout: the retry would come after ~1 s
            with pytest.raises(
                Exception, match=r"^pool initialization incomplete after 0\.5 sec$"
            ) as info:
                p.wait(0.5)
            assert type(info.value).__name__ == "PoolTimeout"
            assert p.closed
        seen[cls.__module__.split(".")[0]] = psycopg_warnings()
    assert len(seen["psycopg_pool"]) == 1
    assert seen["fastpool"] == seen["psycopg_pool"]
