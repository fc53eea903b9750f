"""Static types of the generic pool and the drop-ins, as a user's code sees them
(test_typing.py does the same for the psycopg pools, and checks the package).

A sample of user code is type-checked with mypy (strict) and pyright: the
``assert_type`` lines fail the check if a type drifts (say ``Pool`` stops being
generic in the driver's connection), and the lines marked ``# type: ignore``
must really be errors (unused ignores are errors here), so the checks that
catch misuse are tested too. As in test_typing.py: once per scripts/test (the
compiled-core pass), on a Python the pinned checkers support; a missing checker
fails, a missing library of the sample skips.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.passes import core_independent

pytestmark = [
    core_independent,  # static typing
    pytest.mark.skipif(
        sys.version_info < (3, 10),
        reason="the pinned mypy needs Python >= 3.10 (see the test group)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]

SAMPLE = """
from __future__ import annotations

import sqlite3

from typing_extensions import assert_type

from fastpool import Pool, PooledConnection


def connect() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", check_same_thread=False)


def generic_pool() -> None:
    pool = Pool(connect, min_size=1, configure=lambda c: c.execute("PRAGMA foreign_keys = ON"))
    assert_type(pool, Pool[sqlite3.Connection])
    conn = pool.getconn()
    assert_type(conn, PooledConnection[sqlite3.Connection])
    assert_type(conn.raw, sqlite3.Connection)
    assert_type(conn.cursor(), sqlite3.Cursor)
    pool.putconn(conn)
    with pool.connection() as c:
        assert_type(c, PooledConnection[sqlite3.Connection])
    with pool as same:
        assert_type(same, Pool[sqlite3.Connection])
    assert_type(Pool.filled(connect, 1, 2), Pool[sqlite3.Connection])
    assert_type(Pool(connect, use_lifo=True).use_lifo, bool)
    # callbacks get the driver's connection, typed
    Pool(connect, check=lambda c: c.no_such_method())  # type: ignore[attr-defined]
    # a connection from another kind of pool is refused
    other = Pool(lambda: 42).getconn()
    pool.putconn(other)  # type: ignore[arg-type]


def drop_ins() -> None:
    from mysql.connector.abstracts import MySQLConnectionAbstract
    from sqlalchemy import create_engine
    from sqlalchemy.ext.asyncio import create_async_engine

    from fastpool.mysql_pool import MySQLConnectionPool
    from fastpool.sqlalchemy_pool import AsyncAdaptedFastQueuePool, FastQueuePool

    mp = MySQLConnectionPool(pool_size=2, host="db")
    assert_type(mp.get_connection(), PooledConnection[MySQLConnectionAbstract])
    assert_type(mp.pool, Pool[MySQLConnectionAbstract])
    create_engine("postgresql+psycopg://", poolclass=FastQueuePool, pool_size=2)
    create_async_engine("postgresql+asyncpg://", poolclass=AsyncAdaptedFastQueuePool, pool_size=2)


def metrics(pool: Pool[sqlite3.Connection]) -> None:
    from opentelemetry.metrics import Asynchronous
    from prometheus_client import CollectorRegistry

    from fastpool.metrics import PoolCollector, instrument_opentelemetry

    CollectorRegistry().register(PoolCollector(pool))
    assert_type(instrument_opentelemetry(pool), list[Asynchronous])
    PoolCollector(object())  # type: ignore[arg-type]
"""


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")


def _tool(module: str) -> list[str]:
    if importlib.util.find_spec(module) is None:
        pytest.fail(f"{module} is not installed: pip install --group test")
    return [sys.executable, "-m", module]


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    for module in ("sqlalchemy", "mysql.connector", "prometheus_client", "opentelemetry.metrics"):
        _need(module)
    path = tmp_path / "sample.py"
    path.write_text(SAMPLE)
    return path


def test_mypy_sees_the_documented_types(sample: Path) -> None:
    # MYPYPATH puts this checkout's fastpool first; errors inside fastpool itself
    # are test_typing.py's business (follow-imports=silent).
    proc = subprocess.run(
        _tool("mypy")
        + [
            "--strict",
            "--follow-imports=silent",
            "--warn-unused-ignores",
            "--no-error-summary",
            f"--cache-dir={sample.parent / 'mypy_cache'}",
            str(sample),
        ],
        cwd=sample.parent,
        env={**os.environ, "MYPYPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pyright_sees_the_documented_types(sample: Path) -> None:
    config = sample.parent / "pyrightconfig.json"
    config.write_text(
        json.dumps(
            {
                "extraPaths": [str(ROOT)],
                "typeCheckingMode": "standard",
                "reportUnnecessaryTypeIgnoreComment": "error",
            }
        )
    )
    proc = subprocess.run(
        _tool("pyright") + ["--pythonpath", sys.executable, "-p", str(config), str(sample)],
        cwd=sample.parent,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
