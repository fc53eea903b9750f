"""Fixtures for pool tests against a real PostgreSQL."""

from __future__ import annotations

import logging

import psycopg
import pytest

import fastpool


@pytest.fixture
def pools(pg_dsn: str, closing_pools: list) -> list:
    """Pools created by a test (closed before the server goes away)."""
    return closing_pools


@pytest.fixture
def make_pool(pg_dsn: str, pools: list):
    def make(cls=fastpool.ConnectionPool, **kwargs):
        kwargs.setdefault("open", True)
        kwargs.setdefault("timeout", 5.0)
        p = cls(kwargs.pop("conninfo", pg_dsn), **kwargs)
        pools.append(p)
        return p

    return make


def kill_backend(admin: psycopg.Connection, pid: int) -> None:
    assert admin.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone() == (True,)


def pool_records(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "psycopg.pool" and r.levelno >= level
    ]
