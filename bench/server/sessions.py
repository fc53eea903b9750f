"""The database side of a run: the small table of the transaction endpoint, and
the count of the run's own sessions.

Each run's server connects with its own ``application_name``, so counting the
sessions in ``pg_stat_activity`` that carry it counts only that server's, never
those of other users of a shared PostgreSQL."""

from __future__ import annotations

import os
import threading
import time

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from .settings import ROWS

OBSERVER = "fastpool-bench-observer"


def with_app_name(dsn: str, name: str) -> str:
    return make_conninfo(dsn, application_name=name)


def _connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(with_app_name(dsn, OBSERVER), autocommit=True)


def create_table(dsn: str) -> str:
    """A fresh table of ``ROWS`` items for this benchmark process (its own name,
    so concurrent runs on the same database never share or drop each other's)."""
    name = f"fastpool_bench_items_{os.getpid()}"
    with _connect(dsn) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id int PRIMARY KEY, name text NOT NULL, price numeric NOT NULL)"
            ).format(sql.Identifier(name))
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT i, 'item ' || i, (i %% 97) + 0.99"
                " FROM generate_series(1, %s) i"
            ).format(sql.Identifier(name)),
            [ROWS],
        )
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(name)))
    return name


def drop_table(dsn: str, name: str) -> None:
    with _connect(dsn) as conn:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


_COUNT = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"


def count(conn: psycopg.Connection, app_name: str) -> int:
    row = conn.execute(_COUNT, [app_name]).fetchone()
    return int(row[0]) if row else 0


class Sampler:
    """Counts the run's sessions every ``interval`` seconds while the server is
    up, keeping the largest count seen."""

    def __init__(self, dsn: str, app_name: str, interval: float = 0.25) -> None:
        self.app_name, self.interval = app_name, interval
        self.conn = _connect(dsn)
        self.max_seen = count(self.conn, app_name)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.max_seen = max(self.max_seen, count(self.conn, self.app_name))

    def stop(self) -> int:
        """Stop sampling (after one last count); the largest count seen."""
        self._stop.set()
        self._thread.join()
        self.max_seen = max(self.max_seen, count(self.conn, self.app_name))
        return self.max_seen

    def left_after(self, timeout: float = 5.0) -> int:
        """After the server stopped: wait for its sessions to end (a backend
        exits a moment after its client's socket closes); how many remain."""
        deadline = time.monotonic() + timeout
        while True:
            n = count(self.conn, self.app_name)
            if n == 0 or time.monotonic() > deadline:
                return n
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self.conn.close()
