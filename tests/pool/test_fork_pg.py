"""fork_safe=True: a forked child never uses the parent's connections and
doesn't close their sockets (gunicorn --preload, multiprocessing)."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Python 3.12+ warns about fork() in a process with threads; forking a
    # threaded server is exactly the situation under test.
    pytest.mark.filterwarnings("ignore:This process.*multi-threaded:DeprecationWarning"),
]


def wait_child(pid: int, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"child {pid} hung")


def run_child(body) -> tuple[int, dict]:
    """Fork; the child runs body() and sends its JSON result through a pipe."""
    return collect_child(*spawn_child(body))


def spawn_child(body) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 0
        try:
            out = body()
        except BaseException as ex:  # noqa: BLE001 - reported to the parent
            out, code = {"error": repr(ex)}, 1
        os.write(w, json.dumps(out).encode())
        os._exit(code)
    os.close(w)
    return pid, r


def collect_child(pid: int, r: int) -> tuple[int, dict]:
    code = wait_child(pid)
    with os.fdopen(r) as f:
        return code, json.loads(f.read() or "{}")


def backend_pids(pool, n: int) -> list[int]:
    conns = [pool.getconn() for _ in range(n)]
    pids = [c.execute("SELECT pg_backend_pid()").fetchone()[0] for c in conns]
    for c in conns:
        c.rollback()
        pool.putconn(c)
    return pids


def test_child_gets_fresh_connections_and_parent_keeps_working(make_pool) -> None:
    p = make_pool(min_size=2, fork_safe=True)
    p.wait()
    parent_pids = backend_pids(p, 2)
    held = p.getconn()  # checked out across the fork

    def child():
        p.putconn(held)  # the parent's connection: dropped, not closed
        return {"pids": backend_pids(p, 2), "stats": p.get_stats()}

    code, out = run_child(child)
    assert code == 0, out
    assert not set(out["pids"]) & set(parent_pids)
    # The child didn't close the parent's sockets: every parent connection works.
    p.putconn(held)
    assert sorted(backend_pids(p, 2)) == sorted(parent_pids)


def test_prefork_workers_each_use_the_pool(make_pool) -> None:
    p = make_pool(min_size=2, fork_safe=True)
    p.wait()
    parent_pids = set(backend_pids(p, 2))

    def worker():
        seen = set()
        for _ in range(20):
            with p.connection() as conn:
                seen.add(conn.execute("SELECT pg_backend_pid()").fetchone()[0])
        return {"pids": sorted(seen)}

    # gunicorn-style: all workers forked first, then running at once, while
    # the parent keeps using its own connections.
    children = [spawn_child(worker) for _ in range(3)]
    for _ in range(20):
        with p.connection() as conn:
            assert conn.execute("SELECT pg_backend_pid()").fetchone()[0] in parent_pids
    results = [collect_child(pid, r) for pid, r in children]
    all_pids = []
    for code, out in results:
        assert code == 0, out
        assert not set(out["pids"]) & parent_pids
        all_pids += out["pids"]
    assert len(all_pids) == len(set(all_pids))  # no backend shared between workers
    assert set(backend_pids(p, 2)) == parent_pids
