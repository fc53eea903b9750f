"""fastpool.Pool(fork_safe=True): a forked child makes its own connections,
and a connection checked out before the fork is dropped, not closed, when the
child returns it (the parent keeps using its socket)."""

from __future__ import annotations

import os
import signal
import time

import pytest

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    pytest.mark.filterwarnings("ignore:This process.*multi-threaded:DeprecationWarning"),
]


def backend_pid(conn) -> int:
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    conn.rollback()
    return pid


def test_child_never_uses_or_closes_the_parents_connections(pg_dsn):
    psycopg2 = pytest.importorskip("psycopg2")
    from fastpool import Pool

    with Pool(
        lambda: psycopg2.connect(pg_dsn), min_size=1, max_size=2, fork_safe=True, timeout=10
    ) as pool:
        out = pool.getconn()
        parent_pid = backend_pid(out)
        r, w = os.pipe()
        child = os.fork()
        if child == 0:  # never return into pytest
            code = 1
            try:
                out.close()  # the parent's: dropped, its socket left alone
                with pool.connection() as conn:
                    code = 0 if backend_pid(conn) != parent_pid else 2
                pool.close()
            finally:
                os.write(w, str(code).encode())
                os._exit(code)
        os.close(w)
        deadline = time.monotonic() + 30
        while not os.waitpid(child, os.WNOHANG)[0]:
            if time.monotonic() > deadline:
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
                pytest.fail("the child hung")
            time.sleep(0.02)
        with os.fdopen(r) as f:
            assert f.read() == "0", "the child got the parent's connection or failed"
        assert backend_pid(out) == parent_pid, "the parent's connection still works"
        out.close()
        assert pool.get_stats()["pool_available"] >= 1
