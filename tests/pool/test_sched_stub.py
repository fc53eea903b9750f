"""Scheduling behaviour on stub connections (no database): FIFO hand-off, no
barging, timeouts, close, parallel growth, conservation under many threads."""

from __future__ import annotations

import threading
import time

import pytest

import fastpool
from fastpool import ConnectionPool, PoolClosed, PoolTimeout, waiting
from tests.support.stubs import StubConnection
from tests.support.threads import run_threads
from tests.support.waiting import wait_until


@pytest.fixture
def stub_pool():
    made = []

    def make(**kwargs):
        StubConnection.reset_stats(kwargs.pop("connect_delay", 0.0))
        kwargs.setdefault("open", True)
        p = ConnectionPool("", connection_class=StubConnection, **kwargs)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def start_waiter(pool, results: list, name, timeout: float = 10.0) -> threading.Thread:
    def run() -> None:
        try:
            conn = pool.getconn(timeout=timeout)
        except Exception as ex:  # noqa: BLE001 - recorded for the test
            results.append((name, ex))
            return
        results.append((name, conn))
        pool.putconn(conn)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_waiters_are_served_in_arrival_order(stub_pool) -> None:
    p = stub_pool(min_size=1)
    p.wait()
    held = p.getconn()
    served: list = []
    threads = []
    for i in range(5):
        threads.append(start_waiter(p, served, i))
        wait_until(lambda n=i + 1: p.get_stats()["requests_waiting"] == n)
    p.putconn(held)
    for t in threads:
        t.join()
    assert [name for name, _ in served] == [0, 1, 2, 3, 4]
    assert all(conn is held for _, conn in served)


def test_no_barging_while_someone_waits(stub_pool) -> None:
    p = stub_pool(min_size=1)
    p.wait()
    held = p.getconn()
    served: list = []
    release = threading.Event()

    def queued() -> None:
        conn = p.getconn(timeout=10)
        served.append(conn)
        release.wait(10)  # keep it until this thread has asked
        p.putconn(conn)

    t = threading.Thread(target=queued)
    t.start()
    wait_until(lambda: p.get_stats()["requests_waiting"] == 1)
    # Return and immediately ask again from this thread: the waiter goes first.
    p.putconn(held)
    with pytest.raises(PoolTimeout):
        p.getconn(timeout=0.05)
    release.set()
    t.join()
    assert served == [held]


def test_timed_out_waiter_leaves_the_queue_and_never_gets_a_connection(stub_pool) -> None:
    p = stub_pool(min_size=1)
    held = p.getconn()
    with pytest.raises(PoolTimeout, match="after 0.05 sec"):
        p.getconn(timeout=0.05)
    assert p.get_stats()["requests_waiting"] == 0
    p.putconn(held)
    assert p.get_stats()["pool_available"] == 1  # not handed to the dead waiter


def test_close_wakes_every_waiter(stub_pool) -> None:
    p = stub_pool(min_size=1)
    p.getconn()
    results: list = []
    threads = [start_waiter(p, results, i, timeout=60) for i in range(8)]
    wait_until(lambda: p.get_stats()["requests_waiting"] == 8)
    p.close()
    for t in threads:
        t.join(10)
        assert not t.is_alive()
    assert len(results) == 8 and all(isinstance(r, PoolClosed) for _, r in results)


def test_growth_connects_in_parallel(stub_pool) -> None:
    p = stub_pool(min_size=0, max_size=8, connect_delay=0.2)
    results: list = []
    threads = [start_waiter(p, results, i) for i in range(8)]
    for t in threads:
        t.join()
    assert all(not isinstance(c, Exception) for _, c in results)
    assert StubConnection.max_in_flight > 1
    assert p.get_stats()["pool_size"] <= 8


def test_spike_is_served_without_opening_a_connection_per_caller(stub_pool) -> None:
    p = stub_pool(min_size=5, max_size=20, connect_delay=0.15)
    p.wait()
    StubConnection.connects = 0
    results: list = []

    def caller(i: int) -> None:
        conn = p.getconn(timeout=10)
        time.sleep(0.002)
        results.append(i)
        p.putconn(conn)

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(50))
    # Returns are handed to waiters while connects are slow: far fewer than 50 new ones.
    assert StubConnection.connects <= 15
    assert p.get_stats()["pool_size"] <= 20


def test_many_threads_never_share_a_connection(stub_pool) -> None:
    p = stub_pool(min_size=3, max_size=3)
    p.wait()
    owners: dict = {}
    duplicates: list = []
    errors: list = []

    def work(tid: int) -> None:
        try:
            for i in range(300):
                if i % 3 == 0:
                    with p.connection() as conn:
                        if owners.setdefault(conn.id, tid) != tid:
                            duplicates.append(conn.id)
                        del owners[conn.id]
                else:
                    conn = p.getconn()
                    if owners.setdefault(conn.id, tid) != tid:
                        duplicates.append(conn.id)
                    del owners[conn.id]
                    p.putconn(conn)
        except Exception as ex:  # noqa: BLE001
            errors.append(ex)

    run_threads(work, 64, switch_interval=1e-5)
    assert errors == [] and duplicates == []
    stats = p.get_stats()
    assert stats["pool_size"] == stats["pool_available"] == 3
    assert stats["requests_num"] == 64 * 300
    p._ring.check_invariants()


def test_exception_in_block_returns_the_connection(stub_pool) -> None:
    p = stub_pool(min_size=1)
    with pytest.raises(KeyboardInterrupt):
        with p.connection():
            raise KeyboardInterrupt
    assert p.get_stats()["pool_available"] == 1


def test_interrupted_waiter_does_not_strand_a_connection(stub_pool, monkeypatch) -> None:
    p = stub_pool(min_size=1)
    held = p.getconn()

    def interrupted_wait(self, timeout):
        p.putconn(held)  # the hand-off lands while we are being interrupted
        raise KeyboardInterrupt

    monkeypatch.setattr(waiting.Waiter, "wait", interrupted_wait)
    with pytest.raises(KeyboardInterrupt):
        p.getconn(timeout=5)
    monkeypatch.undo()
    assert p.get_stats()["pool_available"] == 1
    assert p.get_stats()["requests_waiting"] == 0
    with p.connection() as conn:
        assert conn is held


@pytest.mark.skipif(
    fastpool.__impl__ == "c",
    reason="the compiled putconn has no point where close() can interleave under the GIL; "
    "the window exists in the pure-Python twin (and in free-threaded builds)",
)
def test_return_racing_close_still_closes_the_connection(stub_pool) -> None:
    # putconn() passed its "closed?" check, then close() emptied the ring, then
    # the release landed: the connection must not stay open in a closed pool.
    p = stub_pool(min_size=1)
    conn = p.getconn()
    ring = p._ring
    real_release = ring.release
    calls = []

    class RacingRing:
        def __getattr__(self, name):
            return getattr(ring, name)

        def release(self, slot):
            if not calls:
                calls.append(slot)
                p.close()  # close() runs "between" the check and the release
            real_release(slot)

    p._ring = RacingRing()
    try:
        p.putconn(conn)
    finally:
        p._ring = ring
    assert calls and conn.closed
    assert p.get_stats()["pool_available"] == 0
