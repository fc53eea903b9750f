"""Backend kills under load: 64 threads run queries through the pool while
another connection keeps terminating random pool backends
(``pg_terminate_backend``). With ``check`` set, the only errors a caller may
see are queries that were in flight on a killed backend: at most one per
kill, all ``psycopg.OperationalError``. Afterwards the pool is back at size
and its books balance.

The fast variant runs a few seconds in the default suite; ``-m slow`` runs a
minute. Each prints its figures (kills, errors seen by callers, connections
replaced) for the README's reliability section."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter

import psycopg
import pytest

from fastpool import ConnectionPool
from tests.support.load import pool_under_load

pytestmark = pytest.mark.postgres

APP = f"fastpool-kill-test-{os.getpid()}"
THREADS = 64
SIZE = 10


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(3.0, id="fast"),
        pytest.param(60.0, id="long", marks=pytest.mark.slow),
    ],
)
def test_backend_kills_under_load(pg_dsn: str, admin, seconds: float) -> None:
    kills = 0

    def killer(stop: threading.Event) -> None:
        nonlocal kills
        rnd = random.Random(42)
        while not stop.wait(0.02):
            pids = [
                r[0]
                for r in admin.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s", [APP]
                )
            ]
            if pids:
                admin.execute("SELECT pg_terminate_backend(%s)", [rnd.choice(pids)])
                kills += 1

    with pool_under_load(
        pg_dsn,
        sleep_a_millisecond,
        size=SIZE,
        threads=THREADS,
        side=[killer],
        timeout=30,
        check=ConnectionPool.check_connection,
        kwargs={"autocommit": True, "application_name": APP},
    ) as load:
        time.sleep(seconds)
        load.finish(60)

        pool = load.pool
        # the queries in flight on a killed backend; anything else is a pool bug
        errors = Counter(
            f.error.__name__ for f in load.failures if issubclass(f.error, psycopg.OperationalError)
        )
        unexpected = [
            f.text for f in load.failures if not issubclass(f.error, psycopg.OperationalError)
        ]
        stats = pool.get_stats()
        print(
            f"\nbackend kills, {THREADS} threads, {seconds:.0f} s: {kills} kills, "
            f"{sum(load.ops)} queries, {sum(errors.values())} errors seen by callers {dict(errors)}, "
            f"{stats.get('connections_lost', 0)} dead connections caught by check, "
            f"{stats.get('returns_bad', 0)} bad returns, {stats.get('connections_num', 0)} connects"
        )
        assert unexpected == []
        assert kills > 0 and sum(load.ops) > 0
        assert sum(errors.values()) <= kills, (errors, kills)
        pool.wait(30)  # refilled to min_size
        for _ in range(500):  # replacements still connecting
            stats = pool.get_stats()
            if stats["pool_available"] == stats["pool_size"] == SIZE:
                break
            time.sleep(0.02)
        assert (stats["pool_available"], stats["pool_size"]) == (SIZE, SIZE), stats
        load.assert_books_balance()
        live = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP]
        ).fetchone()[0]
        assert live == SIZE  # no leaked server connection


def sleep_a_millisecond(conn: psycopg.Connection, i: int, n: int) -> None:
    conn.execute("SELECT pg_sleep(0.001)")
