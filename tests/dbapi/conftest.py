"""Drivers for the generic-pool tests: each real driver against a real server
(psycopg2 on PostgreSQL; PyMySQL, MySQL Connector and MariaDB Connector on
MariaDB) and sqlite3 on a file.

A ``Driver`` knows how to connect, how its server names a session (to tell
connections apart and kill them), and its parameter style."""

from __future__ import annotations

import importlib
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import pytest

DRIVERS = [
    "sqlite3",
    pytest.param("psycopg2", marks=pytest.mark.postgres),
    pytest.param("pymysql", marks=pytest.mark.mariadb),
    pytest.param("mysql.connector", marks=pytest.mark.mariadb),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


@dataclass
class Driver:
    name: str
    connect: Callable[[], Any]
    session_id: Callable[[Any], Any]  # raw connection -> server session id
    kill: Optional[Callable[[Any], None]]  # kill a session from outside
    table: str  # a table made for this test

    @property
    def module(self) -> Any:
        return importlib.import_module(self.name)

    def sql(self, text: str) -> str:
        """``text`` written with %s placeholders, in this driver's style."""
        return text.replace("%s", "?") if self.module.paramstyle == "qmark" else text

    def count(self) -> int:
        """Rows in the test table, seen from a connection outside the pool."""
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(f"SELECT COUNT(*) FROM {self.table}")
            n = cur.fetchone()[0]
            conn.rollback()
            return n
        finally:
            conn.close()


@pytest.fixture(scope="session")
def mariadb_server():
    pytest.importorskip("pymysql")
    from tests.support.mariadb import test_server

    with test_server() as server:
        if server is None:
            pytest.skip("no MariaDB/MySQL server reachable and no server binaries to start one")
        yield server


def _run(connect: Callable[[], Any], *statements: str) -> None:
    conn = connect()
    try:
        cur = conn.cursor()
        for s in statements:
            cur.execute(s)
        conn.commit()
    finally:
        conn.close()


def _scalar(conn: Any, sql: str) -> Any:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return cur.fetchone()[0]
    finally:
        cur.close()


@pytest.fixture(params=DRIVERS)
def driver(request: pytest.FixtureRequest, tmp_path) -> Iterator[Driver]:
    name = request.param
    pytest.importorskip(name)
    table = f"fp_{uuid.uuid4().hex[:12]}"
    if name == "sqlite3":
        import sqlite3

        path = str(tmp_path / "db.sqlite")
        connect = lambda: sqlite3.connect(path, check_same_thread=False, timeout=30)  # noqa: E731
        d = Driver(name, connect, id, None, table)
    elif name == "psycopg2":
        import psycopg2

        dsn = request.getfixturevalue("pg_dsn")
        admin = request.getfixturevalue("admin")
        connect = lambda: psycopg2.connect(dsn)  # noqa: E731

        def kill_pg(pid: Any) -> None:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])

        d = Driver(name, connect, lambda c: _scalar(c, "SELECT pg_backend_pid()"), kill_pg, table)
    else:
        from tests.support.mariadb import connect_args_for

        server = request.getfixturevalue("mariadb_server")
        module = importlib.import_module(name)
        args = connect_args_for(name, server.connect_args)
        connect = lambda: module.connect(**args)  # noqa: E731

        def kill_mysql(session: Any) -> None:
            _run(connect, f"KILL {int(session)}")

        d = Driver(name, connect, lambda c: _scalar(c, "SELECT CONNECTION_ID()"), kill_mysql, table)
    _run(d.connect, f"CREATE TABLE {table} (x INTEGER)")
    yield d
    _run(d.connect, f"DROP TABLE {table}")


@pytest.fixture
def make_dbapi_pool(driver: Driver, closing_pools: list):
    from fastpool import Pool

    def make(**kwargs: Any) -> Pool:
        kwargs.setdefault("timeout", 5.0)
        p = Pool(kwargs.pop("connect", driver.connect), **kwargs)
        closing_pools.append(p)
        return p

    return make
