"""The connection attributes the pool reads and writes on every cycle
(``_pool`` at checkout and return, ``_tpc`` and ``_num_transactions`` before a
return) behave as plain Python attribute accesses whatever the connection's
class does: a property, a ``__setattr__``, a class changed after the pool has
used its connections, an instance whose ``__dict__`` was asked for, a
``__class__`` assignment. (The compiled core skips the generic lookup where
CPython's own specialised bytecode would; these are the cases where it must
not.)"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

pytestmark = pytest.mark.postgres


def _cycle(p: Any, times: int = 3) -> None:
    for _ in range(times):
        with p.connection():
            pass


def _recording_pool_property(seen: list) -> property:
    def get(self: Any) -> Any:
        return self._pool_box

    def set_(self: Any, value: Any) -> None:
        seen.append(value)
        self._pool_box = value

    return property(get, set_)


def test_a_pool_property_added_after_use_sees_checkout_and_return(make_pool) -> None:
    class Conn(psycopg.Connection):
        pass

    p = make_pool(min_size=1, connection_class=Conn, kwargs={"autocommit": True})
    _cycle(p)  # the pool has set and cleared conn._pool a few times
    seen: list = []
    with p.connection() as conn:
        conn._pool_box = conn._pool
        Conn._pool = _recording_pool_property(seen)  # type: ignore[assignment]
    assert seen == [None]
    with p.connection() as conn:
        assert conn._pool is p
    assert seen == [None, p, None]
    assert p.get_stats()["pool_available"] == 1


def test_a_setattr_override_sees_every_pool_write(make_pool) -> None:
    seen: list = []

    class Conn(psycopg.Connection):
        def __setattr__(self, name: str, value: Any) -> None:
            if name == "_pool":
                seen.append(value)
            super().__setattr__(name, value)

    p = make_pool(min_size=1, connection_class=Conn, kwargs={"autocommit": True})
    p.wait()
    del seen[:]
    _cycle(p, 2)
    assert seen == [p, None, p, None]


def test_a_prepared_two_phase_flag_added_to_the_class_after_use_is_seen(make_pool) -> None:
    # As if the connection had a prepared two-phase transaction: psycopg's
    # commit() refuses it, so the block's exit must call it and raise.
    class Conn(psycopg.Connection):
        pass

    p = make_pool(min_size=1, connection_class=Conn, kwargs={"autocommit": True})
    _cycle(p)
    Conn._tpc = property(lambda self: ("xid", True))  # type: ignore[assignment]
    try:
        with pytest.raises(psycopg.ProgrammingError, match="two-phase"):
            with p.connection():
                pass
    finally:
        del Conn._tpc
    _cycle(p)


def test_an_instance_whose_dict_was_asked_for_still_reads_and_writes(make_pool) -> None:
    p = make_pool(min_size=1, kwargs={"autocommit": True})
    _cycle(p)
    with p.connection() as conn:
        attrs = vars(conn)  # (CPython turns the instance's attributes into a dict)
        assert attrs["_pool"] is p
    assert attrs["_pool"] is None
    with pytest.raises(psycopg.ProgrammingError, match="forbidden within a Transaction"):
        with p.connection() as again:
            assert again is conn and attrs["_pool"] is p
            attrs["_num_transactions"] = 1  # as if a transaction() block were open
    assert attrs["_pool"] is None
    attrs["_num_transactions"] = 0
    with p.connection() as again:
        assert again is conn and conn._pool is p
    assert conn._pool is None
    assert p.get_stats()["pool_available"] == 1


def test_a_class_assignment_during_a_block_is_seen_on_return(make_pool) -> None:
    class Conn(psycopg.Connection):
        pass

    seen: list = []

    class Recording(Conn):
        _pool = _recording_pool_property(seen)

    p = make_pool(min_size=1, connection_class=Conn, kwargs={"autocommit": True})
    _cycle(p)
    with p.connection() as conn:
        conn._pool_box = p
        conn.__class__ = Recording
    assert seen == [None]
    with p.connection() as again:
        assert again is conn
    assert seen == [None, p, None]
