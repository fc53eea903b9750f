"""Behaviours where fastpool used to differ from psycopg_pool, now the same
(sync pools; tests/pool_async/test_async_dropin_pg.py has the async twins):
typed connection classes, what usage_ms measures, drain() keeping the size,
one with-block per connection() object, and two-phase transactions left
prepared in a block."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from typing import Any, TypeVar

import psycopg
import pytest
from psycopg.rows import DictRow, dict_row

from fastpool import ConnectionPool, NullConnectionPool, Pool

pytestmark = pytest.mark.postgres

POOL_CLASSES = [ConnectionPool, NullConnectionPool]


R = TypeVar("R")


class RowCountingConnection(psycopg.Connection[R]):
    """A user's generic connection subclass, as psycopg documents for typed pools."""

    opened = 0

    @classmethod
    def connect(cls, *args: Any, **kwargs: Any) -> Any:
        cls.opened += 1
        return super().connect(*args, **kwargs)


@pytest.mark.parametrize("cls", POOL_CLASSES)
@pytest.mark.parametrize(
    "connection_class",
    [psycopg.Connection[DictRow], RowCountingConnection[DictRow]],
    ids=["Connection[DictRow]", "subclass[DictRow]"],
)
def test_parametrised_connection_class_is_accepted(make_pool, cls, connection_class) -> None:
    before = RowCountingConnection.opened
    p = make_pool(
        cls,
        min_size=0,
        max_size=2,
        connection_class=connection_class,
        kwargs={"row_factory": dict_row},
    )
    assert p.connection_class is connection_class  # kept as given, like psycopg_pool
    with p.connection() as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        assert isinstance(conn, typing_origin(connection_class))
    if typing_origin(connection_class) is RowCountingConnection:
        assert RowCountingConnection.opened == before + 1


def typing_origin(tp: Any) -> type:
    import typing

    return typing.get_origin(tp) or tp


@pytest.mark.parametrize("cls", POOL_CLASSES)
@pytest.mark.parametrize("bad", [int, list[int], "psycopg.Connection", psycopg.connect])
def test_a_non_connection_class_is_refused_clearly(pg_dsn: str, cls, bad) -> None:
    with pytest.raises(TypeError, match="connection_class must be a connection class"):
        cls(pg_dsn, connection_class=bad, open=False)


@pytest.mark.parametrize("cls", POOL_CLASSES)
def test_usage_ms_counts_from_hand_out_not_from_the_request(make_pool, cls) -> None:
    # One connection, held with getconn() (which adds no usage) while a
    # with-block queues for it; the block itself does nothing. psycopg_pool
    # counts usage from hand-out to return, so the wait must not show up.
    p = (
        make_pool(cls, min_size=0, max_size=1)
        if cls is NullConnectionPool
        else make_pool(cls, min_size=1)
    )
    held = p.getconn()
    p.pop_stats()
    done = threading.Event()

    def block() -> None:
        with p.connection():
            pass
        done.set()

    t = threading.Thread(target=block)
    t.start()
    deadline = time.monotonic() + 10
    while p.get_stats()["requests_waiting"] == 0:
        assert time.monotonic() < deadline, "the with-block never queued"
        time.sleep(0.005)
    time.sleep(0.3)
    p.putconn(held)
    assert done.wait(10)
    t.join()
    stats = p.get_stats()
    assert stats["requests_wait_ms"] >= 300
    assert stats.get("usage_ms", 0) < stats["requests_wait_ms"] / 2, stats


def test_drain_keeps_the_pool_size(make_pool) -> None:
    # Grown above min_size: drain() replaces every connection one for one, as
    # psycopg_pool does; shrinking stays the max_idle task's job.
    p = make_pool(min_size=1, max_size=4)
    held = [p.getconn() for _ in range(4)]
    old_pids = {c.info.backend_pid for c in held}
    checked_out = held.pop()
    for c in held:
        p.putconn(c)
    assert p.get_stats()["pool_size"] == 4
    p.drain()
    p.putconn(checked_out)  # made before the drain: replaced on return
    assert checked_out.closed
    deadline = time.monotonic() + 10
    while p.get_stats()["pool_available"] < 4:
        assert time.monotonic() < deadline, p.get_stats()
        time.sleep(0.01)
    assert p.get_stats()["pool_size"] == 4
    conns = [p.getconn() for _ in range(4)]
    assert not {c.info.backend_pid for c in conns} & old_pids
    for c in conns:
        p.putconn(c)


@pytest.mark.parametrize("cls", POOL_CLASSES)
def test_a_connection_context_is_entered_once(make_pool, cls) -> None:
    p = make_pool(cls, min_size=0, max_size=2)
    ctx = p.connection()
    with ctx as conn:
        with pytest.raises(RuntimeError, match="already entered"):
            ctx.__enter__()
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with pytest.raises(RuntimeError, match="already entered"):
        with ctx:
            pass  # pragma: no cover - refused before the body
    assert p.get_stats()["pool_size"] <= 2
    assert p.get_stats().get("requests_num", 0) == 1  # the refused entries took nothing
    with p.connection() as conn2:  # nothing was lost: both connections usable
        with p.connection() as conn3:
            assert conn2 is not conn3


@pytest.mark.parametrize("cls", POOL_CLASSES)
def test_a_connection_context_shared_with_another_thread_is_refused(make_pool, cls) -> None:
    p = make_pool(cls, min_size=0, max_size=2)
    ctx = p.connection()
    errors: list[BaseException] = []
    with ctx as conn:

        def other() -> None:
            try:
                with ctx:
                    pass  # pragma: no cover - refused
            except RuntimeError as ex:
                errors.append(ex)

        t = threading.Thread(target=other)
        t.start()
        t.join(10)
        assert conn.execute("SELECT 1").fetchone() == (1,)  # still ours alone
    assert len(errors) == 1 and "already entered" in str(errors[0])


@pytest.mark.parametrize("cls", POOL_CLASSES)
def test_a_connection_context_works_as_exit_stack_and_explicit_calls_use_it(make_pool, cls) -> None:
    # ExitStack looks __enter__/__exit__ up on the class, the `with`
    # statement on the instance: the compiled context serves both.
    p = make_pool(cls, min_size=0, max_size=1)
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(p.connection())
        assert conn.execute("SELECT 1").fetchone() == (1,)
    ctx = p.connection()
    conn = ctx.__enter__()
    assert conn.execute("SELECT 2").fetchone() == (2,)
    with pytest.raises(ZeroDivisionError):
        with contextlib.ExitStack() as stack:
            stack.push(ctx)
            1 / 0
    with p.connection() as conn2:  # the one place went back both times
        assert conn2.execute("SELECT 3").fetchone() == (3,)
    assert p.get_stats()["requests_num"] == 3


def test_exit_without_enter_is_refused(make_pool) -> None:
    p = make_pool(min_size=1)
    with pytest.raises(RuntimeError, match="without a connection"):
        p.connection().__exit__(None, None, None)


def test_generic_pool_context_is_entered_once(pg_dsn: str) -> None:
    p = Pool(lambda: psycopg.connect(pg_dsn), min_size=1, max_size=1, open=True, timeout=5)
    try:
        ctx = p.connection()
        with ctx:
            with pytest.raises(RuntimeError, match="already entered"):
                ctx.__enter__()
        with p.connection() as conn:  # the one connection is back
            assert conn.cursor().execute("SELECT 1").fetchone() == (1,)
    finally:
        p.close()


def _prepare_in_block(p: Any, gid: str) -> None:
    with p.connection() as conn:
        conn.tpc_begin(gid)
        conn.execute("SELECT 1")
        conn.tpc_prepare()


@pytest.mark.parametrize("cls", POOL_CLASSES)
def test_prepared_two_phase_transaction_in_a_block_is_reported_and_never_reused(
    tpc_dsn: str, cls, caplog
) -> None:
    # psycopg's commit() refuses a connection inside a two-phase transaction:
    # the block's user must hear about it (the commit is not skipped just
    # because the connection is IDLE), and the connection, whose commit() and
    # rollback() would now always fail, is closed rather than handed out again.
    gid = f"fastpool-{uuid.uuid4().hex}"
    kwargs = {"min_size": 0, "max_size": 1} if cls is NullConnectionPool else {"min_size": 1}
    with (
        cls(tpc_dsn, open=True, timeout=5, **kwargs) as p,
        psycopg.connect(tpc_dsn, autocommit=True) as admin,
    ):
        try:
            with pytest.raises(psycopg.ProgrammingError, match="two-phase"):
                _prepare_in_block(p, gid)
            assert admin.execute(
                "SELECT count(*) FROM pg_prepared_xacts WHERE gid = %s", [gid]
            ).fetchone() == (1,)
            for _ in range(3):
                with p.connection() as conn:
                    conn.execute("SELECT 1")  # a transaction that commits normally
            stats = p.get_stats()
            assert stats["pool_size"] <= 1
            if cls is ConnectionPool:  # (a null pool closes every returned connection anyway)
                assert any(
                    "two-phase" in r.getMessage()
                    for r in caplog.records
                    if r.name == "psycopg.pool"
                )
        finally:
            admin.execute(f"ROLLBACK PREPARED '{gid}'")


def test_prepared_two_phase_transaction_returned_with_putconn_is_closed(tpc_dsn: str) -> None:
    gid = f"fastpool-{uuid.uuid4().hex}"
    with (
        ConnectionPool(tpc_dsn, min_size=1, open=True, timeout=5) as p,
        psycopg.connect(tpc_dsn, autocommit=True) as admin,
    ):
        try:
            conn = p.getconn()
            conn.tpc_begin(gid)
            conn.tpc_prepare()
            p.putconn(conn)
            assert conn.closed
            with p.connection() as conn2:
                assert conn2 is not conn
                conn2.execute("SELECT 1")
        finally:
            admin.execute(f"ROLLBACK PREPARED '{gid}'")
