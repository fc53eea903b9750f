"""``fastpool.Pool`` and ``fastpool.ConnectionPool`` are siblings over one pool
core, not parent and child: the generic pool carries none of psycopg's API,
and each family writes its records, the shared core's included, to its own
logger (``fastpool`` for the generic pools, ``psycopg.pool`` for psycopg's,
as psycopg_pool does)."""

from __future__ import annotations

import inspect
import logging
import sqlite3
import warnings
from pathlib import Path
from typing import Callable

import pytest

from fastpool import ConnectionPool, Pool
from fastpool.base import AttemptWithBackoff, PoolCommon
from fastpool.pool import PoolCore
from tests.support.stubs import StubConnection
from tests.support.waiting import wait_until


@pytest.fixture
def connect(tmp_path: Path) -> Callable[[], sqlite3.Connection]:
    path = tmp_path / "family.db"
    return lambda: sqlite3.connect(path, check_same_thread=False)


def test_pool_is_no_connection_pool(connect: Callable[[], sqlite3.Connection]) -> None:
    with Pool(connect, min_size=1) as pool:
        assert not isinstance(pool, ConnectionPool)
        assert isinstance(pool, PoolCore)
    assert not issubclass(Pool, ConnectionPool)
    assert not issubclass(ConnectionPool, Pool)
    assert issubclass(ConnectionPool, PoolCore)


# psycopg_pool's connection target and the psycopg return path.
PSYCOPG_ONLY = (
    "conninfo",
    "kwargs",
    "connection_class",
    "close_returns",
    "_resolve_conninfo",
    "_resolve_kwargs",
    "_putconn_slow",
    "_reset_connection",
)


@pytest.mark.parametrize("name", PSYCOPG_ONLY)
def test_pool_lacks_the_psycopg_only_names(
    connect: Callable[[], sqlite3.Connection], name: str
) -> None:
    assert not hasattr(Pool, name)
    with Pool(connect, min_size=1) as pool:
        assert not hasattr(pool, name)


def records_of(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def test_generic_pool_logs_to_fastpool_only(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    connect: Callable[[], sqlite3.Connection],
) -> None:
    monkeypatch.setattr(AttemptWithBackoff, "INITIAL_DELAY", 0.05)
    failures = iter([OSError("server not there yet")])

    def connect_after_a_failure() -> sqlite3.Connection:
        for error in failures:
            raise error
        return connect()

    def reset(raw: sqlite3.Connection) -> None:
        raise RuntimeError("reset broke")

    caplog.set_level(logging.INFO)
    with Pool(connect_after_a_failure, min_size=1, reset=reset, timeout=5) as pool:
        pool.getconn().close()  # the reset fails: the connection is discarded
        wait_until(lambda: pool.get_stats()["pool_available"] == 1)
    generic = records_of(caplog, "fastpool")
    # The core's record (a failed connect) and the DB-API protocol's (a failed reset).
    assert any("server not there yet" in m for m in generic), generic
    assert any("reset broke" in m for m in generic), generic
    assert not [r for r in caplog.records if r.name.startswith("psycopg")]


def test_psycopg_pool_logs_to_psycopg_pool_only(caplog: pytest.LogCaptureFixture) -> None:
    pytest.importorskip("psycopg")
    caplog.set_level(logging.INFO)
    # Nothing listens on port 1: the core's connect attempts fail and are logged.
    pool = ConnectionPool(
        "host=127.0.0.1 port=1 connect_timeout=1", min_size=1, open=True, reconnect_timeout=0
    )
    try:
        wait_until(lambda: any("error connecting" in m for m in records_of(caplog, "psycopg.pool")))
    finally:
        pool.close()
    assert not [r for r in caplog.records if r.name == "fastpool"]


def test_pool_restates_the_common_settings_unchanged() -> None:
    # The settings every pool takes are PoolCommon's; their defaults are
    # psycopg_pool's, stated by AsyncConnectionPool (ConnectionPool's signature
    # is generated from it) and restated in Pool's typed signature (see the
    # comment on PoolCommon.__init__): same names, keyword-only, same defaults.
    source = inspect.signature(ConnectionPool.__init__).parameters
    params = inspect.signature(Pool.__init__).parameters
    common = [n for n in inspect.signature(PoolCommon.__init__).parameters if n != "self"]
    assert common
    for name in common:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert source[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        assert params[name].default == source[name].default, name


def test_pool_never_gives_psycopg_pools_open_warning(
    connect: Callable[[], sqlite3.Connection],
) -> None:
    # psycopg_pool warns on the first use of a pool its constructor opened
    # because ``open`` was left out, and so do its drop-ins...
    StubConnection.reset_stats()
    with pytest.warns(DeprecationWarning, match="'open' parameter will become 'False'"):
        psycopg_pool = ConnectionPool("", connection_class=StubConnection, min_size=1)
        try:
            psycopg_pool.wait()
        finally:
            psycopg_pool.close()
    # ...on the core's checkout path, which Pool shares: its ``open`` is a
    # plain True by default, so the warning never reaches a Pool user.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pool = Pool(connect, min_size=1)
        try:
            pool.wait()
            pool.getconn().close()
            with pool.connection() as conn:
                conn.execute("SELECT 1")
        finally:
            pool.close()
        with Pool(connect, min_size=1, open=False) as pool:
            pool.getconn().close()
    assert [str(w.message) for w in caught] == []
