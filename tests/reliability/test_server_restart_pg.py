"""Server restart mid-load, on a private throwaway cluster (it is stopped and
started, so never the shared server): while the server is down, callers get
PoolTimeout within their timeout and never hang, reconnection backs off
(connect attempts per second are counted), and once the server is back the
pool refills to min_size by itself and callers succeed again."""

from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

from fastpool import ConnectionPool, PoolTimeout, base
from tests.support.postgres import PostgresServer, find_bindir, start_private_server

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(
        find_bindir() is None, reason="needs the PostgreSQL server binaries (initdb, pg_ctl)"
    ),
]

THREADS, SIZE, TIMEOUT = 8, 4, 1.0
# A call that returns this much later than its timeout has hung (generous:
# 2-core machines are shared and noisy; the point is "bounded", not "fast").
HANG = TIMEOUT + 4.0


@pytest.fixture(scope="module")
def private_server() -> Iterator[PostgresServer]:
    server = start_private_server()
    try:
        yield server
    finally:
        server.destroy()


def test_server_restart_mid_load(private_server: PostgresServer, monkeypatch) -> None:
    # Reconnection backoff from 0.2 s (default 1 s) keeps the test short.
    monkeypatch.setattr(base.AttemptWithBackoff, "INITIAL_DELAY", 0.2)
    pool = ConnectionPool(
        private_server.dsn,
        min_size=SIZE,
        max_size=SIZE,
        open=True,
        timeout=TIMEOUT,
        reconnect_timeout=120,
        check=ConnectionPool.check_connection,
        kwargs={"autocommit": True},
    )
    outcomes: list[tuple[float, str, float]] = []  # (start, outcome, duration)
    lock = threading.Lock()
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                with pool.connection() as conn:
                    conn.execute("SELECT 1")
                outcome = "ok"
            except PoolTimeout:
                outcome = "timeout"
            except Exception as ex:  # a query in flight when the server went down
                outcome = type(ex).__name__
            with lock:
                outcomes.append((t0, outcome, time.monotonic() - t0))
            if outcome != "ok":
                time.sleep(0.01)

    try:
        pool.wait(30)
        threads = [threading.Thread(target=client) for _ in range(THREADS)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        errors_before = pool.get_stats().get("connections_errors", 0)
        private_server.stop()
        down_at = time.monotonic()
        time.sleep(3.0)
        errors_down = pool.get_stats().get("connections_errors", 0) - errors_before
        private_server.start()
        up_at = time.monotonic()
        down_for = up_at - down_at
        pool.wait(60)  # refilled to min_size by the pool itself
        refilled_at = time.monotonic()
        first_ok_after = None
        deadline = time.monotonic() + 30
        while first_ok_after is None and time.monotonic() < deadline:
            with lock:
                first_ok_after = next(
                    (t0 + d for t0, o, d in outcomes if o == "ok" and t0 >= up_at), None
                )
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(HANG + 5)
        assert not any(t.is_alive() for t in threads), "a client hung"

        during = [(o, d) for t0, o, d in outcomes if down_at <= t0 < up_at]
        kinds = {o for o, _ in during}
        worst = max(d for _, d in during)
        attempts_per_s = errors_down / 3.0
        print(
            f"\nserver down {down_for:.1f} s: {len(during)} calls meanwhile ({sorted(kinds)}), "
            f"slowest {worst:.2f} s (timeout {TIMEOUT} s); {errors_down} failed connects in 3 s "
            f"= {attempts_per_s:.1f}/s; pool refilled {refilled_at - up_at:.2f} s and a caller "
            f"succeeded {(first_ok_after or float('nan')) - up_at:.2f} s after the restart"
        )
        assert "timeout" in kinds
        assert kinds <= {"timeout", "ok", "OperationalError"}, kinds
        assert worst <= HANG, f"a call took {worst:.2f} s with timeout {TIMEOUT} s"
        # Backoff: without it the workers would retry as fast as connects fail
        # (thousands per second against a refused port).
        assert 0 < errors_down <= 20 * SIZE, errors_down
        assert first_ok_after is not None, "no caller succeeded after the restart"
        assert pool.get_stats()["pool_size"] == SIZE
        pool._ring.check_invariants()
    finally:
        stop.set()
        pool.close()
