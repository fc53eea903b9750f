"""NullConnectionPool against a real PostgreSQL, on psycopg_pool's null pool
rules: the ``check`` callback, ``max_lifetime`` and ``drain()`` when a returned
connection would go to a waiter, ``wait()``, what is logged, and the
connection budget with ``max_size=0``. The async twin is
tests/pool_async/test_async_null_pg.py."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import psycopg
import pytest

from fastpool import NullConnectionPool, PoolTimeout
from fastpool.base import AttemptWithBackoff
from tests.support.stubs import StubConnection
from tests.support.threads import ReraiseThread

pytestmark = pytest.mark.postgres


def logged(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """Messages of exactly ``level`` on psycopg_pool's logger."""
    # .message: formatted when logged (a connection's repr shows its state then)
    return [r.message for r in caplog.records if r.name == "psycopg.pool" and r.levelno == level]


def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.002)


def queued_getconn(p: NullConnectionPool, got: list, **kwargs: Any) -> ReraiseThread:
    """A thread whose getconn() is queued (max_size reached) when this returns."""
    waiting = p.get_stats()["requests_waiting"]
    t = ReraiseThread(target=lambda: got.append(p.getconn(**kwargs)))
    t.start()
    until(lambda: p.get_stats()["requests_waiting"] == waiting + 1, "the getconn() is queued")
    return t


def pid(conn: Any) -> int:
    return conn.info.backend_pid  # (a query would leave a transaction open)


# -- the check callback ----------------------------------------------------------


def test_check_runs_on_new_and_on_handed_over_connections(make_pool) -> None:
    checked: list[Any] = []

    def check(conn: Any) -> None:
        checked.append(conn)
        NullConnectionPool.check_connection(conn)

    p = make_pool(cls=NullConnectionPool, max_size=1, check=check)
    first = p.getconn()
    assert checked == [first]
    got: list = []
    t = queued_getconn(p, got)
    p.putconn(first)
    t.join()
    assert got == [first] and checked == [first, first]  # same connection, checked again
    p.putconn(first)
    assert first.closed and p.get_stats()["pool_size"] == 0


def test_check_that_always_fails_ends_in_pool_timeout_after_backoff(
    make_pool, caplog, monkeypatch
) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.05)
    calls: list[tuple[float, Any]] = []
    healthy = False

    def check(conn: Any) -> None:
        if not healthy:
            calls.append((time.monotonic(), conn))
            raise RuntimeError("not the primary")

    p = make_pool(cls=NullConnectionPool, max_size=1, check=check)
    t0 = time.monotonic()
    with pytest.raises(PoolTimeout, match=r"^couldn't get a connection after 1\.00 sec$"):
        p.getconn(timeout=1.0)
    assert time.monotonic() - t0 >= 1.0
    # A retry at once, then after 0.05 s, 0.1 s, 0.2 s, 0.4 s (±10%): never a busy loop.
    assert 3 <= len(calls) <= 6, calls
    times = [t for t, _ in calls]
    for i in range(2, len(times)):
        assert times[i] - times[i - 1] >= 0.05 * 2 ** (i - 2) * 0.9, times
    conns = [c for _, c in calls]
    assert len({id(c) for c in conns}) == len(
        conns
    )  # nobody waited: each one closed, a new one made
    assert all(c.closed for c in conns)
    assert logged(caplog, logging.INFO) == ["connection failed check: not the primary"] * len(calls)
    assert logged(caplog, logging.WARNING) == []
    stats = p.get_stats()
    assert stats["connections_num"] == len(calls) and stats["pool_size"] == 0
    assert "connections_lost" not in stats and "requests_errors" not in stats  # as psycopg_pool
    # The budget is whole: the one connection max_size allows can be had.
    healthy = True
    conn = p.getconn()
    assert p.get_stats()["pool_size"] == 1
    p.putconn(conn)
    assert p.get_stats()["pool_size"] == 0


def test_check_failing_on_a_broken_connection_counts_it_lost(make_pool, admin, caplog) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    checked: list[Any] = []

    def check(conn: Any) -> None:
        checked.append(conn)
        if len(checked) == 1:  # terminate its backend, and wait until it is gone
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", [conn.info.backend_pid])
        NullConnectionPool.check_connection(conn)

    p = make_pool(cls=NullConnectionPool, max_size=1, check=check)
    conn = p.getconn()
    assert checked == [checked[0], conn] and checked[0].closed
    assert conn.execute("SELECT 1").fetchone() == (1,)
    info = logged(caplog, logging.INFO)
    assert len(info) == 2 and info[0].startswith("connection failed check: ")
    assert info[1] == "not serving connection found broken"
    stats = p.get_stats()
    assert stats["connections_lost"] == 1 and "returns_bad" not in stats and stats["pool_size"] == 1
    p.putconn(conn)


def test_check_failing_on_a_handed_over_connection_passes_it_to_the_next_waiter(make_pool) -> None:
    # psycopg_pool gives a connection that failed a check but looks healthy back
    # as a return: to the next waiter (which checks it in turn), else closed.
    rejected_by: list[str] = []

    def check(conn: Any) -> None:
        name = threading.current_thread().name
        if name == "picky" and not rejected_by:
            rejected_by.append(name)
            raise RuntimeError("not today")

    p = make_pool(cls=NullConnectionPool, max_size=1, check=check)
    held = p.getconn()
    picky_got: list = []
    other_got: list = []
    picky = ReraiseThread(target=lambda: picky_got.append(p.getconn()), name="picky")
    picky.start()
    until(lambda: p.get_stats()["requests_waiting"] == 1, "picky is queued")
    other = queued_getconn(p, other_got)
    p.putconn(held)  # to picky, who rejects it: to the other waiter
    other.join()
    assert other_got == [held] and not held.closed and rejected_by == ["picky"]
    until(lambda: p.get_stats()["requests_waiting"] == 1, "picky is queued again")
    p.putconn(held)  # now to picky again
    picky.join()
    assert picky_got == [held]
    p.putconn(held)
    assert p.get_stats()["pool_size"] == 0 and p.get_stats()["connections_num"] == 1


def test_interrupted_check_closes_the_connection_and_passes_its_place_on(make_pool) -> None:
    in_check, go = threading.Event(), threading.Event()
    interrupted: list[Any] = []

    def check(conn: Any) -> None:
        if not interrupted:
            interrupted.append(conn)
            in_check.set()
            go.wait(5)
            raise KeyboardInterrupt

    p = make_pool(cls=NullConnectionPool, max_size=1, check=check)
    outcome: list[str] = []

    def first() -> None:
        try:
            p.getconn()
        except KeyboardInterrupt:
            outcome.append("interrupted")

    t1 = ReraiseThread(target=first)
    t1.start()
    assert in_check.wait(5)
    got: list = []
    t2 = queued_getconn(p, got)  # max_size=1 is taken by the connection being checked
    go.set()
    t1.join()
    t2.join()
    assert outcome == ["interrupted"] and interrupted[0].closed
    assert got[0] is not interrupted[0] and got[0].execute("SELECT 1").fetchone() == (1,)
    assert p.get_stats()["pool_size"] == 1
    p.putconn(got[0])
    assert p.get_stats()["pool_size"] == 0


# -- max_lifetime and drain() on the way to a waiter ------------------------------------


def test_expired_connection_is_closed_not_handed_over(make_pool, caplog) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    p = make_pool(cls=NullConnectionPool, max_size=1, max_lifetime=0.2)
    old = p.getconn()
    old_pid = pid(old)
    got: list = []
    t = queued_getconn(p, got)
    time.sleep(0.25)  # past max_lifetime
    p.putconn(old)
    t.join()
    assert old.closed and got[0] is not old and pid(got[0]) != old_pid
    assert logged(caplog, logging.INFO) == ["discarding expired connection"]
    assert logged(caplog, logging.WARNING) == []
    assert p.get_stats()["pool_size"] == 1  # the waiter's new connection took the old one's place
    p.putconn(got[0])
    assert p.get_stats()["pool_size"] == 0


def test_connection_out_during_drain_is_closed_not_handed_over(make_pool) -> None:
    p = make_pool(cls=NullConnectionPool, max_size=1)
    old = p.getconn()
    got: list = []
    t = queued_getconn(p, got)
    p.drain()
    p.putconn(old)
    t.join()
    new = got[0]
    assert old.closed and new is not old
    # A connection made after the drain is handed over as usual.
    again: list = []
    t = queued_getconn(p, again)
    p.putconn(new)
    t.join()
    assert again == [new] and not new.closed
    p.putconn(new)


# -- wait() ------------------------------------------------------------------------


def test_wait_raises_at_its_timeout_while_the_connection_is_still_being_made(make_pool) -> None:
    gate = threading.Event()
    configured: list[Any] = []

    def configure(conn: Any) -> None:
        configured.append(conn)
        gate.wait(10)

    p = make_pool(cls=NullConnectionPool, configure=configure)
    t0 = time.monotonic()
    with pytest.raises(PoolTimeout, match=r"^pool initialization incomplete after 0\.3 sec$"):
        p.wait(0.3)
    assert time.monotonic() - t0 >= 0.3
    assert p.closed  # as psycopg_pool: a failed wait() closes the pool
    gate.set()
    until(lambda: configured and configured[0].closed, "the late connection is closed")


def test_wait_retries_a_failing_server_until_its_timeout(make_pool, caplog, monkeypatch) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.05)
    p = make_pool(cls=NullConnectionPool, conninfo="host=127.0.0.1 port=1", name="nowhere")
    t0 = time.monotonic()
    with pytest.raises(
        PoolTimeout, match=r"^pool initialization incomplete after 0\.5 sec$"
    ) as info:
        p.wait(0.5)
    assert time.monotonic() - t0 >= 0.5 and p.closed
    assert isinstance(info.value.__cause__, psycopg.OperationalError)  # what to fix
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) >= 2, warnings  # retried, not given up after one refusal
    assert all(w.startswith("error connecting in 'nowhere': ") for w in warnings), warnings


def test_wait_gives_up_after_reconnect_timeout_but_waits_out_its_timeout(
    make_pool, caplog, monkeypatch
) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.05)
    failed: list[Any] = []
    p = make_pool(
        cls=NullConnectionPool,
        conninfo="host=127.0.0.1 port=1",
        name="gone",
        reconnect_timeout=0.2,
        reconnect_failed=failed.append,
    )
    t0 = time.monotonic()
    with pytest.raises(PoolTimeout, match="pool initialization incomplete after 0.6 sec"):
        p.wait(0.6)
    assert time.monotonic() - t0 >= 0.6
    assert failed == [p]
    assert "reconnection attempt in pool 'gone' failed after 0.2 sec" in logged(
        caplog, logging.WARNING
    )


def test_wait_logs_configure_leaving_a_transaction(make_pool, caplog) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    configured: list[Any] = []

    def configure(conn: Any) -> None:
        configured.append(conn)
        conn.execute("SELECT 1")  # opens a transaction and leaves it open

    p = make_pool(cls=NullConnectionPool, configure=configure, name="badconf")
    with pytest.raises(PoolTimeout):
        p.wait(0.5)
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings  # one attempt: the next would be after ~1 s
    assert warnings[0].startswith(
        "error connecting in 'badconf': connection left in status INTRANS"
    )
    assert configured[0].closed


class RecordingConnection(psycopg.Connection):  # type: ignore[type-arg]
    """Remembers the keyword arguments of each connect()."""

    connects: list[dict[str, Any]] = []

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
        cls.connects.append(kwargs)
        return super().connect(conninfo, **kwargs)


def test_wait_connects_once_without_a_connect_timeout_and_closes(make_pool, monkeypatch) -> None:
    monkeypatch.setattr(RecordingConnection, "connects", [])
    p = make_pool(
        cls=NullConnectionPool,
        connection_class=RecordingConnection,
        kwargs={"application_name": "nullwait"},
        timeout=3.4,
    )
    p.wait(2.6)
    assert RecordingConnection.connects == [{"application_name": "nullwait"}]
    assert p.get_stats()["connections_num"] == 1 and p.get_stats()["pool_size"] == 0
    # A checkout's connect_timeout is what is left of its timeout, in whole seconds, at least 1.
    p.putconn(p.getconn())
    p.putconn(p.getconn(timeout=0.2))
    assert [c["connect_timeout"] for c in RecordingConnection.connects[1:]] == [3, 1]


# -- what is logged on the return and connect paths ------------------------------------


def test_active_connection_returned_to_a_waiter_logs_two_warnings(make_pool, caplog) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    p = make_pool(cls=NullConnectionPool, max_size=1)
    conn = p.getconn()
    got: list = []
    t = queued_getconn(p, got)
    conn.pgconn.exec_(b"COPY (SELECT 1) TO STDOUT")
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.ACTIVE
    p.putconn(conn)
    t.join()
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("closing returned connection: ") and "ACTIVE" in warnings[0]
    assert warnings[1].startswith("discarding closed connection: ") and "BAD" in warnings[1]
    assert got[0] is not conn and conn.closed
    assert p.get_stats()["returns_bad"] == 1
    p.putconn(got[0])


def test_return_with_nobody_waiting_closes_without_logging(make_pool, caplog) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    p = make_pool(cls=NullConnectionPool, max_size=2)
    active, intrans = p.getconn(), p.getconn()
    active.pgconn.exec_(b"COPY (SELECT 1) TO STDOUT")
    intrans.execute("SELECT 1")
    p.putconn(active)
    p.putconn(intrans)
    assert active.closed and intrans.closed
    assert logged(caplog, logging.WARNING) == [] and logged(caplog, logging.INFO) == []
    assert "returns_bad" not in p.get_stats() and p.get_stats()["pool_size"] == 0


def test_transaction_returned_to_a_waiter_is_rolled_back_with_one_warning(
    make_pool, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    p = make_pool(cls=NullConnectionPool, max_size=1)
    conn = p.getconn()
    conn.execute("CREATE TEMP TABLE null_pool_rollback ()")
    got: list = []
    t = queued_getconn(p, got)
    p.putconn(conn)
    t.join()
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 1 and warnings[0].startswith("rolling back returned connection: ")
    assert "INTRANS" in warnings[0]
    assert got == [conn]
    assert conn.execute("SELECT to_regclass('pg_temp.null_pool_rollback')").fetchone() == (None,)
    p.putconn(conn)


def test_failed_rollback_for_a_waiter_logs_three_warnings(make_pool, caplog, monkeypatch) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    p = make_pool(cls=NullConnectionPool, max_size=1)
    conn = p.getconn()
    with pytest.raises(psycopg.errors.UndefinedTable):
        conn.execute("SELECT * FROM no_such_table")
    real_rollback = conn.rollback

    def broken_rollback() -> None:
        conn.pgconn.finish()
        real_rollback()

    monkeypatch.setattr(conn, "rollback", broken_rollback)
    got: list = []
    t = queued_getconn(p, got)
    p.putconn(conn)
    t.join()
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith("rolling back returned connection: ") and "INERROR" in warnings[0]
    assert warnings[1].startswith("rollback failed: OperationalError: ")
    assert warnings[2].startswith("discarding closed connection: ") and "BAD" in warnings[2]
    assert got[0] is not conn
    p.putconn(got[0])


def test_closed_connection_returned_to_a_waiter_logs_one_warning(make_pool, caplog) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    p = make_pool(cls=NullConnectionPool, max_size=1)
    conn = p.getconn()
    got: list = []
    t = queued_getconn(p, got)
    conn.close()
    p.putconn(conn)
    t.join()
    warnings = logged(caplog, logging.WARNING)
    assert len(warnings) == 1 and warnings[0].startswith("discarding closed connection: ")
    assert got[0] is not conn and p.get_stats()["returns_bad"] == 1
    p.putconn(got[0])


@pytest.mark.parametrize("fault", ["raises", "leaves a transaction"])
def test_configure_failing_on_checkout_raises_closes_and_logs_nothing(
    make_pool, caplog, fault
) -> None:
    caplog.set_level(logging.INFO, logger="psycopg.pool")
    configured: list[Any] = []

    def configure(conn: Any) -> None:
        configured.append(conn)
        if fault == "raises":
            raise RuntimeError("configure exploded")
        conn.execute("SELECT 1")

    p = make_pool(cls=NullConnectionPool, max_size=1, configure=configure)
    expected = RuntimeError if fault == "raises" else psycopg.ProgrammingError
    with pytest.raises(expected):
        p.getconn()
    assert configured[0].closed
    assert logged(caplog, logging.WARNING) == [] and logged(caplog, logging.INFO) == []
    stats = p.get_stats()
    assert (
        stats["pool_size"] == 0 and "connections_errors" not in stats
    )  # the connect itself worked


# -- the budget with max_size=0 ("unlimited") ------------------------------------------


class SmallRingPool(NullConnectionPool):  # type: ignore[type-arg]
    _min_slot_capacity = 2  # the ring starts small and must grow


def test_unlimited_pool_grows_its_ring_and_serves_real_connections(pg_dsn, admin, pools) -> None:
    p = SmallRingPool(pg_dsn, max_size=0, open=True, kwargs={"application_name": "null-unlimited"})
    pools.append(p)
    assert p._ring.capacity == 2
    conns = [p.getconn() for _ in range(7)]
    assert len({pid(c) for c in conns}) == 7
    stats = p.get_stats()
    assert stats["pool_size"] == 7 and stats["connections_num"] == 7
    p._ring.check_invariants()
    for c in conns:
        p.putconn(c)
    assert all(c.closed for c in conns) and p.get_stats()["pool_size"] == 0
    # (a backend exits a moment after its client closed the connection)
    until(
        lambda: admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'null-unlimited'"
        ).fetchone()
        == (0,),
        "the server has no connection of the pool left",
    )


def test_ring_growth_keeps_every_per_slot_list_in_step() -> None:
    StubConnection.reset_stats()
    p = SmallRingPool(connection_class=StubConnection, open=False)
    p.open()
    try:
        assert p._ring.capacity == 2
        per_slot = [k for k, v in vars(p).items() if isinstance(v, list) and len(v) == p._capacity]
        conns = [p.getconn() for _ in range(11)]
        assert p._ring.capacity >= 11 and StubConnection.connects == 11
        assert {k: len(getattr(p, k)) for k in per_slot} == {k: p._ring.capacity for k in per_slot}
        assert sorted(c._fp_slot for c in conns) == list(range(11))
        p._ring.check_invariants()
        for c in conns:
            p.putconn(c)
        assert p.get_stats()["pool_size"] == 0 and p._ring.size() == 0
    finally:
        p.close()


def test_beyond_the_slot_limit_requests_queue_before_connecting() -> None:
    class Capped(SmallRingPool):
        _slot_limit = 5

    StubConnection.reset_stats()
    p = Capped(connection_class=StubConnection, open=False)
    p.open()
    try:
        conns = [p.getconn() for _ in range(5)]
        with pytest.raises(PoolTimeout):
            p.getconn(timeout=0.05)
        assert StubConnection.connects == 5 and p.get_stats()["pool_size"] == 5  # nothing leaked
        got: list = []
        t = queued_getconn(p, got)
        p.putconn(conns[0])
        t.join()
        assert got == [conns[0]]  # handed over, no sixth connection
        for c in [*conns[1:], got[0]]:
            p.putconn(c)
        assert p.get_stats()["pool_size"] == 0 and StubConnection.connects == 5
        p._ring.check_invariants()
    finally:
        p.close()


def test_resize_beyond_the_ring_capacity() -> None:
    StubConnection.reset_stats()
    p = SmallRingPool(connection_class=StubConnection, max_size=2, open=False)
    p.open()
    try:
        assert p._ring.capacity == 2
        p.resize(0, 6)
        conns = [p.getconn() for _ in range(6)]
        with pytest.raises(PoolTimeout):
            p.getconn(timeout=0.05)
        for c in conns:
            p.putconn(c)
        assert p.get_stats()["pool_size"] == 0
    finally:
        p.close()


def test_budget_survives_failing_checks_broken_returns_and_timeouts(monkeypatch) -> None:
    # Stub connections, many threads, max_size=3: checks fail (some breaking
    # the connection), some returns are broken, some requests time out. After
    # all that, nothing is held, no place under max_size is lost, and every
    # connection made was closed.
    import random

    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.001)
    made: list[Any] = []

    class Tracked(StubConnection):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            conn = super().connect(conninfo, **kwargs)
            made.append(conn)
            return conn

    def check(conn: Any) -> None:
        r = random.random()
        if r < 0.1:
            conn.close()
            raise OSError("broken")
        if r < 0.3:
            raise RuntimeError("not now")

    p = NullConnectionPool(connection_class=Tracked, max_size=3, check=check, open=False)
    p.open()
    try:

        def work(i: int) -> None:
            for _ in range(40):
                try:
                    conn = p.getconn(timeout=random.choice([0.0, 0.01, 0.5]))
                except PoolTimeout:
                    continue
                time.sleep(random.random() * 0.002)
                if random.random() < 0.1:
                    conn.close()
                p.putconn(conn)

        threads = [ReraiseThread(target=work, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = p.get_stats()
        assert stats["pool_size"] == 0 and stats["requests_waiting"] == 0, stats
        assert p._ring.size() == 0 and all(c.closed for c in made)
        p._ring.check_invariants()
        held = [p.getconn(timeout=1) for _ in range(3)]  # all of max_size is still there
        for c in held:
            p.putconn(c)
    finally:
        p.close()
