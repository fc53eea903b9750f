"""What a psycopg_pool user writes, on fastpool's pools: never run, only type-checked.

tests/typing/test_typing.py checks this file with ``mypy --strict`` and with
pyright, and compares what they say with the comments:

* ``reveal_type(x)  # -> T``: the checker must reveal the type T (module paths
  left out, as pyright prints it);
* ``# error: word``: the checker must report an error on this line, whose
  message mentions ``word`` (``# error`` alone: any error);
* every other line must be clean.
"""
from __future__ import annotations

from typing import Any, TypeVar

from psycopg import AsyncConnection, Connection
from psycopg.rows import DictRow, TupleRow, dict_row

from fastpool import (
    AsyncConnectionPool,
    AsyncNullConnectionPool,
    ConnectionPool,
    NullConnectionPool,
)

Row_co = TypeVar("Row_co", covariant=True)


class AuditedConnection(Connection[Row_co]):
    """A user's own connection class, generic in its rows like psycopg's."""

    def audit(self, event: str) -> None:
        self.execute("select %s", [event])


def configure_dicts(conn: Connection[DictRow]) -> None:
    conn.execute("set application_name = 'typing'")


def configure_any(conn: Connection[Any]) -> None:
    conn.execute("discard all")


def on_give_up(pool: ConnectionPool[Any]) -> None:
    print(f"{pool.name} can't connect")


async def on_give_up_async(pool: AsyncConnectionPool[Any]) -> None:
    print(f"{pool.name} can't connect")


async def configure_async(conn: AsyncConnection[DictRow]) -> None:
    await conn.execute("set application_name = 'typing'")


async def conninfo_from_vault() -> str:
    return "dbname=test"


def first_value(pool: ConnectionPool) -> int:
    # connection()'s __exit__ can't swallow an exception: no "missing return".
    with pool.connection() as conn:
        row = conn.execute("select 1").fetchone()
        assert row is not None
        return int(row[0])


def sync_pools() -> None:
    pool = ConnectionPool("dbname=test", open=False)
    reveal_type(pool)  # -> ConnectionPool[Connection[tuple[Any, ...]]]
    with pool.connection() as conn:
        reveal_type(conn)  # -> Connection[tuple[Any, ...]]
        reveal_type(conn.execute("select 1").fetchone())  # -> tuple[Any, ...] | None
        conn.exeute("select 1")  # error: exeute
    conn2 = pool.getconn(timeout=2.0)
    reveal_type(conn2)  # -> Connection[tuple[Any, ...]]
    pool.putconn(conn2)
    pool.putconn("a connection")  # error: putconn
    with pool as opened:
        reveal_type(opened)  # -> ConnectionPool[Connection[tuple[Any, ...]]]

    dicts = ConnectionPool(
        "dbname=test",
        connection_class=Connection[DictRow],
        kwargs={"row_factory": dict_row},
        configure=configure_dicts,
        check=ConnectionPool.check_connection,
        reset=configure_any,
        reconnect_failed=on_give_up,
        open=False,
    )
    reveal_type(dicts)  # -> ConnectionPool[Connection[dict[str, Any]]]
    with dicts.connection() as dconn:
        reveal_type(dconn.execute("select 1 as one").fetchone())  # -> dict[str, Any] | None

    audited = ConnectionPool(lambda: "dbname=test", connection_class=AuditedConnection[DictRow], open=False)
    with audited.connection() as aconn:
        reveal_type(aconn)  # -> AuditedConnection[dict[str, Any]]
        aconn.audit("checkout")
        aconn.audit(42)  # error: audit
    reveal_type(audited.getconn())  # -> AuditedConnection[dict[str, Any]]

    ConnectionPool("dbname=test", min_size="4")  # error: min_size
    ConnectionPool(5432)  # error
    ConnectionPool("dbname=test", timeout="slow")  # error: timeout
    ConnectionPool("dbname=test", connection_class=AsyncConnection)  # error: AsyncConnection
    ConnectionPool("dbname=test", connection_class=Connection[TupleRow], configure=configure_dicts)  # error: configure
    ConnectionPool("dbname=test", reconnect_failed=on_give_up_async)  # error: reconnect_failed
    ConnectionPool(conninfo_from_vault)  # error

    lifo = ConnectionPool("dbname=test", use_lifo=True, open=False)
    reveal_type(lifo.use_lifo)  # -> bool
    lifo.use_lifo = False  # error: use_lifo
    ConnectionPool("dbname=test", use_lifo="yes")  # error: use_lifo
    NullConnectionPool("dbname=test", use_lifo=True)  # error: use_lifo

    null = NullConnectionPool("dbname=test", open=False)
    reveal_type(null)  # -> NullConnectionPool[Connection[tuple[Any, ...]]]
    with null as opened_null:
        reveal_type(opened_null)  # -> NullConnectionPool[Connection[tuple[Any, ...]]]
        with opened_null.connection() as nconn:
            reveal_type(nconn)  # -> Connection[tuple[Any, ...]]
    null_dicts = NullConnectionPool(connection_class=Connection[DictRow], max_size=4, open=False)
    reveal_type(null_dicts.getconn())  # -> Connection[dict[str, Any]]
    NullConnectionPool("dbname=test", max_size="4")  # error: max_size
    NullConnectionPool("dbname=test", configure=42)  # error: configure


async def async_pools() -> None:
    pool = AsyncConnectionPool("dbname=test", open=False)
    reveal_type(pool)  # -> AsyncConnectionPool[AsyncConnection[tuple[Any, ...]]]
    async with pool as opened:
        reveal_type(opened)  # -> AsyncConnectionPool[AsyncConnection[tuple[Any, ...]]]
    async with pool.connection() as conn:
        reveal_type(conn)  # -> AsyncConnection[tuple[Any, ...]]
        cur = await conn.execute("select 1")
        reveal_type(await cur.fetchone())  # -> tuple[Any, ...] | None
        await conn.exeute("select 1")  # error: exeute
    conn2 = await pool.getconn()
    reveal_type(conn2)  # -> AsyncConnection[tuple[Any, ...]]
    await pool.putconn(conn2)
    await pool.putconn(3)  # error: putconn

    dicts = AsyncConnectionPool(
        conninfo_from_vault,
        connection_class=AsyncConnection[DictRow],
        kwargs=lambda: {"row_factory": dict_row},
        configure=configure_async,
        check=AsyncConnectionPool.check_connection,
        reconnect_failed=on_give_up_async,
        open=False,
    )
    reveal_type(dicts)  # -> AsyncConnectionPool[AsyncConnection[dict[str, Any]]]
    reveal_type(await dicts.getconn())  # -> AsyncConnection[dict[str, Any]]

    AsyncConnectionPool("dbname=test", configure=configure_dicts)  # error: configure
    AsyncConnectionPool("dbname=test", connection_class=Connection)  # error: Connection
    AsyncConnectionPool("dbname=test", max_waiting=1.5)  # error: max_waiting
    reveal_type(AsyncConnectionPool(use_lifo=True, open=False).use_lifo)  # -> bool
    AsyncNullConnectionPool(use_lifo=True)  # error: use_lifo

    null = AsyncNullConnectionPool("dbname=test", connection_class=AsyncConnection[DictRow], open=False)
    reveal_type(null)  # -> AsyncNullConnectionPool[AsyncConnection[dict[str, Any]]]
    async with null.connection() as nconn:
        reveal_type(nconn)  # -> AsyncConnection[dict[str, Any]]
    reveal_type(AsyncNullConnectionPool())  # -> AsyncNullConnectionPool[AsyncConnection[tuple[Any, ...]]]
    AsyncNullConnectionPool("dbname=test", min_size=None)  # error: min_size
