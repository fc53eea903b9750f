"""ENGINE = "fastpool.django": a minimal Django project (settings configured in
a fresh interpreter) running queries and transactions from threads through a
fastpool.ConnectionPool, against a real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("django", minversion="5.1")
pytestmark = pytest.mark.postgres

PROJECT = """
    import json, sys, threading
    import django
    from django.conf import settings

    settings.configure(
        DATABASES={"default": {"ENGINE": "fastpool.django", **json.loads(sys.argv[1]),
                               "OPTIONS": {"pool": {"min_size": 2, "max_size": 4, "timeout": 30}}}},
        INSTALLED_APPS=[], USE_TZ=True,
    )
    django.setup()
    from django.db import connection, transaction
    import fastpool

    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS fastpool_django")
        cur.execute("CREATE TABLE fastpool_django (thread int, n int)")
    connection.close()
    pids, errors = set(), []

    def worker(i):
        try:
            for n in range(20):
                with transaction.atomic():
                    with connection.cursor() as cur:
                        cur.execute("INSERT INTO fastpool_django VALUES (%s, %s)", [i, n])
                        cur.execute("SELECT pg_backend_pid()")
                        pids.add(cur.fetchone()[0])
                if n == 9:
                    connection.close()  # back to the pool mid-way
        except Exception as ex:
            errors.append(repr(ex))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM fastpool_django")
        rows = cur.fetchone()[0]
        cur.execute("DROP TABLE fastpool_django")
    pool = connection.pool
    out = {"errors": errors, "rows": rows, "backends": len(pids),
           "pool_type": type(pool).__module__ + "." + type(pool).__name__,
           "stats": pool.get_stats()}
    connection.close()
    connection.close_pool()
    print(json.dumps(out))
"""


def test_django_threads_through_fastpool(pg_dsn: str) -> None:
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(pg_dsn)
    db = {
        "NAME": info.get("dbname", ""),
        "USER": info.get("user", ""),
        "PASSWORD": info.get("password", ""),
        "HOST": info.get("host", ""),
        "PORT": str(info.get("port", "")),
    }
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(PROJECT), json.dumps(db)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["errors"] == []
    assert out["rows"] == 8 * 20
    assert out["pool_type"] == "fastpool.pool.ConnectionPool"
    assert 1 <= out["backends"] <= 4  # 8 threads shared the pool's at most 4 connections
    assert out["stats"]["requests_num"] >= 16  # a checkout per thread per half, at least
    assert out["stats"]["pool_size"] <= 4
