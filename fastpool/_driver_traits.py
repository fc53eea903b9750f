"""What the generic pool needs to know about a DB-API driver's connections,
worked out once per connection class: is it in a transaction, is it closed,
how to ping it.

DB-API 2.0 standardises none of these, so each is found by what the class
offers, most precise first; when nothing tells, the answer is the safe one
(assume a transaction is open, so the pool rolls back; assume the connection
is open, so a broken one is found by the next ping or use).
"""

from __future__ import annotations

import inspect
import sys
import threading
from typing import Any, Callable, Mapping, NamedTuple

# MySQL's SERVER_STATUS_IN_TRANS bit of the status flags the server sends with
# every reply (PyMySQL and MariaDB Connector expose them as server_status).
_MYSQL_IN_TRANS = 1


class DriverTraits(NamedTuple):
    in_transaction: Callable[[Any], bool]
    is_closed: Callable[[Any], bool]
    ping: Callable[[Any], None]
    # The error to raise for a connection that can't be shared between threads
    # (its message says what to change), or None; None itself for drivers
    # where that can't happen.
    unshareable: Callable[[Any], Exception | None] | None


def _module_of(cls: type) -> str:
    return cls.__module__.split(".", 1)[0]


def _in_transaction_probe(cls: type) -> Callable[[Any], bool]:
    module = _module_of(cls)
    if module == "psycopg2":
        # 0 is TRANSACTION_STATUS_IDLE; UNKNOWN (closed) reads as "in
        # transaction", so the rollback finds out and the pool discards it.
        return lambda c: c.info.transaction_status != 0
    if module == "psycopg":
        return lambda c: c.pgconn.transaction_status != 0
    if hasattr(cls, "in_transaction"):  # sqlite3, MySQL Connector
        return lambda c: bool(c.in_transaction)
    if hasattr(cls, "server_status"):  # PyMySQL, MariaDB Connector
        return lambda c: bool(c.server_status & _MYSQL_IN_TRANS)
    return lambda c: True


def _is_mariadb(cls: type) -> bool:
    # The bases too: mariadb.connect(connectionclass=...) takes a subclass.
    return any(_module_of(k) == "mariadb" for k in cls.__mro__)


def _closed_probe(cls: type) -> Callable[[Any], bool]:
    if hasattr(cls, "closed"):  # psycopg2 (an int), psycopg (a bool)
        return lambda c: bool(c.closed)
    if _is_mariadb(cls) and hasattr(cls, "_closed") and hasattr(cls, "_get_socket"):
        # MariaDB Connector's ``open`` pings the server: a round trip on every
        # return. Its C connection says it locally: ``_closed`` after close(),
        # no socket (-1) once the link was lost during a query.
        return lambda c: bool(c._closed) or c._get_socket() < 0
    if isinstance(getattr(cls, "open", None), property):  # PyMySQL
        return lambda c: not c.open
    return lambda c: False


def _ping_probe(cls: type) -> Callable[[Any], None]:
    module = _module_of(cls)
    if module == "psycopg":
        from .pool import ConnectionPool

        return ConnectionPool.check_connection
    if module == "psycopg2":
        return _ping_psycopg2
    ping = getattr(cls, "ping", None)
    if callable(ping):
        params: Mapping[str, inspect.Parameter]
        try:
            params = inspect.signature(ping).parameters
        except (TypeError, ValueError):  # a C method without a signature
            params = {}
        if "reconnect" in params:
            # PyMySQL's default is reconnect=True: a silent reconnect would hand
            # out a new session as if it were the old one. Fail instead.
            return lambda c: c.ping(reconnect=False)
        return lambda c: c.ping()
    return _ping_with_query


def _ping_psycopg2(conn: Any) -> None:
    # SELECT 1 outside autocommit would open a transaction: run it in autocommit
    # (switching it is local in psycopg2, no round trip) when the connection is idle.
    if conn.autocommit or conn.info.transaction_status != 0:
        _ping_with_query(conn)
        return
    conn.autocommit = True
    try:
        _ping_with_query(conn)
    finally:
        try:
            conn.autocommit = False
        except Exception:
            pass  # the connection is broken: keep the original error


def _ping_with_query(conn: Any) -> None:
    cur = conn.cursor()
    try:
        cur.execute("SELECT 1")
        cur.fetchall()
    finally:
        cur.close()


def _unshareable_probe(cls: type) -> Callable[[Any], Exception | None] | None:
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and issubclass(cls, sqlite3.Connection):
        return _sqlite_unshareable
    return None


def _sqlite_unshareable(conn: Any) -> Exception | None:
    """sqlite3 connections opened with ``check_same_thread=True`` (the default)
    refuse every use from a thread other than the one that made them, and a
    pool hands each connection to many threads. sqlite3 doesn't say which kind
    a connection is: try a use from another thread (once per connection)."""
    refused: list[BaseException] = []

    def use_elsewhere() -> None:
        try:
            conn.cursor().close()
        except Exception as ex:
            refused.append(ex)

    probe = threading.Thread(target=use_elsewhere, name="fastpool-sqlite3-probe", daemon=True)
    probe.start()
    probe.join()
    if not refused:
        return None
    try:
        conn.cursor().close()  # the same use works here: the refusal was about threads
    except Exception:
        return None  # closed or broken: the pool finds that out on its own
    import sqlite3

    return sqlite3.ProgrammingError(
        "sqlite3 connections made with check_same_thread=True (sqlite3's default) can only be"
        " used by the thread that made them, and a pool hands them to other threads: open"
        " them with sqlite3.connect(..., check_same_thread=False) (safe here: the pool never"
        " gives one connection to two threads at once)"
    )


_cache: dict[type, DriverTraits] = {}
_cache_lock = threading.Lock()


def traits_of(conn: Any) -> DriverTraits:
    """The traits of ``conn``'s class (cached)."""
    cls = type(conn)
    traits = _cache.get(cls)
    if traits is None:
        with _cache_lock:
            traits = _cache.get(cls)
            if traits is None:
                traits = DriverTraits(
                    _in_transaction_probe(cls),
                    _closed_probe(cls),
                    _ping_probe(cls),
                    _unshareable_probe(cls),
                )
                _cache[cls] = traits
    return traits
