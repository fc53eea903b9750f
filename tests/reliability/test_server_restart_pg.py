"""Server restart mid-load, on a private throwaway cluster (it is stopped and
started, so never the shared server): while the server is down, callers get
PoolTimeout within their timeout and never hang, reconnection backs off
(connect attempts per second are counted), and once the server is back the
pool refills to min_size by itself and callers succeed again."""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from fastpool import ConnectionPool, PoolTimeout, base
from tests.support.load import Call, pool_under_load, select_one
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
    with pool_under_load(
        private_server.dsn,
        select_one,
        size=SIZE,
        threads=THREADS,
        pause_after_error=0.01,
        record_calls=True,
        timeout=TIMEOUT,
        reconnect_timeout=120,
        check=ConnectionPool.check_connection,
        kwargs={"autocommit": True},
    ) as load:
        pool = load.pool
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
            first_ok_after = next(
                (
                    c.start + c.duration
                    for c in load.calls()
                    if c.error is None and c.start >= up_at
                ),
                None,
            )
            time.sleep(0.05)
        load.finish(HANG + 5)

        during = [(outcome(c), c.duration) for c in load.calls() if down_at <= c.start < up_at]
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
        load.assert_books_balance()


def outcome(call: Call) -> str:
    """ "ok", "timeout" (PoolTimeout), or the class of what a query in flight
    when the server went down raised."""
    if call.error is None:
        return "ok"
    if issubclass(call.error, PoolTimeout):
        return "timeout"
    return call.error.__name__
