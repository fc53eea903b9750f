"""The MariaDB helper finds the local server or starts a private one."""

from __future__ import annotations

import os

import pytest

pymysql = pytest.importorskip("pymysql")
from tests.support import mariadb  # noqa: E402
from tests.support.passes import core_independent  # noqa: E402

pytestmark = [pytest.mark.mariadb, core_independent]  # tests a test helper


def test_private_server_starts_answers_and_is_removed():
    try:
        server = mariadb.start_private_server()
    except OSError as ex:  # pragma: no cover - depends on the machine
        pytest.skip(f"can't run the MariaDB server binaries here: {ex}")
    if server is None:
        pytest.skip("no MariaDB server binaries installed")
    try:
        conn = pymysql.connect(**server.connect_args)
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE(), 1 + 1")
            assert cur.fetchone() == ("test", 2)
        conn.close()
    finally:
        server.stop()
    assert not os.path.exists(server.datadir)
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(**server.connect_args, connect_timeout=2)


def test_repr_never_shows_the_password():
    server = mariadb.MariaDBServer(
        "env", mariadb._from_url("mysql://app:s3cret@db.example:3307/shop")
    )
    assert server.connect_args["port"] == 3307 and server.connect_args["database"] == "shop"
    assert "s3cret" not in repr(server)


def test_bad_url_is_a_clear_error():
    with pytest.raises(ValueError, match="mysql://user"):
        mariadb._from_url("postgres://x@y/z")
