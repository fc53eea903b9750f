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

import random
import threading
import time
from collections import Counter

import psycopg
import pytest

from fastpool import ConnectionPool

pytestmark = pytest.mark.postgres

APP = "fastpool-kill-test"
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
    pool = ConnectionPool(
        pg_dsn,
        min_size=SIZE,
        max_size=SIZE,
        open=True,
        timeout=30,
        check=ConnectionPool.check_connection,
        kwargs={"autocommit": True, "application_name": APP},
    )
    try:
        pool.wait(30)
        stop = threading.Event()
        errors: Counter[str] = Counter()
        unexpected: list[str] = []
        ops = [0] * THREADS
        kills = 0

        def client(i: int) -> None:
            while not stop.is_set():
                try:
                    with pool.connection() as conn:
                        conn.execute("SELECT pg_sleep(0.001)")
                    ops[i] += 1
                except psycopg.OperationalError as ex:  # the query in flight on a killed backend
                    errors[type(ex).__name__] += 1
                except Exception as ex:  # anything else is a pool bug
                    unexpected.append(repr(ex))

        def killer() -> None:
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

        threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
        threads.append(threading.Thread(target=killer))
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a thread hung"

        stats = pool.get_stats()
        print(
            f"\nbackend kills, {THREADS} threads, {seconds:.0f} s: {kills} kills, "
            f"{sum(ops)} queries, {sum(errors.values())} errors seen by callers {dict(errors)}, "
            f"{stats.get('connections_lost', 0)} dead connections caught by check, "
            f"{stats.get('returns_bad', 0)} bad returns, {stats.get('connections_num', 0)} connects"
        )
        assert unexpected == []
        assert kills > 0 and sum(ops) > 0
        assert sum(errors.values()) <= kills, (errors, kills)
        pool.wait(30)  # refilled to min_size
        for _ in range(500):  # replacements still connecting
            stats = pool.get_stats()
            if stats["pool_available"] == stats["pool_size"] == SIZE:
                break
            time.sleep(0.02)
        assert (stats["pool_available"], stats["pool_size"]) == (SIZE, SIZE), stats
        pool._ring.check_invariants()
        live = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP]
        ).fetchone()[0]
        assert live == SIZE  # no leaked server connection
    finally:
        pool.close()
