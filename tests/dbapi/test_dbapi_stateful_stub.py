"""fastpool.Pool as a hypothesis state machine on stub DB-API connections.

Single-threaded sequences of checkouts, returns (clean, in a transaction, with
the driver saying it is closed, invalidated, after a block that raised),
double returns and use after return; after every step the books must balance:
every driver connection is idle or held by exactly one PooledConnection, none
closed is kept, and pool_size never exceeds max_size."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, invariant, multiple, rule

from fastpool import ConnectionReturned, Pool, PoolTimeout
from tests.support.stubs import settle

_ids = itertools.count()


class StubDriverConnection:
    """sqlite3-like: says whether it is in a transaction; closed means unusable."""

    def __init__(self) -> None:
        self.id = next(_ids)
        self.in_transaction = False
        self.closed_flag = False

    def cursor(self) -> "StubDriverConnection":
        if self.closed_flag:
            raise OSError("closed")
        self.in_transaction = True
        return self

    def commit(self) -> None:
        if self.closed_flag:
            raise OSError("closed")
        self.in_transaction = False

    def rollback(self) -> None:
        self.commit()

    def ping(self) -> None:
        if self.closed_flag:
            raise OSError("closed")

    def close(self) -> None:
        self.closed_flag = True


class GenericPoolMachine(RuleBasedStateMachine):
    held = Bundle("held")

    def __init__(self) -> None:
        super().__init__()
        self.pool = Pool(StubDriverConnection, min_size=2, max_size=4, num_workers=2, timeout=5)
        self.pool.wait(5)
        self.out: set[int] = set()  # ids of driver connections held by "callers"
        self.drained: set[int] = set()  # held across a drain(): replaced on return

    def teardown(self) -> None:
        self.pool.close()

    @rule(target=held)
    def getconn(self):
        try:
            conn = self.pool.getconn(timeout=0.2)
        except PoolTimeout:
            assert len(self.out) >= 1  # only when callers hold connections
            return multiple()
        assert conn.raw.id not in self.out, "connection handed out twice"
        assert not conn.raw.closed_flag and not conn.raw.in_transaction
        self.out.add(conn.raw.id)
        return conn

    @rule(conn=consumes(held), how=st.sampled_from(["clean", "intrans", "closed", "invalidate"]))
    def give_back(self, conn, how: str) -> None:
        raw = conn.raw
        if how == "intrans":
            conn.cursor()
        elif how == "closed":
            raw.close()
        elif how == "invalidate":
            conn.invalidate()
        self.out.discard(raw.id)
        conn.close()
        kept = any(r.conn is not None and r.conn.raw is raw for r in self.pool._slots)
        assert kept == (how in ("clean", "intrans") and raw.id not in self.drained)
        if kept:
            assert not raw.in_transaction, "rolled back on return"

    @rule(conn=consumes(held), commit=st.booleans())
    def block_that_raises(self, conn, commit: bool) -> None:
        raw = conn.raw
        self.out.discard(raw.id)
        with pytest.raises(ZeroDivisionError):
            with conn:
                conn.cursor()
                if commit:
                    conn.commit()
                1 / 0
        assert not raw.in_transaction

    @rule(conn=consumes(held))
    def returned_twice_and_used_after(self, conn) -> None:
        self.out.discard(conn.raw.id)
        self.pool.putconn(conn)
        conn.close()  # a second close() does nothing
        with pytest.raises(ValueError, match="already returned"):
            self.pool.putconn(conn)
        with pytest.raises(ConnectionReturned):
            conn.cursor()

    @rule()
    def drain(self) -> None:
        self.drained |= self.out
        self.pool.drain()

    @rule()
    def check(self) -> None:
        self.pool.check()

    @invariant()
    def books_balance(self) -> None:
        settle(self.pool)
        p = self.pool
        stats = p.get_stats()
        kept = [r.conn for r in p._slots if r.conn is not None]
        assert len({h.raw.id for h in kept}) == len(kept)
        held_ids = {p._slots[s].conn.raw.id for s in p._ring.in_use()}
        assert held_ids == self.out
        assert stats["pool_available"] + len(self.out) == len(kept) == p._ring.size()
        assert not any(h.raw.closed_flag for h in kept)
        assert len(kept) <= 4
        p._ring.check_invariants()


GenericPoolMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, deadline=None
)
TestGenericPoolMachine = GenericPoolMachine.TestCase
