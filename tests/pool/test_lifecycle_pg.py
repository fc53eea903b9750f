"""Connection lifetime, idle shrinking, broken backends, reconnection, checks."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from fastpool import ConnectionPool, PoolTimeout, base
from tests.support.waiting import wait_until

from .conftest import kill_backend, pool_records

pytestmark = pytest.mark.postgres


def test_lifetime_jitter_is_within_95_to_100_percent(make_pool) -> None:
    p = make_pool(min_size=8, max_lifetime=100.0)
    p.wait()
    spans = [r.expire_at - r.created_at for r in p._slots if r.conn is not None]
    assert len(spans) == 8 and all(95.0 <= x <= 100.0 for x in spans)


def test_expired_idle_connection_is_never_handed_out(make_pool) -> None:
    p = make_pool(min_size=2, max_lifetime=0.4)
    p.wait()
    first = set()
    for _ in range(2):
        with p.connection() as conn:
            first.add(conn.info.backend_pid)
    time.sleep(0.5)  # both idle connections are now past their lifetime
    for _ in range(4):
        with p.connection() as conn:
            assert conn.info.backend_pid not in first
            assert time.monotonic() < p._slots[conn._fp_slot].expire_at


def test_expired_connection_is_replaced_on_return(make_pool) -> None:
    p = make_pool(min_size=1, max_lifetime=0.3)
    conn = p.getconn()
    time.sleep(0.35)
    p.putconn(conn)
    assert conn.closed
    p.wait()
    with p.connection() as c2:
        assert c2 is not conn


def test_background_sweep_replaces_expired_idle_connections(make_pool) -> None:
    p = make_pool(min_size=2, max_lifetime=0.5)
    p.wait()
    made = p.get_stats()["connections_num"]
    wait_until(lambda: p.get_stats()["connections_num"] >= made + 2, what="replacements")
    assert p.get_stats()["pool_size"] == 2


def test_max_idle_shrinks_one_connection_per_period_down_to_min(make_pool) -> None:
    p = make_pool(min_size=1, max_size=4, max_idle=0.3)
    conns = [p.getconn() for _ in range(4)]
    for c in conns:
        p.putconn(c)
    assert p.get_stats()["pool_size"] == 4
    time.sleep(0.45)
    assert p.get_stats()["pool_size"] in (3, 4)
    wait_until(lambda: p.get_stats()["pool_size"] == 1, timeout=5, what="shrink to min_size")
    time.sleep(0.7)
    assert p.get_stats()["pool_size"] == 1


def test_killed_backend_with_check_is_never_seen_by_the_caller(make_pool, admin) -> None:
    p = make_pool(min_size=2, check=ConnectionPool.check_connection)
    p.wait()
    pids = []
    for _ in range(2):
        with p.connection() as conn:
            pids.append(conn.info.backend_pid)
    for pid in pids:
        kill_backend(admin, pid)
    for _ in range(4):
        with p.connection() as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
            assert conn.info.backend_pid not in pids
    assert p.get_stats()["connections_lost"] == 2


def test_failing_check_returns_the_connection_and_tries_another(make_pool) -> None:
    # psycopg_pool's rule: a connection that fails the check but still looks
    # healthy goes back to the pool (it is not counted lost), and the request
    # tries again (at once the first time, then with a backoff).
    bad = set()

    def check(conn) -> None:
        if conn.info.backend_pid in bad:
            raise RuntimeError("looks bad")

    p = make_pool(min_size=2, check=check)
    p.wait()
    with p.connection() as conn:
        bad.add(conn.info.backend_pid)
    for _ in range(3):
        with p.connection() as conn:
            assert conn.info.backend_pid not in bad
    stats = p.get_stats()
    assert "connections_lost" not in stats and stats["pool_size"] == 2
    assert stats["connections_num"] == 2  # nothing was replaced


def test_check_that_closes_the_connection_counts_it_lost(make_pool) -> None:
    closed = []

    def check(conn) -> None:
        if not closed:
            closed.append(conn)
            conn.close()
            raise RuntimeError("closed it")

    p = make_pool(min_size=1, check=check)
    p.wait()
    with p.connection() as conn:
        assert conn is not closed[0]
    assert p.get_stats()["connections_lost"] == 1


def test_check_that_always_fails_times_out_without_a_connect_storm(make_pool) -> None:
    def check(conn) -> None:
        raise RuntimeError("never good")

    p = make_pool(min_size=1, check=check)
    p.wait()
    with pytest.raises(PoolTimeout, match=r"couldn't get a connection after 1.50 sec"):
        p.getconn(timeout=1.5)
    stats = p.get_stats()
    assert stats["connections_num"] == 1 and stats["pool_available"] == 1, stats
    assert "requests_errors" not in stats  # as psycopg_pool: not a queue failure


def test_check_bypass_skips_recently_used_connections(make_pool) -> None:
    calls = []
    p = make_pool(min_size=1, check=calls.append, check_bypass=0.3)
    p.wait()
    for _ in range(5):  # a connection just made or just returned is not checked
        with p.connection():
            pass
    assert calls == []
    time.sleep(0.4)  # idle for longer than the window: checked once
    for _ in range(3):
        with p.connection():
            pass
    assert len(calls) == 1


def test_without_check_bypass_every_checkout_is_checked(make_pool) -> None:
    calls = []
    p = make_pool(min_size=1, check=calls.append)
    for _ in range(5):
        with p.connection():
            pass
    assert len(calls) == 5


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def fast_backoff(monkeypatch):
    monkeypatch.setattr(base.AttemptWithBackoff, "INITIAL_DELAY", 0.05)
    monkeypatch.setattr(base.AttemptWithBackoff, "DELAY_JITTER", 0.0)


def test_reconnects_with_backoff_after_the_server_refused(
    make_pool, pg_dsn, fast_backoff, caplog
) -> None:
    refused = f"host=127.0.0.1 port={_closed_port()} connect_timeout=1"
    attempts = []

    def conninfo() -> str:
        attempts.append(time.monotonic())
        return refused if len(attempts) <= 4 else pg_dsn

    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    p = make_pool(conninfo=conninfo, min_size=1)
    p.wait(timeout=10)
    assert len(attempts) == 5
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    # Exponential backoff: 0.05 s, then doubling (no jitter). A loaded machine
    # can only stretch a gap, never shorten it, so each is checked from below.
    scheduled = [0.05 * 2**i for i in range(4)]
    assert all(gap >= 0.95 * delay for gap, delay in zip(gaps, scheduled)), (gaps, scheduled)
    assert sum("error connecting in" in m for m in pool_records(caplog)) == 4


def test_gives_up_calls_reconnect_failed_then_refills_by_itself(
    make_pool, pg_dsn, fast_backoff
) -> None:
    refused = f"host=127.0.0.1 port={_closed_port()} connect_timeout=1"
    server_up = []
    failed = []
    p = make_pool(
        conninfo=lambda: pg_dsn if server_up else refused,
        min_size=2,
        reconnect_timeout=0.2,
        reconnect_failed=failed.append,
    )
    wait_until(lambda: len(failed) >= 2, what="reconnect_failed for both connections")
    assert failed[0] is p
    assert p.get_stats()["pool_size"] <= 2
    server_up.append(True)  # the "server" is back; no client asks for anything
    wait_until(lambda: p.get_stats()["pool_available"] == 2, timeout=15, what="refill to min_size")
    with p.connection() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_failed_checks_back_off_and_stop_at_the_deadline(make_pool, monkeypatch) -> None:
    # psycopg_pool's schedule, made fast: the first retry at once, then the
    # backoff doubles (0.1, 0.2, 0.4 s here), and no check starts once the
    # timeout has passed.
    monkeypatch.setattr(base.AttemptWithBackoff, "INITIAL_DELAY", 0.1)
    monkeypatch.setattr(base.AttemptWithBackoff, "DELAY_JITTER", 0.0)
    times: list[float] = []

    def check(conn) -> None:
        times.append(time.monotonic())
        raise RuntimeError("never good")

    p = make_pool(min_size=1, check=check)
    p.wait()
    t0 = time.monotonic()
    with pytest.raises(PoolTimeout):
        p.getconn(timeout=1.0)
    gaps = [b - a for a, b in zip(times, times[1:])]
    # at ~0, 0, 0.1, 0.3 and 0.7 s; the next delay (0.8 s) is cut to the
    # deadline, and no check starts once it has passed. A loaded machine only
    # stretches the gaps (checked from below) and so may leave room for fewer.
    scheduled = [0.0, 0.1, 0.2, 0.4]
    assert 3 <= len(times) <= 5, gaps
    assert all(gap >= 0.95 * delay for gap, delay in zip(gaps, scheduled)), gaps
    assert all(t - t0 < 1.0 for t in times)
