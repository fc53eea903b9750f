"""What happens to a connection when it comes back: psycopg_pool's rules."""

from __future__ import annotations

import logging

import psycopg
import pytest

from fastpool import ConnectionPool

from .conftest import kill_backend, pool_records

pytestmark = pytest.mark.postgres


@pytest.fixture
def table(admin) -> str:
    admin.execute("DROP TABLE IF EXISTS fp_ret; CREATE TABLE fp_ret (x int)")
    yield "fp_ret"
    admin.execute("DROP TABLE IF EXISTS fp_ret")


def count(admin) -> int:
    return admin.execute("SELECT count(*) FROM fp_ret").fetchone()[0]


def test_connection_block_commits_on_success(make_pool, admin, table) -> None:
    p = make_pool(min_size=1)
    with p.connection() as conn:
        conn.execute("INSERT INTO fp_ret VALUES (1)")
    assert count(admin) == 1
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_connection_block_rolls_back_on_error_and_reraises(make_pool, admin, table) -> None:
    p = make_pool(min_size=1)
    with pytest.raises(ZeroDivisionError):
        with p.connection() as conn:
            conn.execute("INSERT INTO fp_ret VALUES (1)")
            raise ZeroDivisionError
    assert count(admin) == 0
    assert p.get_stats()["pool_available"] == 1


def test_autocommit_connection_needs_no_commit(make_pool, admin, table) -> None:
    p = make_pool(min_size=1, kwargs={"autocommit": True})
    with p.connection() as conn:
        conn.execute("INSERT INTO fp_ret VALUES (1)")
    assert count(admin) == 1


@pytest.mark.parametrize("status", ["INTRANS", "INERROR"])
def test_putconn_in_transaction_rolls_back_with_a_warning(
    make_pool, admin, table, caplog, status
) -> None:
    p = make_pool(min_size=1)
    conn = p.getconn()
    conn.execute("INSERT INTO fp_ret VALUES (1)")
    if status == "INERROR":
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1/0")
    assert conn.info.transaction_status.name == status
    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    p.putconn(conn)
    assert [m for m in pool_records(caplog) if "rolling back returned connection" in m]
    assert count(admin) == 0
    with p.connection() as again:
        assert again is conn  # rolled back, healthy: kept
        assert again.info.transaction_status.name == "IDLE"
        assert again.execute("SELECT 1").fetchone() == (1,)


def test_putconn_mid_query_closes_and_replaces(make_pool, caplog) -> None:
    p = make_pool(min_size=1)
    conn = p.getconn()
    conn.pgconn.send_query(b"SELECT pg_sleep(0.1)")
    assert conn.info.transaction_status.name == "ACTIVE"
    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    p.putconn(conn)
    assert conn.closed
    assert [m for m in pool_records(caplog) if "closing returned connection" in m]
    p.wait()
    with p.connection() as c2:
        assert c2 is not conn and c2.execute("SELECT 1").fetchone() == (1,)


def test_closed_in_block_is_replaced_and_counted(make_pool, caplog) -> None:
    p = make_pool(min_size=1)
    caplog.set_level(logging.WARNING, logger="psycopg.pool")
    with p.connection() as conn:
        conn.close()
    assert p.get_stats()["returns_bad"] == 1
    assert [m for m in pool_records(caplog) if "discarding closed connection" in m]
    p.wait()
    with p.connection() as c2:
        assert c2 is not conn


def test_killed_backend_returned_is_replaced(make_pool, admin) -> None:
    p = make_pool(min_size=1)
    conn = p.getconn()
    kill_backend(admin, conn.info.backend_pid)
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    p.putconn(conn)
    p.wait()
    with p.connection() as c2:
        assert c2.execute("SELECT 1").fetchone() == (1,)
    assert p.get_stats()["returns_bad"] == 1


def test_reset_runs_on_return(make_pool) -> None:
    resets = []

    def reset(conn) -> None:
        resets.append(conn.info.backend_pid)
        conn.execute("RESET ALL")
        conn.commit()

    p = make_pool(min_size=1, reset=reset)
    with p.connection() as conn:
        conn.execute("SET application_name = 'dirty'")
    assert resets == [conn.info.backend_pid]
    with p.connection() as conn:
        assert conn.execute("SHOW application_name").fetchone() != ("dirty",)


def test_reset_leaving_a_transaction_discards(make_pool) -> None:
    p = make_pool(min_size=1, reset=lambda conn: conn.execute("SELECT 1"))
    with p.connection() as conn:
        pass
    assert conn.closed
    p.wait()
    with p.connection() as c2:
        assert c2 is not conn


def test_close_returns_makes_close_give_the_connection_back(make_pool) -> None:
    p = make_pool(min_size=1, close_returns=True)
    conn = p.getconn()
    conn.close()
    assert not conn.closed and conn._pool is None
    assert p.get_stats()["pool_available"] == 1
    with p.connection() as again:
        assert again is conn
        again.close()  # inside the block: returned once, not twice
    assert p.get_stats()["pool_available"] == 1


def test_block_that_gave_its_connection_back_does_not_return_it_twice(make_pool) -> None:
    # The block's exit must notice the putconn() made inside it.
    p = make_pool(min_size=2)
    p.wait()
    with p.connection() as conn:
        p.putconn(conn)
        assert p.get_stats()["pool_available"] == 2
    assert p.get_stats()["pool_available"] == 2
    p._ring.check_invariants()
    with p.connection() as a, p.connection() as b:
        assert a is not b


def test_block_ended_inside_a_transaction_block_raises_as_psycopg(make_pool, pg_dsn) -> None:
    # IDLE, yet psycopg's commit() refuses it (a transaction() block is still
    # open): the pool's exit must call it all the same, as psycopg's would.
    def leave_transaction_open(conn: psycopg.Connection) -> object:
        block = conn.transaction()
        block.__enter__()
        conn.execute("COMMIT")  # the server's transaction ends, psycopg's block does not
        assert conn.info.transaction_status.name == "IDLE"
        return block  # (collected, it would end psycopg's block)

    with psycopg.connect(pg_dsn, autocommit=True) as raw:
        with pytest.raises(
            psycopg.ProgrammingError, match="forbidden within a Transaction"
        ) as ours:
            with raw:
                block = leave_transaction_open(raw)
        del block
    p = make_pool(min_size=1, kwargs={"autocommit": True})
    with pytest.raises(psycopg.ProgrammingError) as theirs:
        with p.connection() as conn:
            block = leave_transaction_open(conn)
    del block
    assert str(theirs.value) == str(ours.value)


def test_putconn_of_another_pools_connection(make_pool) -> None:
    a = make_pool(min_size=1, name="a")
    b = make_pool(min_size=1, name="b")
    conn = a.getconn()
    with pytest.raises(
        ValueError, match="can't return connection to pool 'b', it comes from pool 'a'"
    ):
        b.putconn(conn)
    a.putconn(conn)


def test_putconn_of_a_foreign_connection(make_pool, pg_dsn) -> None:
    p = make_pool(min_size=1)
    with psycopg.connect(pg_dsn) as conn:
        with pytest.raises(ValueError, match="it doesn't come from any pool"):
            p.putconn(conn)


def test_double_putconn_is_refused_and_nothing_is_handed_out_twice(make_pool) -> None:
    p = make_pool(min_size=2)
    p.wait()
    conn = p.getconn()
    p.putconn(conn)
    with pytest.raises(ValueError, match="it was already returned"):
        p.putconn(conn)
    a, b = p.getconn(), p.getconn()
    assert a is not b
    assert p.get_stats()["pool_size"] == 2
    p.putconn(a)
    p.putconn(b)
    p._ring.check_invariants()


def test_putconn_after_close_closes_the_connection(pg_dsn) -> None:
    p = ConnectionPool(pg_dsn, min_size=1, open=True)
    conn = p.getconn()
    p.close()
    p.putconn(conn)
    assert conn.closed


def test_close_returns_on_psycopg_without_pool_support(make_pool, monkeypatch) -> None:
    # psycopg < 3.3: the pool swaps in PoolConnection, whose close() returns it.
    import fastpool.pool as pool_module

    monkeypatch.setattr(pool_module, "CLOSE_RETURNS_BUILTIN", False)
    p = make_pool(min_size=1, close_returns=True)
    assert p.connection_class is pool_module.PoolConnection
    conn = p.getconn()
    conn.close()
    assert not conn.closed and p.get_stats()["pool_available"] == 1

    class Custom(psycopg.Connection):
        pass

    with pytest.raises(
        TypeError, match="close_returns=True with a custom connection_class needs psycopg >= 3.3"
    ):
        ConnectionPool("", connection_class=Custom, close_returns=True, open=False)
