"""ConnectionPool as a hypothesis state machine on stub connections.

Single-threaded sequences of checkouts, returns (clean, in a transaction,
closed), drains, checks and resizes; after every step the pool's books must
balance: every connection is either idle or held by exactly one caller, and
pool_size never exceeds max_size."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, multiple, rule

from fastpool import ConnectionPool, PoolTimeout
from tests.support.stubs import StubConnection, settle

INTRANS, UNKNOWN = 2, 4


class PoolMachine(RuleBasedStateMachine):
    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        StubConnection.reset_stats()
        self.pool = ConnectionPool(
            "", connection_class=StubConnection, min_size=2, max_size=4, open=True, num_workers=2
        )
        self.pool.wait(5)
        self.out: set[int] = set()  # ids of connections held by "callers"
        self.max_seen = 4  # the largest max_size so far: shrinking closes nothing at once

    def teardown(self) -> None:
        self.pool.close()

    @rule(target=held)
    def getconn(self):
        try:
            conn = self.pool.getconn(timeout=0.2)
        except PoolTimeout:
            if self.out:  # callers hold connections: running out is allowed
                return multiple()
            # Nothing is held, so the pool owes a connection; its workers may only be slow to
            # make it on a loaded machine (after a drain or a discard). It must come.
            conn = self.pool.getconn(timeout=30)
        assert conn.id not in self.out, "connection handed out twice"
        assert not conn.closed
        self.out.add(conn.id)
        return conn

    @rule(conn=consumes(held), how=st.sampled_from(["clean", "intrans", "closed"]))
    def putconn(self, conn, how: str) -> None:
        if how == "intrans":
            conn.pgconn.transaction_status = INTRANS
        elif how == "closed":
            conn.close()
        self.out.discard(conn.id)
        self.pool.putconn(conn)
        if how == "intrans":
            kept = any(r.conn is conn for r in self.pool._slots)
            # rolled back and kept, unless the pool was drained since it went out
            assert conn.pgconn.transaction_status == (0 if kept else UNKNOWN)

    @rule(conn=consumes(held))
    def putconn_twice_is_refused(self, conn) -> None:
        self.out.discard(conn.id)
        self.pool.putconn(conn)
        with pytest.raises(ValueError):
            self.pool.putconn(conn)

    @rule()
    def drain(self) -> None:
        self.pool.drain()

    @rule()
    def check(self) -> None:
        self.pool.check()

    @rule(max_size=st.integers(min_value=2, max_value=5))
    def resize(self, max_size: int) -> None:
        self.pool.resize(2, max_size)
        self.max_seen = max(self.max_seen, max_size)

    @invariant()
    def books_balance(self) -> None:
        settle(self.pool)
        p = self.pool
        stats = p.get_stats()
        conns = [r.conn for r in p._slots if r.conn is not None]
        assert len({c.id for c in conns}) == len(conns)
        held_ids = {p._slots[s].conn.id for s in p._ring.in_use()}
        assert held_ids == self.out
        assert p._ring.size() == len(conns)
        assert stats["pool_available"] + len(self.out) == len(conns)
        assert all(not c.closed for c in conns)
        assert stats["pool_size"] >= len(conns)
        assert len(conns) <= self.max_seen
        p._ring.check_invariants()


PoolMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestPoolMachine = PoolMachine.TestCase
