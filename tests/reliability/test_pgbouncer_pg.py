"""fastpool behind PgBouncer in transaction-pooling mode (Debian's pgbouncer,
started for the test in front of the test server): prepared statements off,
no session state relied on. A client pool of 20 shares PgBouncer's 5 server
connections among 32 threads; every transaction commits exactly once,
PgBouncer never opens more server connections than its pool (counted on its
admin console: other sessions on the server don't count), and ``check`` works
through it."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import psycopg
import pytest

from fastpool import ConnectionPool
from tests.support.load import pool_under_load
from tests.support.pgbouncer import (
    find_pgbouncer,
    pgbouncer_in_front_of,
    server_connection_counter,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        find_pgbouncer() is None,
        reason="pgbouncer not installed (scripts/test installs it as root)",
    ),
]

BOUNCER_POOL = 5
THREADS, CLIENT_POOL, TXNS = 32, 20, 40


@pytest.fixture(scope="module")
def bouncer_dsn(pg_dsn: str) -> Iterator[str]:
    with pgbouncer_in_front_of(pg_dsn, pool_mode="transaction", pool_size=BOUNCER_POOL) as dsn:
        yield dsn


def test_transactions_through_pgbouncer(bouncer_dsn: str, admin) -> None:
    admin.execute("DROP TABLE IF EXISTS fastpool_bouncer")
    admin.execute("CREATE TABLE fastpool_bouncer (thread int, n int, PRIMARY KEY (thread, n))")
    peak = [0]

    def insert_and_count(conn: psycopg.Connection, i: int, n: int) -> None:
        # one transaction, committed when the pool takes the connection back
        conn.execute("INSERT INTO fastpool_bouncer VALUES (%s, %s)", [i, n])
        count = "SELECT count(*) FROM fastpool_bouncer WHERE thread = %s"
        assert conn.execute(count, [i]).fetchone()[0] == n + 1

    def sampler(stop: threading.Event) -> None:
        # PgBouncer's own server connections: other sessions on a shared
        # server don't count.
        with server_connection_counter(bouncer_dsn) as server_connections:
            while not stop.wait(0.05):
                peak[0] = max(peak[0], server_connections())

    try:
        # prepare_threshold=None: PgBouncer < 1.21 in transaction mode can't follow
        # prepared statements from one transaction to the next server connection.
        with pool_under_load(
            bouncer_dsn,
            insert_and_count,
            size=CLIENT_POOL,
            threads=THREADS,
            calls_per_thread=TXNS,
            side=[sampler],
            timeout=30,
            check=ConnectionPool.check_connection,
            kwargs={"prepare_threshold": None},
        ) as load:
            load.finish(120)
            print(
                f"\nPgBouncer (transaction mode, pool {BOUNCER_POOL}): {THREADS} threads, client "
                f"pool {CLIENT_POOL}, {THREADS * TXNS} transactions, {len(load.failures)} errors, "
                f"at most {peak[0]} server connections"
            )
            assert load.failures == []
            rows = admin.execute(
                "SELECT count(*), count(DISTINCT (thread, n)) FROM fastpool_bouncer"
            ).fetchone()
            assert rows == (THREADS * TXNS, THREADS * TXNS)
            assert 0 < peak[0] <= BOUNCER_POOL, peak[0]
            load.pool.check()  # the health check goes through PgBouncer too
            time.sleep(0.1)
            assert load.pool.get_stats().get("connections_lost", 0) == 0
            load.assert_books_balance()
    finally:
        admin.execute("DROP TABLE IF EXISTS fastpool_bouncer")
