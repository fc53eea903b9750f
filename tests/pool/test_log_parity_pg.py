"""Differential test: the same misuse, run through psycopg_pool and through
fastpool, must leave the same WARNING records (logger, level, text) on the
``psycopg`` loggers, so log-based alerts and tests written for psycopg_pool
keep working after the import swap. Sync pools here; the async twin is
tests/pool_async/test_async_log_parity_pg.py."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

import fastpool
from tests.support.waiting import wait_until

from .conftest import kill_backend

psycopg_pool = pytest.importorskip("psycopg_pool")

pytestmark = pytest.mark.postgres


def settled(p: Any) -> None:
    # psycopg_pool resets and returns in a worker thread: wait until the
    # connection (or its replacement) is back before comparing.
    wait_until(lambda: p.get_stats()["pool_available"] == 1)


def returned_in_transaction(p: Any, admin: psycopg.Connection) -> None:
    conn = p.getconn()
    conn.execute("SELECT 1")
    p.putconn(conn)
    settled(p)


def returned_in_error(p: Any, admin: psycopg.Connection) -> None:
    conn = p.getconn()
    with pytest.raises(psycopg.errors.DivisionByZero):
        conn.execute("SELECT 1 / 0")
    p.putconn(conn)
    settled(p)


def returned_mid_query(p: Any, admin: psycopg.Connection) -> None:
    conn = p.getconn()
    conn.pgconn.send_query(b"SELECT 1")
    p.putconn(conn)
    settled(p)


def closed_inside_the_block(p: Any, admin: psycopg.Connection) -> None:
    with p.connection() as conn:
        conn.close()
    settled(p)


def rollback_fails_on_return(p: Any, admin: psycopg.Connection) -> None:
    conn = p.getconn()
    conn.execute("SELECT 1")
    kill_backend(admin, conn.info.backend_pid)
    wait_until(
        lambda: admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [conn.info.backend_pid]
        ).fetchone()
        == (0,)
    )
    p.putconn(conn)
    settled(p)


def check_finds_a_dead_connection(p: Any, admin: psycopg.Connection) -> None:
    with p.connection() as conn:
        pid = conn.info.backend_pid
    kill_backend(admin, pid)
    wait_until(
        lambda: admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]
        ).fetchone()
        == (0,)
    )
    p.check()
    settled(p)


def failing_reset(conn: Any) -> None:
    raise RuntimeError("reset refused")


def reset_leaving_a_transaction(conn: Any) -> None:
    conn.execute("SELECT 1")


def reset_fails(p: Any, admin: psycopg.Connection) -> None:
    with p.connection():
        pass
    settled(p)


SCENARIOS = [
    pytest.param(returned_in_transaction, {}, id="returned-in-transaction"),
    pytest.param(returned_in_error, {}, id="returned-in-error"),
    pytest.param(returned_mid_query, {}, id="returned-mid-query"),
    pytest.param(closed_inside_the_block, {}, id="closed-inside-the-block"),
    pytest.param(rollback_fails_on_return, {}, id="rollback-fails-on-return"),
    pytest.param(check_finds_a_dead_connection, {}, id="check-finds-a-dead-connection"),
    pytest.param(reset_fails, {"reset": failing_reset}, id="reset-raises"),
    pytest.param(
        reset_fails, {"reset": reset_leaving_a_transaction}, id="reset-leaves-a-transaction"
    ),
]


@pytest.mark.parametrize("scenario, pool_kwargs", SCENARIOS)
def test_same_warning_records_as_psycopg_pool(
    pg_dsn: str, admin, caplog, psycopg_warnings, scenario, pool_kwargs
) -> None:
    seen = {}
    for cls in (psycopg_pool.ConnectionPool, fastpool.ConnectionPool):
        caplog.clear()
        with cls(pg_dsn, name="parity", min_size=1, max_size=1, timeout=5, **pool_kwargs) as p:
            p.wait()
            scenario(p, admin)
        seen[cls.__module__.split(".")[0]] = psycopg_warnings()
    assert seen["psycopg_pool"], "the scenario provokes no warning: it tests nothing"
    assert seen["fastpool"] == seen["psycopg_pool"]


def test_same_record_when_configure_fails(pg_dsn: str, caplog, psycopg_warnings) -> None:
    def configure(conn: Any) -> None:
        raise RuntimeError("configure refused")

    seen = {}
    for cls in (psycopg_pool.ConnectionPool, fastpool.ConnectionPool):
        caplog.clear()
        with cls(pg_dsn, name="parity", min_size=1, configure=configure) as p:
            # the first connection attempt fails; the retry comes after ~1 s
            wait_until(lambda: p.get_stats().get("connections_num", 0) >= 1)
            wait_until(lambda: bool(psycopg_warnings()))
        seen[cls.__module__.split(".")[0]] = psycopg_warnings()[:1]
    assert (
        seen["fastpool"]
        == seen["psycopg_pool"]
        == [("psycopg.pool", "WARNING", "error connecting in 'parity': configure refused")]
    )
