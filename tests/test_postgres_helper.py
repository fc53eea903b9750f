"""The PostgreSQL helper behind tests and benchmarks finds or starts a real server."""

from __future__ import annotations

import os

import psycopg
import pytest

from tests.support import postgres
from tests.support.passes import core_independent

pytestmark = [pytest.mark.postgres, core_independent]  # tests a test helper


def test_session_server_answers_queries(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.info.server_version >= 90600


def test_private_server_starts_serves_and_is_removed() -> None:
    if postgres.find_bindir() is None:
        pytest.skip("no PostgreSQL server binaries (initdb/pg_ctl) on this machine")
    server = postgres.start_private_server()
    try:
        assert server.kind == "private"
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            assert conn.execute("SELECT current_setting('port')::int").fetchone() == (server.port,)
        server.stop()
        assert not postgres.can_connect(server.dsn, timeout=1)
        server.start()  # tests that restart the server mid-load rely on this
        assert postgres.can_connect(server.dsn)
    finally:
        server.destroy()
    assert not os.path.exists(server.datadir)
    assert not postgres.can_connect(server.dsn, timeout=1)


def test_fastpool_test_dsn_wins(monkeypatch: pytest.MonkeyPatch, pg_dsn: str) -> None:
    monkeypatch.setenv("FASTPOOL_TEST_DSN", pg_dsn + " application_name=from_env")
    found = postgres.find_server()
    assert found is not None and found.kind == "env"
    assert found.dsn.endswith("application_name=from_env")


@pytest.mark.parametrize(
    "dsn,shown",
    [
        ("host=h password=s3cret user=u", "host=h password=*** user=u"),
        ("host=h password='a b c' user=u", "host=h password=*** user=u"),
        ("postgresql://u:s3cret@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("host=h user=u", "host=h user=u"),
    ],
)
def test_passwords_never_appear_in_repr(dsn: str, shown: str) -> None:
    assert postgres.mask_password(dsn) == shown
    text = repr(postgres.PostgresServer(dsn=dsn, kind="env"))
    assert "s3cret" not in text and "a b c" not in text
