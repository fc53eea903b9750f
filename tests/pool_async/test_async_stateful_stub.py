"""AsyncConnectionPool as a hypothesis state machine on stub connections, on
one event loop kept across steps: checkouts, waiting tasks, cancellations of
waiting tasks (before and after they were handed a connection), returns
(clean, in a transaction, closed), drains, checks and resizes. After every
step the books must balance: each connection is idle, or held by exactly one
caller, or on its way to a waiting task; none is lost or handed out twice."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, multiple, rule

from fastpool import AsyncConnectionPool, PoolTimeout
from tests.support.stubs import AsyncStubConnection

INTRANS = 2


class AsyncPoolMachine(RuleBasedStateMachine):
    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.pool = AsyncConnectionPool(
            "",
            connection_class=AsyncStubConnection,
            min_size=1,
            max_size=2,
            open=False,
            num_workers=2,
        )
        self.run(self.pool.open(wait=True, timeout=5))
        self.out: dict[int, AsyncStubConnection] = {}  # held by "callers"
        self.waiting: list[asyncio.Task] = []
        self.max_seen = 2

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def spin(self, n: int = 5) -> None:
        for _ in range(n):
            self.run(asyncio.sleep(0))

    def teardown(self) -> None:
        async def finish() -> None:
            for t in self.waiting:
                t.cancel()
            await asyncio.gather(*self.waiting, return_exceptions=True)
            await self.pool.close()

        try:
            self.run(finish())
        finally:
            self.loop.close()

    def collect(self) -> None:
        """Waiting tasks that finished: their connections are now held."""
        for t in [t for t in self.waiting if t.done()]:
            self.waiting.remove(t)
            if t.cancelled():
                continue
            exc = t.exception()
            if exc is None:
                conn = t.result()
                assert conn.id not in self.out, "connection handed out twice"
                self.out[conn.id] = conn
            else:
                assert isinstance(exc, PoolTimeout), exc

    @rule(target=held)
    def getconn(self):
        try:
            conn = self.run(self.pool.getconn(timeout=0.01))
        except PoolTimeout:
            return multiple()
        assert conn.id not in self.out, "connection handed out twice"
        assert not conn.closed
        self.out[conn.id] = conn
        return conn

    @rule()
    def start_waiting_task(self) -> None:
        self.waiting.append(self.loop.create_task(self.pool.getconn(timeout=5)))
        self.spin(1)

    @rule(data=st.data(), spin_first=st.booleans())
    def cancel_a_waiting_task(self, data, spin_first: bool) -> None:
        if not self.waiting:
            return
        task = data.draw(st.sampled_from(self.waiting))
        if spin_first:
            self.spin(1)  # it may have been handed a connection by now
        task.cancel()
        self.spin()

    @rule(conn=consumes(held), how=st.sampled_from(["clean", "intrans", "closed"]))
    def putconn(self, conn, how: str) -> None:
        if conn.id not in self.out:
            return  # already returned by another rule
        if how == "intrans":
            conn.pgconn.transaction_status = INTRANS
        elif how == "closed":
            self.run(conn.close())
        del self.out[conn.id]
        self.run(self.pool.putconn(conn))
        self.spin()

    @rule(conn=consumes(held))
    def hand_over_to_a_waiter_cancelled_before_it_resumes(self, conn) -> None:
        # A new task queues (if nothing is idle); the return hands it the
        # connection and the task is cancelled before it resumes: it must pass
        # the connection on, not drop it.
        if conn.id not in self.out:
            return
        waiter = self.loop.create_task(self.pool.getconn(timeout=5))
        self.waiting.append(waiter)
        self.spin(1)
        del self.out[conn.id]

        async def put_and_cancel() -> None:
            await self.pool.putconn(conn)
            waiter.cancel()

        self.run(put_and_cancel())
        self.spin()

    @rule()
    def return_the_newest_held(self) -> None:
        # Also how connections handed to waiting tasks get back (they are not in
        # the bundle).
        self.collect()
        if self.out:
            conn = list(self.out.values())[-1]
            del self.out[conn.id]
            self.run(self.pool.putconn(conn))
            self.spin()

    @rule()
    def putconn_twice_is_refused(self) -> None:
        self.collect()
        if not self.out:
            return
        conn = next(iter(self.out.values()))
        del self.out[conn.id]

        async def twice() -> None:
            # Back to back, without letting a waiting task run: once a waiter has
            # resumed with this connection, a stale second putconn() can't be told
            # from the waiter's own (the conn._pool protocol has no owner token).
            await self.pool.putconn(conn)
            with pytest.raises(ValueError):
                await self.pool.putconn(conn)

        self.run(twice())

    @rule()
    def drain(self) -> None:
        self.run(self.pool.drain())

    @rule()
    def check(self) -> None:
        self.run(self.pool.check())

    @rule(max_size=st.integers(min_value=1, max_value=3))
    def resize(self, max_size: int) -> None:
        self.run(self.pool.resize(1, max_size))
        self.max_seen = max(self.max_seen, max_size)

    @invariant()
    def books_balance(self) -> None:
        for _ in range(200):  # let connects and hand-overs finish
            self.spin()
            if not self.pool._connecting and not self.pool._background:
                break
        self.collect()
        p = self.pool
        conns = [r.conn for r in p._slots if r.conn is not None]
        assert len({c.id for c in conns}) == len(conns)
        held_ids = {p._slots[s].conn.id for s in p._ring.in_use()}
        assert held_ids == set(self.out), (held_ids, set(self.out))
        assert p._ring.size() == len(conns)
        stats = p.get_stats()
        assert stats["pool_available"] + len(self.out) == len(conns)
        assert stats["requests_waiting"] == len(self.waiting)
        assert all(not c.closed for c in conns)
        assert len(conns) <= self.max_seen
        p._ring.check_invariants()


AsyncPoolMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None
)
TestAsyncPoolMachine = AsyncPoolMachine.TestCase
